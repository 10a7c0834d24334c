"""The operator console: a local, server-rendered web page for what chat is bad at — the
approval queue, plans, the audit ledger, memory, playbooks, spending and health — plus
Prometheus metrics. Served by ``solo serve`` on ``[console] host, port`` once a password is
set; it shares the process and the stores, and decides through the same desk as chat.
"""
