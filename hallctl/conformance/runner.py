"""One conformance run: connect as a clean-session client, make sure a central answers for the
hall, learn its queues and windows from ``queue.status``, then run the checks in order, each with a
time limit, and collect what each found.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, Sequence

from hallctl.bus.client import BusUnavailable
from hallctl.bus.topics import Topics
from hallctl.conformance.checks import Check, reads
from hallctl.conformance.context import Broken, Context, NotChecked, Run, Step
from hallctl.conformance.probe import Probe
from hallctl.diag.session import Connection

log = logging.getLogger("hallctl.conformance")

KEPT, BROKEN, NOT_CHECKED = "kept", "broken", "not_checked"


class CentralNotOnline(Exception):
    """No central answers for the hall: nothing to check."""


@dataclass(frozen=True)
class Result:
    id: str
    title: str
    section: str
    result: str  # KEPT | BROKEN | NOT_CHECKED
    #: kept: a note (may be empty); broken: how; not checked: why not
    detail: str
    evidence: tuple[Step, ...] = ()
    duration_s: float = 0.0


@dataclass
class Report:
    broker: str
    hall: str
    client: str
    window: str | None
    queue: str | None
    instance: str | None
    started: str
    results: list[Result] = field(default_factory=list)
    duration_s: float = 0.0

    @property
    def broken(self) -> list[Result]:
        return [r for r in self.results if r.result == BROKEN]

    def count(self, result: str) -> int:
        return sum(1 for r in self.results if r.result == result)


@dataclass(frozen=True)
class Options:
    conn: Connection
    #: the <client> level of the request topics; None: ``conformance-<random>``
    client: str | None = None
    window: str | None = None
    queue: str | None = None


async def run(opts: Options, checks: Sequence[Check], *, on_start: Callable[[Report], None] = lambda r: None,
              on_result: Callable[[Result], None] = lambda r: None) -> Report:
    """Run ``checks`` against the central of ``opts.conn.hall``. Raises BrokerUnreachable (no
    connection) or :class:`CentralNotOnline`."""
    conn = opts.conn
    topics = Topics(conn.hall)
    client = opts.client or f"conformance-{os.urandom(3).hex()}"
    bad_client = f"Conformance_{os.urandom(2).hex()}"  # upper case and '_': outside the id rule
    # the public topics, those a hall manager reads (a broker's ACL may withhold them), and what
    # the checks must see of their own requests
    filters = [topics.central_status, topics.central_res(client), topics.event_filter, topics.window_state_filter,
               topics.board_state, topics.central_kpi, topics.central_staffing, topics.central_health,
               topics.central_catalogue,
               *reads(topics, client, bad_client)]
    started = time.monotonic()
    async with Probe(conn, filters) as probe:
        state = Run(probe, topics, client, bad_client, conn.timeout, window=None, queue=None)
        state.status = await _central_online(Context(state))
        facts = await _hall_facts(Context(state))
        state.queue = opts.queue or next(iter(facts.get("waiting") or {}), None)
        state.window = opts.window or _free_window(facts.get("windows") or {})
        report = Report(f"{conn.host}:{conn.port}", conn.hall, client, state.window, state.queue,
                        (state.status or {}).get("instance"),
                        datetime.now(timezone.utc).isoformat(timespec="seconds"))
        on_start(report)
        for check in checks:
            result = await _run_one(check, state)
            report.results.append(result)
            on_result(result)
    report.duration_s = time.monotonic() - started
    return report


async def _run_one(check: Check, state: Run) -> Result:
    ctx = Context(state)
    limit = check.limit_s(state.timeout)
    began = time.monotonic()
    try:
        async with asyncio.timeout(limit):
            note = await check.run(ctx)
        outcome, detail = KEPT, note or ""
    except Broken as exc:
        outcome, detail = BROKEN, exc.reason
    except NotChecked as exc:
        outcome, detail = NOT_CHECKED, exc.reason
    except TimeoutError:
        outcome, detail = BROKEN, f"the check did not finish within {limit:g} s"
    except BusUnavailable as exc:
        outcome, detail = NOT_CHECKED, f"the connection to the broker was lost: {exc.message}"
    except Exception as exc:  # noqa: BLE001 - a fault of the checker is no broken promise
        log.debug("check %s failed", check.id, exc_info=True)
        outcome, detail = NOT_CHECKED, f"the checker itself failed: {exc!r}"
    evidence = tuple(ctx.trail) if outcome == BROKEN else ()
    return Result(check.id, check.title, check.section, outcome, detail, evidence, round(time.monotonic() - began, 3))


async def _central_online(ctx: Context) -> dict[str, Any] | None:
    """central/status as the broker keeps it. Missing, central may still answer (then the
    status-retained check says what is wrong); offline or silent, there is nothing to check."""
    topic = ctx.topics.central_status
    try:
        seen = await ctx.probe.wait(lambda s: s.topic == topic and bool(s.payload), timeout=ctx.run.timeout)
    except TimeoutError:
        try:
            await ctx.request("queue.status")
        except Broken:
            raise CentralNotOnline(f"nothing on {topic} and no answer to queue.status within {ctx.run.timeout:g} s: "
                                   f"is a central running for hall {ctx.topics.hall} on this broker?") from None
        return None
    doc = seen.doc()
    if isinstance(doc, dict) and doc.get("state") == "offline":
        raise CentralNotOnline(f"central of hall {ctx.topics.hall} is offline ({topic}: instance "
                               f"{doc.get('instance')!r}, since {doc.get('ts')})")
    return doc if isinstance(doc, dict) else None


async def _hall_facts(ctx: Context) -> dict[str, Any]:
    """queue.status's data (queues and windows; {} when it is an error: the queue-status check
    says so). A central that answers nothing would only make every check wait for its timeout."""
    try:
        answer = await ctx.request("queue.status")
    except Broken as exc:
        status = ctx.run.status or {}
        raise CentralNotOnline(f"{exc.reason} (central/status says {status.get('state', 'nothing')!r}, "
                               f"instance {status.get('instance')!r}): is central running and serving?") from None
    return answer.data if answer.ok else {}


def _free_window(windows: dict[str, Any]) -> str | None:
    """The first window queue.status lists that serves nobody (else the first)."""
    for window, state in windows.items():
        if isinstance(state, dict) and not state.get("ticket"):
            return window
    return next(iter(windows), None)
