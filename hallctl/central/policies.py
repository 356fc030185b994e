"""Calling policies: which waiting ticket a free window calls next, and how many are ahead.

A policy is pure and cheap: :meth:`Policy.next_ticket` reads the core's :class:`WaitingLines`
(the *view*: per queue, the heads of sorted lines) and never copies or changes it. The hall's
``HallSpec.policy`` picks one of :data:`POLICIES`; docs/assignment.md explains each in full.

* ``dedicated``: per-department FIFO, the old hall: a window calls only its primary queue(s).
* ``fifo``: global FIFO over every queue the window lists.
* ``sew``: "shortest expected wait": the window serves the pool of windows (queues served by the
  same windows form one pool) whose backlog is largest relative to its open capacity, so the pool
  that would wait longest gets help first.
* ``default``: anti-starvation, green channel, due appointments, then walk-ins by skill
  preference with overflow, then appointments not yet due.

Every policy keeps the no-idle invariant: an open, free window gets a ticket whenever one it can
serve (:meth:`Policy.serves`) is waiting.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from math import fsum
from dataclasses import dataclass
from typing import Mapping, Protocol

from hallctl.central.model import (
    BY_SINCE,
    SINCE,
    HallSpec,
    QueueLines,
    Waiting,
    WaitingLines,
    WindowSpec,
)

INF = float("inf")


class Policy(Protocol):
    """What the core needs from a calling policy. ``now`` is epoch seconds."""

    name: str

    def next_ticket(self, view: WaitingLines, window: WindowSpec, now: float) -> str | None:
        """The id of the ticket ``window`` (open and free) calls now, or None if it can serve none."""
        ...

    def people_ahead(self, view: WaitingLines, ticket: str, now: float) -> int | None:
        """How many people will be called before ``ticket``; None if it is not waiting."""
        ...

    def people_ahead_of(self, view: WaitingLines, entry: Waiting, now: float) -> int:
        """:meth:`people_ahead` of a line entry, which need not be waiting (a ticket pending its
        print: the people ahead of it once confirmed)."""
        ...

    def serves(self, window: WindowSpec, queue: str) -> bool:
        """Whether ``window`` may call a ticket of ``queue`` under this policy."""
        ...

    def work_ahead(
        self, view: WaitingLines, entry: Waiting, now: float, service: Mapping[str, float]
    ) -> float:
        """Service seconds (speed 1.0) of the people called before ``entry``, per ``service``."""
        ...


@dataclass(frozen=True)
class _Plan:
    """A window's skills as one policy sees them, precomputed once."""

    spec: WindowSpec
    universal: bool  # every queue, all at level 0
    pairs: tuple[tuple[str, int], ...]  # (queue, preference level) in preference order
    n_levels: int

    def lines(self, by_queue: dict[str, QueueLines]) -> list[tuple[int, QueueLines]]:
        """(level, lines) of every queue this window can serve that has someone waiting."""
        if self.universal:
            return [(0, ql) for ql in by_queue.values()]
        return [(lvl, ql) for q, lvl in self.pairs if (ql := by_queue.get(q)) is not None]


