"""Wait prediction (docs/assignment.md, "Wait prediction"): the learned service times, the
predicted wait on the ticket, in the issue reply and on the board, and their replay."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from hallctl.central.core import Central
from hallctl.central.model import HallSpec, QueueSpec, WindowSpec
from hallctl.errors import ConfigError

SH = ZoneInfo("Asia/Shanghai")
START = datetime(2024, 5, 6, 9, 0, tzinfo=SH)


class FakeClock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kw: float) -> None:
        self.now += timedelta(**kw)


def make(n_windows: int, *, prior_s: float = 600.0, policy: str = "default") -> tuple[Central, FakeClock]:
    """A hall of ``n_windows`` universal windows, all open, and queues a (prior ``prior_s``), b."""
    queues = {
        "a": QueueSpec("a", "A", "综合", expected_service_s=prior_s),
        "b": QueueSpec("b", "B", "税务"),
    }
    windows = {f"w{i}": WindowSpec(f"w{i}", f"{i}号窗口") for i in range(1, n_windows + 1)}
    clock = FakeClock()
    c = Central(HallSpec("h", queues, windows, policy=policy), clock)
    for w in windows:
        c.handle("window.open", {"window": w})
    return c, clock


def issue(c: Central, queue: str = "a") -> dict[str, Any]:
    return c.handle("ticket.issue", {"queue": queue}).data


def serve(c: Central, clock: FakeClock, window: str, minutes: float, *, start: bool = True) -> None:
    """Call the next ticket at ``window`` and finish it ``minutes`` later."""
    assert c.handle("window.call_next", {"window": window}).data["ticket"] is not None
    if start:
        c.handle("window.start", {"window": window})
    clock.advance(minutes=minutes)
    c.handle("window.complete", {"window": window})


def test_a_walk_in_to_an_empty_hall_with_free_windows_waits_zero() -> None:
    c, _ = make(3)
    assert c.board_state()["predicted_wait_min"] == {"a": 0.0, "b": 0.0}
    out = issue(c)
    assert out["predicted_wait_min"] == 0.0
    assert out["ticket"]["predicted_wait_min"] == 0.0
    c.handle("window.call_next", {"window": "w1"})
    assert c.board_state()["predicted_wait_min"] == {"a": 0.0, "b": 0.0}  # two windows still free


def test_the_wait_grows_with_the_people_ahead() -> None:
    c, _ = make(2, prior_s=600.0)
    waits = [issue(c)["predicted_wait_min"] for _ in range(5)]
    # 2 windows free: k people ahead at 10 min each over 2 windows
    assert waits == [0.0, 5.0, 10.0, 15.0, 20.0]


def test_all_windows_busy_adds_the_time_until_one_frees() -> None:
    c, _ = make(2, prior_s=600.0)
    for w in ("w1", "w2"):
        issue(c)
        c.handle("window.call_next", {"window": w})
    out = issue(c)  # nobody ahead, both windows busy: the first of two 10-min services ends
    assert out["people_ahead"] == 0 and out["predicted_wait_min"] == 5.0
    assert issue(c)["predicted_wait_min"] == 10.0  # one ahead: 10/2 + 5


def test_more_open_windows_shrink_the_wait() -> None:
    waits = []
    for n in (1, 2, 4):
        c, _ = make(n)
        for _ in range(8):
            issue(c)
        waits.append(issue(c)["predicted_wait_min"])
    assert waits[0] > waits[1] > waits[2] > 0
    assert waits == [80.0, 40.0, 20.0]


def test_closed_and_paused_windows_do_not_count_and_none_open_is_unknown() -> None:
    c, _ = make(2)
    for _ in range(4):
        issue(c)
    c.handle("window.pause", {"window": "w2"})
    assert issue(c)["predicted_wait_min"] == 40.0  # 4 ahead at 10 min on one window
    c.handle("window.close", {"window": "w1"})
    out = issue(c)
    assert out["predicted_wait_min"] is None and out["ticket"]["predicted_wait_min"] is None
    assert c.board_state()["predicted_wait_min"] == {"a": None, "b": None}


def test_the_board_predicts_for_a_walk_in_arriving_now() -> None:
    c, _ = make(2, prior_s=300.0)
    for _ in range(3):
        issue(c, "a")
    issue(c, "b")  # b: prior 600 s
    # everyone waits before a newcomer on universal windows: (3 x 5 + 10) min / 2 windows
    assert c.board_state()["predicted_wait_min"] == {"a": 12.5, "b": 12.5}


def test_the_learned_service_time_converges_to_the_observed_one() -> None:
    c, clock = make(1, prior_s=600.0)
    assert c.service_estimate("a") == 600.0
    for _ in range(100):
        issue(c)
        serve(c, clock, "w1", 4.0)
    assert c.service_estimate("a") == pytest.approx(240.0, abs=3.0)
    assert c.service_estimate("b") == 600.0  # untouched: still its prior
    for _ in range(100):  # without window.start the service counts from the call
        issue(c)
        serve(c, clock, "w1", 2.0, start=False)
    assert c.service_estimate("a") == pytest.approx(120.0, abs=3.0)
    for _ in range(3):
        issue(c)
    assert issue(c)["predicted_wait_min"] == 6.0  # 3 ahead x 2 min on one free window


def test_the_service_time_counts_from_the_start_and_at_speed_one() -> None:
    queues = {"a": QueueSpec("a", "A", "综合", expected_service_s=60.0)}
    windows = {"w1": WindowSpec("w1", "1号窗口", ("a",), speed={"a": 2.0})}
    clock = FakeClock()
    c = Central(HallSpec("h", queues, windows), clock)
    c.handle("window.open", {"window": "w1"})
    issue(c)
    c.handle("window.call_next", {"window": "w1"})
    clock.advance(minutes=3)  # walking to the window: not service
    c.handle("window.start", {"window": "w1"})
    clock.advance(minutes=5)
    c.handle("window.complete", {"window": "w1"})
    # 300 s at a window twice as fast = 600 s of work; the prior (60 s) counts as 3 services
    assert c.service_estimate("a") == pytest.approx(60 + (600 - 60) / 4)


def test_replay_rebuilds_the_same_estimates_across_days() -> None:
    c, clock = make(2)
    for day in range(2):
        for i in range(10):
            issue(c, "ab"[i % 2])
        for i in range(7):
            serve(c, clock, f"w{1 + i % 2}", 3.0 + i)
        clock.advance(days=1)
    for _ in range(3):
        issue(c)
    events = list(_log(c, clock))
    again = Central(c.hall, lambda: (_ for _ in ()).throw(AssertionError("replay read the clock")))
    again.replay(events)
    assert again.state == c.state
    assert again.state.service == c.state.service and c.state.service_n == {"a": 8, "b": 6}
    assert again.board_state() == c.board_state()
    assert again.predicted_wait_s(_waiting(c), clock.now) == c.predicted_wait_s(_waiting(c), clock.now)


def test_a_queue_prior_must_be_positive() -> None:
    for bad in (0, -5, float("nan"), True, "600"):
        with pytest.raises(ConfigError) as err:
            QueueSpec("a", "A", "综合", expected_service_s=bad)  # type: ignore[arg-type]
        assert err.value.key == "queues.a.expected_service_s"


# --- helpers --------------------------------------------------------------------------------


_LOGS: dict[int, list] = {}


def _log(c: Central, clock: FakeClock) -> list:
    return _LOGS[id(c)]


def _waiting(c: Central) -> str:
    return next(iter(c.state.lines.entries))


@pytest.fixture(autouse=True)
def _record_events(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep every event each Central produces, for the replay test."""
    handle = Central.handle

    def recording(self: Central, action: str, data: Any) -> Any:
        out = handle(self, action, data)
        _LOGS.setdefault(id(self), []).extend(out.events)
        return out

    monkeypatch.setattr(Central, "handle", recording)
