"""Wait prediction: service times learned from the event stream, per queue and per matter, and
the predicted wait of a waiting ticket (docs/assignment.md, "Wait prediction").

Pure: a :class:`Predictor` reads the hall's config, the policy's order (``work_ahead``) and a
:class:`~hallctl.central.state.HallState`; :meth:`Predictor.learn` is the only method that writes
(the learned means, while the core folds a ``ticket.completed``).
"""

from __future__ import annotations

from hallctl.central.model import DEFAULT_SERVICE_S, HallSpec, Ticket, Waiting
from hallctl.central.policies import Policy
from hallctl.central.state import HallState

#: the learned service time is an exponentially weighted mean with this weight at least, so it
#: follows roughly the last 20 services of a queue (docs/assignment.md, "Wait prediction")
SERVICE_WEIGHT = 1 / 20
#: the configured prior (QueueSpec.expected_service_s) counts as this many services
PRIOR_SAMPLES = 3


class Predictor:
    """Learns service times and predicts waits for one hall under one policy."""

    def __init__(self, hall: HallSpec, policy: Policy) -> None:
        self._hall, self._policy = hall, policy
        #: queue -> (window, speed) of the windows the policy lets call it: its wait's capacity
        self.capable: dict[str, tuple[tuple[str, float], ...]] = {
            q: tuple((w.id, w.speed_for(q)) for w in hall.windows.values() if policy.serves(w, q))
            for q in hall.queues
        }

    def predict_s(self, state: HallState, entry: Waiting, now: float) -> float | None:
        """Seconds until ``entry`` is called: the work of the people ahead (policy order, each at
        their queue's learned service time) over the open capacity that can serve it, plus, when
        every such window is busy, the expected time until the first of them frees up (taken as
        exponential: 1 / the sum of their completion rates). None with no open capable window."""
        capacity = 0.0
        rate = 0.0  # completions per second of the busy capable windows
        free = False
        windows, tickets = state.windows, state.tickets
        for w, speed in self.capable.get(entry.queue, ()):
            live = windows.get(w)
            if live is None or live.state != "open":
                continue
            capacity += speed
            if live.ticket is None:
                free = True
            elif not free:  # the rate only matters while no capable window is free
                rate += speed / self.ticket_service(state, tickets.get(live.ticket))
        if capacity <= 0:
            return None
        wait = self._policy.work_ahead(state.lines, entry, now, _MixService(self, state)) / capacity
        if not free and rate > 0:
            wait += 1.0 / rate
        return wait

    def walkin_waits(self, state: HallState, now: float) -> dict[str, float | None]:
        """queue -> predicted minutes for a walk-in issued now (for the board)."""
        seq = state.last_seq + 1  # after everyone already issued
        return {
            q: minutes(self.predict_s(state, Waiting(seq, "", q, "walkin", now, None), now))
            for q in self._hall.queues
        }

    def learn(self, state: HallState, t: Ticket, window: str, seconds: float) -> None:
        """Fold one observed service into its queue's mean and its matter's (at speed 1.0)."""
        queue = t.queue
        spec = self._hall.windows.get(window)
        work = seconds * (spec.speed_for(queue) if spec is not None else 1.0)
        q = self._hall.queues.get(queue)
        prior = q.expected_service_s if q is not None else DEFAULT_SERVICE_S
        _ewma(state.service, state.service_n, queue, work, prior)
        if t.matter is not None:
            _ewma(state.matter_service, state.matter_n, t.matter, work,
                  self.matter_prior(state, t.matter, queue))

    def matter_prior(self, state: HallState, matter: str, queue: str) -> float:
        """A matter's own configured time, else what its queue has learned so far (a matter
        without a figure of its own is as long as its section's average)."""
        spec = self._hall.matters.get(matter)
        if spec is not None and spec.expected_service_s is not None:
            return spec.expected_service_s
        return state.service.get(queue, DEFAULT_SERVICE_S)

    def matter_estimate(self, state: HallState, matter: str, queue: str) -> float:
        learned = state.matter_service.get(matter)
        return learned if learned is not None else self.matter_prior(state, matter, queue)

    def ticket_service(self, state: HallState, t: Ticket | None) -> float:
        """Expected service seconds (speed 1.0) of one ticket: its matter's, else its queue's."""
        if t is None:
            return DEFAULT_SERVICE_S
        if t.matter is not None:
            return self.matter_estimate(state, t.matter, t.queue)
        return state.service.get(t.queue, DEFAULT_SERVICE_S)


def minutes(seconds: float | None) -> float | None:
    """Seconds as minutes with one decimal (what the ticket, board and SMS show)."""
    return None if seconds is None else round(seconds / 60.0, 1)


def _ewma(means: dict[str, float], counts: dict[str, int], key: str, x: float, prior: float) -> None:
    """Fold ``x`` into ``means[key]`` (starting at ``prior``, which counts as PRIOR_SAMPLES)."""
    n = counts.get(key, 0)
    old = means.get(key, prior)
    weight = max(1.0 / (n + 1 + PRIOR_SAMPLES), SERVICE_WEIGHT)
    means[key] = old + weight * (x - old)
    counts[key] = n + 1


class _MixService:
    """queue -> expected service seconds of ITS WAITING tickets, for the policies' work_ahead:
    the queue's learned mean, or, where waiting tickets name their matters, the mean of those
    matters' learned times (a line of long matters is slower than one of short ones)."""

    __slots__ = ("_core", "_state")

    def __init__(self, predictor: "Predictor", state: HallState) -> None:
        self._core, self._state = predictor, state

    def get(self, queue: str, default: float = 0.0) -> float:
        state = self._state
        base = state.service.get(queue, default)
        ql = state.lines.by_queue.get(queue)
        if ql is None or not ql.matters:
            return base
        n = len(ql.all)
        known = 0
        total = 0.0
        for matter, count in ql.matters.items():
            total += count * self._core.matter_estimate(state, matter, queue)
            known += count
        return (total + (n - known) * base) / n
