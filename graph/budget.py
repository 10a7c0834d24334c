"""The budget meter: every model call is priced before it is made and checked against hard caps.

Spending is read back from the audit log (each call is an audit event with model, prompt
version and cost), so the meter survives restarts and counts every process.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from memory.models import utcnow
from memory.stores import Storage


@dataclass(frozen=True, slots=True)
class Prices:
    """USD per million tokens."""

    input_per_million: float = 0.0
    output_per_million: float = 0.0

    def cost(self, input_tokens: int, output_tokens: int) -> float:
        """The price of a call."""
        return (input_tokens * self.input_per_million
                + output_tokens * self.output_per_million) / 1_000_000


@dataclass(frozen=True, slots=True)
class Caps:
    """Hard caps in USD; 0 means no cap."""

    daily_usd: float = 1.0
    per_plan_usd: float = 0.10
    per_job_usd: float = 0.05


class BudgetExceeded(Exception):
    """A call would go over a cap. Attributes say which, and by how much."""

    def __init__(self, *, cap_name: str, cap: float, spent: float, estimate: float) -> None:
        super().__init__(f"{cap_name} cap ${cap:.2f}: spent ${spent:.4f}, this call about "
                         f"${estimate:.4f}")
        self.cap_name = cap_name
        self.cap = cap
        self.spent = spent
        self.estimate = estimate


class BudgetMeter:
    """Checks and records model spending.

    Args:
        storage: where model calls are recorded (the audit log).
        prices: of the configured model.
        caps: the hard caps.
        timezone: "today" is the operator's day.
    """

    def __init__(self, *, storage: Storage, prices: Prices, caps: Caps,
                 timezone: ZoneInfo) -> None:
        self.storage = storage
        self.prices = prices
        self.caps = caps
        self.timezone = timezone

    def _start_of_day(self) -> datetime:
        now = utcnow().astimezone(self.timezone)
        return now.replace(hour=0, minute=0, second=0, microsecond=0)

    async def check(self, *, plan_id: str, input_tokens: int, max_output_tokens: int,
                    job: bool = False, cap_usd: float | None = None) -> float:
        """The estimated cost of a call; raises :class:`BudgetExceeded` if it would break a
        cap. Call before the model is called. ``cap_usd``: the plan's own cap (a playbook
        run's budget; 0 = none) in place of the per-plan or per-job one."""
        estimate = self.prices.cost(input_tokens, max_output_tokens)
        day, _ = await self.storage.audit.model_cost(since=self._start_of_day())
        plan, _ = await self.storage.audit.model_cost(plan_id=plan_id)
        per_plan = ("per-job", self.caps.per_job_usd) if job else \
            ("per-plan", self.caps.per_plan_usd)
        if cap_usd is not None:
            per_plan = ("per-run", cap_usd)
        for name, cap, spent in (("daily", self.caps.daily_usd, day),
                                 (per_plan[0], per_plan[1], plan)):
            if cap and spent + estimate > cap:
                raise BudgetExceeded(cap_name=name, cap=cap, spent=spent, estimate=estimate)
        return estimate

    async def record(self, *, plan_id: str, actor: str, channel: str | None, model: str,
                     prompt_version: str, input_tokens: int, output_tokens: int,
                     outcome: str) -> float:
        """Record a call that was made; return its cost."""
        cost = self.prices.cost(input_tokens, output_tokens)
        await self.storage.audit.append(
            actor=actor, channel=channel, plan_id=plan_id, decision=f"model.{outcome}",
            model=model, prompt_version=prompt_version, cost_usd=cost,
            detail={"input_tokens": input_tokens, "output_tokens": output_tokens})
        return cost

    async def report(self) -> str:
        """Use against caps, for /budget."""
        today, calls_today = await self.storage.audit.model_cost(since=self._start_of_day())
        month_start = self._start_of_day().replace(day=1)
        month, calls_month = await self.storage.audit.model_cost(since=month_start)
        week, _ = await self.storage.audit.model_cost(since=utcnow() - timedelta(days=7))

        def cap(value: float) -> str:
            return f"${value:.2f}" if value else "no cap"

        return "\n".join([
            f"Model spend today: ${today:.4f} of {cap(self.caps.daily_usd)} "
            f"({calls_today} calls).",
            f"Last 7 days: ${week:.4f}. This month: ${month:.4f} ({calls_month} calls).",
            f"Caps: per plan {cap(self.caps.per_plan_usd)}, per scheduled job "
            f"{cap(self.caps.per_job_usd)}. A call over a cap waits for your approval.",
        ])
