"""``GET /metrics``: Solo OS in the Prometheus text format (prometheus-client).

Every figure is read from the database at scrape time, so two instances on one database report
the same numbers and a restart resets no counter. Counters stay monotonic as long as the rows
they count are kept (the inbox, the outbox and the audit log are not pruned).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from memory.models import utcnow
from memory.stores import Storage

WAIT_BUCKETS = (10.0, 60.0, 300.0, 900.0, 3600.0, 4 * 3600.0, 24 * 3600.0)
"""Approval wait buckets, in seconds: from a tap at once to a day."""


class _Snapshot:
    """A collector over figures read beforehand (prometheus-client collects synchronously;
    the stores are asynchronous)."""

    def __init__(self, families: list[Metric]) -> None:
        self._families = families

    def collect(self) -> Iterator[Metric]:
        yield from self._families


async def read_metrics(storage: Storage, *, now: datetime | None = None) -> bytes:
    """The exposition text of every metric."""
    now = now or utcnow()
    reads = storage.reads
    families: list[Metric] = []

    def counter(name: str, doc: str, labels: list[str], values: dict[tuple, float]) -> None:
        family = CounterMetricFamily(name, doc, labels=labels)
        for key, value in sorted(values.items()):
            family.add_metric(list(key), value)
        families.append(family)

    def gauge(name: str, doc: str, labels: list[str], values: dict[tuple, float]) -> None:
        family = GaugeMetricFamily(name, doc, labels=labels)
        for key, value in sorted(values.items()):
            family.add_metric(list(key), value)
        families.append(family)

    counter("solo_events_admitted", "Chat events admitted (recorded in the inbox), by channel",
            ["channel"], {(c,): n for c, n in (await reads.events_by_channel()).items()})
    last = await reads.last_event_by_channel()
    gauge("solo_adapter_last_event_age_seconds", "Seconds since each channel's last event",
          ["channel"], {(c,): (now - at).total_seconds() for c, at in last.items()})
    gauge("solo_plans", "Plans by status (outcome)", ["status"],
          {(s,): n for s, n in (await storage.plans.count_by_status()).items()})
    gauge("solo_approvals_pending", "Approvals waiting for a decision", [],
          {(): len(await storage.approvals.pending())})
    families.append(_wait_histogram(await reads.approval_waits(
        since=datetime(1970, 1, 1, tzinfo=UTC))))
    calls = await reads.connector_calls()
    counter("solo_connector_calls", "Connector calls (outbox rows) by connector and outcome",
            ["connector", "status"], {k: float(n) for k, n in calls.items()})
    errors: dict[tuple, float] = {}
    for (connector, status), n in calls.items():
        errors[(connector,)] = errors.get((connector,), 0.0) + (n if status == "failed" else 0)
    counter("solo_connector_errors", "Connector calls that failed", ["connector"], errors)
    model = await reads.model_totals()
    counter("solo_model_calls", "Model calls made", [], {(): model["calls"]})
    counter("solo_model_tokens", "Model tokens by direction", ["direction"],
            {("input",): model["input_tokens"], ("output",): model["output_tokens"]})
    counter("solo_model_cost_usd", "Model spending in USD", [], {(): model["cost_usd"]})
    deliveries = await reads.deliveries_by_status()
    gauge("solo_delivery_queue_depth", "Replies waiting to be delivered, by channel",
          ["channel"], {(c,): float(n) for (c, s), n in deliveries.items() if s == "pending"})
    counter("solo_deliveries_failed", "Replies that could not be delivered, by channel",
            ["channel"], {(c,): float(n) for (c, s), n in deliveries.items() if s == "failed"})
    due, oldest = await reads.due_jobs(now)
    gauge("solo_jobs_due", "Scheduled jobs due and not yet taken", [], {(): float(due)})
    gauge("solo_scheduler_lag_seconds", "How late the oldest due job is", [],
          {(): max(0.0, (now - oldest).total_seconds()) if oldest else 0.0})
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Snapshot(families))
    return generate_latest(registry)


def _wait_histogram(waits: list[float]) -> Any:
    buckets = [(str(bound), float(sum(1 for w in waits if w <= bound)))
               for bound in WAIT_BUCKETS]
    buckets.append(("+Inf", float(len(waits))))
    return HistogramMetricFamily("solo_approval_wait_seconds",
                                 "How long decided approvals waited for the operator",
                                 buckets=buckets, sum_value=sum(waits))