class _Base:
    """Skills, plans and the people-ahead shares common to every policy."""

    name = "base"
    #: only the window's primary queues count as its skills (the old per-department hall)
    primary_only = False

    def __init__(self, hall: HallSpec) -> None:
        self.hall = hall
        self._plans: dict[str, _Plan] = {w.id: self._make_plan(w) for w in hall.windows.values()}
        self._shares = self._make_shares(hall)

    # -- skills -------------------------------------------------------------------------------

    def _skills(self, window: WindowSpec) -> tuple[str, ...]:
        queues = window.primary_queues if self.primary_only else window.queues
        return tuple(self.hall.queues) if queues == ("*",) else queues

    def serves(self, window: WindowSpec, queue: str) -> bool:
        queues = window.primary_queues if self.primary_only else window.queues
        return queues == ("*",) or queue in queues

    def _make_plan(self, window: WindowSpec) -> _Plan:
        queues = window.primary_queues if self.primary_only else window.queues
        if queues == ("*",):
            return _Plan(window, True, (), 1)
        # level 0 = the primary queues; each secondary queue is a level of its own, in list order
        pairs = tuple((q, max(0, i - window.primary + 1)) for i, q in enumerate(queues))
        return _Plan(window, False, pairs, pairs[-1][1] + 1)

    def _plan(self, window: WindowSpec) -> _Plan:
        plan = self._plans.get(window.id)
        if plan is None or plan.spec is not window:  # a spec the hall did not list (the simulator)
            plan = self._plans[window.id] = self._make_plan(window)
        return plan

    # -- people ahead -------------------------------------------------------------------------

    def _make_shares(self, hall: HallSpec) -> dict[str, tuple[tuple[str, float], ...]]:
        """queue q -> ((r, share), ...): the queues r whose tickets compete with q's, each with the
        share of r's serving speed that sits at windows able to serve q too. 1.0 for q itself;
        0 < share <= 1 for a queue that shares some windows with q."""
        servers: dict[str, list[WindowSpec]] = {q: [] for q in hall.queues}
        for w in hall.windows.values():
            for q in self._skills(w):
                servers[q].append(w)
        shares: dict[str, tuple[tuple[str, float], ...]] = {}
        for q in hall.queues:
            competing: dict[str, None] = {q: None}
            for w in servers[q]:
                competing.update(dict.fromkeys(self._skills(w)))
            row = []
            for r in competing:
                total = sum(w.speed_for(r) for w in servers[r])
                both = sum(w.speed_for(r) for w in servers[r] if self.serves(w, q))
                row.append((r, 1.0 if r == q or total == 0 else both / total))
            shares[q] = tuple((r, s) for r, s in row if s > 0)
        return shares

    def people_ahead(self, view: WaitingLines, ticket: str, now: float) -> int | None:
        entry = view.entries.get(ticket)
        return None if entry is None else self.people_ahead_of(view, entry, now)

    def people_ahead_of(self, view: WaitingLines, entry: Waiting, now: float) -> int:
        total = 0.0
        for r, share in self._shares.get(entry.queue, ((entry.queue, 1.0),)):
            ql = view.by_queue.get(r)
            if ql is not None:
                total += share * self._ahead_in(ql, entry, now)
        return int(total + 0.5)

    def work_ahead(
        self, view: WaitingLines, entry: Waiting, now: float, service: Mapping[str, float]
    ) -> float:
        """The service work (seconds at speed 1.0) of the people called before ``entry``: as
        :meth:`people_ahead`, each person weighted by ``service`` of their queue. ``entry`` need
        not be waiting (a walk-in about to arrive: seq above every issued one, since = now)."""
        total = 0.0
        for r, share in self._shares.get(entry.queue, ((entry.queue, 1.0),)):
            ql = view.by_queue.get(r)
            if ql is not None:
                total += share * self._ahead_in(ql, entry, now) * service.get(r, 0.0)
        return total

    def _ahead_in(self, ql: QueueLines, entry: Waiting, now: float) -> int:
        """Tickets of one queue that come before ``entry`` in this policy's order (arrival order)."""
        return bisect_left(ql.all, (entry.seq,))


class FifoPolicy(_Base):
    """Global FIFO: the earliest-issued ticket among every queue the window lists."""

    name = "fifo"

    def next_ticket(self, view: WaitingLines, window: WindowSpec, now: float) -> str | None:
        best: Waiting | None = None
        for _, ql in self._plan(window).lines(view.by_queue):
            head = ql.all[0]
            if best is None or head.seq < best.seq:
                best = head
        return None if best is None else best.ticket


class DedicatedPolicy(FifoPolicy):
    """Per-department FIFO (the old hall): a window calls only its primary queue(s), FIFO."""

    name = "dedicated"
    primary_only = True


class SewPolicy(_Base):
    """Shortest expected wait (pull form). A queue's *pool* is the set of windows that list it;
    queues with the same pool form one line. A free window serves the pool, among those it belongs
    to, with the highest load (sum over its queues of waiting / open capacity; ties: the older
    head), and in that pool the earliest-arrived ticket."""

    name = "sew"

    def __init__(self, hall: HallSpec) -> None:
        super().__init__(hall)
        pools: dict[frozenset[str], int] = {}
        self._pool: dict[str, int] = {}  # queue -> pool number
        for q in hall.queues:
            members = frozenset(w.id for w in hall.windows.values() if self.serves(w, q))
            self._pool[q] = pools.setdefault(members, len(pools))

    def next_ticket(self, view: WaitingLines, window: WindowSpec, now: float) -> str | None:
        capacity, pool_of = view.capacity, self._pool
        terms: dict[object, list[float]] = {}
        heads: dict[object, Waiting] = {}
        for _, ql in self._plan(window).lines(view.by_queue):
            head = ql.all[0]
            pool = pool_of.get(head.queue, head.queue)  # a queue the config dropped: its own pool
            cap = capacity.get(head.queue, 0.0)
            terms.setdefault(pool, []).append(len(ql.all) / cap if cap > 0 else INF)
            cur = heads.get(pool)
            if cur is None or head.seq < cur.seq:
                heads[pool] = head
        best: Waiting | None = None
        best_load = -1.0
        for pool, head in heads.items():
            load = fsum(terms[pool])  # exactly rounded: the same whatever the order of the terms
            if load > best_load or (load == best_load and best is not None and head.seq < best.seq):
                best, best_load = head, load
        return None if best is None else best.ticket


