# Shortcuts; dev.py does the work so that a machine without make needs only Python.
.PHONY: run test bench
run:
	python3 dev.py run
test:
	python3 dev.py test
bench:
	python3 dev.py bench
