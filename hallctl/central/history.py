"""What central learns from its stored events beyond the core's state: the KPIs, and the arrivals
that its staffing advice is forecast from."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any, Callable

from hallctl.bus import messages
from hallctl.central.core import Central
from hallctl.central.kpi import Kpis
from hallctl.central.model import HallSpec
from hallctl.central.staffing import advise, forecast_from_history

#: days of history kept in memory for KPIs and the staffing forecast
HISTORY_DAYS = 35


class History:
    """The KPIs of the newest HISTORY_DAYS days and the arrivals of the last HISTORY_DAYS calendar
    days, folded from stored events; ``today`` gives the business day now. It does no locking:
    the service holds its state lock around every use."""

    def __init__(self, today: Callable[[], str]) -> None:
        self._today = today
        self.kpis = Kpis(keep_days=HISTORY_DAYS)
        self._arrivals: dict[str, list[Any]] = {}
        self._arrivals_from = self.cutoff()

    def cutoff(self) -> str:
        """The oldest business day the staffing history keeps."""
        today = date.fromisoformat(self._today())
        return (today - timedelta(days=HISTORY_DAYS)).isoformat()

    def observe(self, event: Any) -> None:
        """Fold a stored event into the KPIs and the arrival history used for staffing advice. A
        voided ticket is no arrival: its citizen takes another ticket, which is one."""
        self.kpis.apply(event)
        if event.type == "ticket.voided":
            self._forget_arrival(event.data.get("ticket"))
        elif event.type == "ticket.issued":
            day = event.ts[:10]
            if day not in self._arrivals:
                if day < self._arrivals_from:  # replaying days older than the history keeps
                    return
                self._arrivals[day] = []
                self.trim()
            self._arrivals[day].append(event)

    def _forget_arrival(self, ticket: Any) -> None:
        for arrivals in reversed(self._arrivals.values()):  # it was issued today, or just before
            for i in range(len(arrivals) - 1, -1, -1):
                if arrivals[i].data.get("ticket") == ticket:
                    del arrivals[i]
                    return

    def trim(self) -> None:
        """Keep HISTORY_DAYS calendar days of arrivals: the same days whether central has run
        all along or has just started (and replayed them from the store)."""
        self._arrivals_from = cutoff = self.cutoff()
        for day in [d for d in self._arrivals if d < cutoff]:
            del self._arrivals[day]

    def staffing_advice(self, hall: HallSpec, core: Central) -> dict[str, Any]:
        """Windows to open per half hour today, from the arrivals of earlier days (same weekday
        when there are such days) and the service times learned so far (square-root staffing:
        docs/assignment.md)."""
        today = self._today()
        history = {d: evs for d, evs in self._arrivals.items() if d < today}
        forecast = forecast_from_history(history, for_day=today, last_n=4) or forecast_from_history(history, last_n=5)
        learned = [s for q in hall.queues if (s := core.service_estimate(q))]
        mean_service_s = sum(learned) / len(learned) if learned else \
            sum(q.expected_service_s for q in hall.queues.values()) / len(hall.queues)
        share, within_s = hall.target_share, hall.target_wait_s
        return {
            "v": messages.VERSION,
            "day": today,
            "target": {"share": share, "within_s": within_s},
            "mean_service_min": round(mean_service_s / 60, 1),
            "history_days": len(history),
            "slots": advise(forecast, mean_service_s, target_sl=(share, within_s),
                            max_windows=len(hall.windows)) if forecast else [],
        }

    def kpi_document(self) -> dict[str, Any]:
        """Today's KPIs as published on ``central/kpi``: the ``kpi.summary`` answer with ``v``,
        without the per-clerk figures (staff performance is asked for with ``kpi.summary``, whose
        answer goes to the asking client only, not retained for every reader of the broker)."""
        doc = {"v": messages.VERSION, **self.kpis.summary(None)}
        doc.pop("by_clerk", None)
        return doc
