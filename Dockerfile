# Solo OS service image: slim Python, non-root user, state on a volume, `solo serve` by default.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    SOLO_STORAGE__DATA_DIR=/data
RUN useradd --create-home --uid 10001 solo && mkdir /data && chown solo:solo /data
WORKDIR /app
COPY pyproject.toml README.md ./
COPY bot ./bot
COPY graph ./graph
COPY memory ./memory
COPY connectors ./connectors
COPY config ./config
RUN pip install .

USER solo
VOLUME ["/data"]
ENTRYPOINT ["solo"]
CMD ["serve"]