class DefaultPolicy(_Base):
    """Priority classes, skill preference with overflow, and anti-starvation.

    In order, among the queues the window lists:
    1. the longest-waiting ticket that has waited more than ``max_wait_boost_s`` (any class);
    2. the earliest green-channel ticket;
    3. the appointment with the earliest slot that is due (slot - now <= ``appointment_grace_s``);
    4. a walk-in/online ticket: the head of the most preferred level with someone waiting (level 0
       = the primary queues), unless a later level's head has waited more than
       ``overflow_after_s`` longer: then the longest-waiting such head;
    5. an appointment not yet due (earliest slot), so that the window never idles.
    """

    name = "default"

    def __init__(self, hall: HallSpec) -> None:
        super().__init__(hall)
        self.grace = hall.appointment_grace_s
        self.overflow = hall.overflow_after_s
        self.boost = hall.max_wait_boost_s

    def next_ticket(self, view: WaitingLines, window: WindowSpec, now: float) -> str | None:
        plan = self._plan(window)
        candidates = plan.lines(view.by_queue)
        if not candidates:
            return None
        starve_cut = now - self.boost
        check_green, check_appt = view.n_green > 0, view.n_appt > 0
        starving: list[Waiting] = []  # line heads that waited longer than max_wait_boost_s
        green: Waiting | None = None
        appt: Waiting | None = None
        heads: list[Waiting | None] = [None] * plan.n_levels  # walk-in/online head per level
        for lvl, ql in candidates:
            if check_green and ql.green:
                h = ql.green[0]
                if green is None or h.seq < green.seq:
                    green = h
                if h.since < starve_cut:
                    starving.append(h)
            if check_appt and ql.appt:
                h = ql.appt[0]
                if appt is None or BY_SINCE(h) < BY_SINCE(appt):
                    appt = h
                if h.since < starve_cut:
                    starving.append(h)
            if ql.ordinary:
                h = ql.ordinary[0]
                cur = heads[lvl]
                if cur is None or h.seq < cur.seq:
                    heads[lvl] = h
                if h.since < starve_cut:
                    starving.append(h)
        if starving:
            return min(starving, key=BY_SINCE).ticket
        if green is not None:
            return green.ticket
        if appt is not None and appt.since <= now + self.grace:
            return appt.ticket
        chosen = _with_overflow(heads, self.overflow)
        if chosen is not None:
            return chosen.ticket
        return None if appt is None else appt.ticket

    def _ahead_in(self, ql: QueueLines, entry: Waiting, now: float) -> int:
        """Tickets of one queue called before ``entry`` by classes: green, due appointments,
        walk-ins/online, appointments not yet due; arrival (slot) order inside each class. An
        appointment counts as if due: the people called before it once its slot comes."""
        if entry.priority == "green":
            return bisect_left(ql.green, (entry.seq,))
        if entry.priority == "appointment":
            return len(ql.green) + bisect_left(ql.appt, BY_SINCE(entry), key=BY_SINCE)
        due = bisect_right(ql.appt, now + self.grace, key=SINCE)
        return len(ql.green) + due + bisect_left(ql.ordinary, (entry.seq,))


def _with_overflow(heads: list[Waiting | None], overflow: float) -> Waiting | None:
    """The head of the first non-empty level, or the longest-waiting head of a later level that
    has waited more than ``overflow`` seconds longer than it."""
    ref: Waiting | None = None
    best: Waiting | None = None
    for h in heads:
        if h is None:
            continue
        if ref is None or best is None:
            ref = best = h
        elif h.since < ref.since - overflow and BY_SINCE(h) < BY_SINCE(best):
            best = h
    return best


#: policy name -> class
POLICIES: dict[str, type[_Base]] = {
    "default": DefaultPolicy,
    "dedicated": DedicatedPolicy,
    "fifo": FifoPolicy,
    "sew": SewPolicy,
}


def make_policy(hall: HallSpec, name: str | None = None) -> Policy:
    """The policy ``name`` (default: ``hall.policy``, one of ``POLICY_NAMES``) for ``hall``."""
    return POLICIES[name or hall.policy](hall)
