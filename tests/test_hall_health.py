"""The hall's health as central folds it from the nodes' retained topics (pure; clock injected)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from hallctl.central.health import HallHealth

T0 = datetime(2026, 11, 30, 8, 0, tzinfo=timezone(timedelta(hours=8)))


def birth(*devices: str) -> dict:
    return {"v": 1, "devices": [{"id": d} for d in devices]}


def state(health: str, reason: str = "", available: bool = True) -> dict:
    return {"v": 1, "available": available, "health": health, "reason": reason, "since": "2026-11-30T00:01:00Z"}


def test_healthy_hall_then_a_display_in_fault_then_a_lost_node():
    now = [T0]
    h = HallHealth(lambda: now[0])
    assert h.node_status("window-1", {"state": "ready", "bd_seq": 3, "ts": "x"}, live=False)
    assert h.node_birth("window-1", birth("display"))
    assert h.device_state("window-1", "display", state("ok"))
    doc = h.document()
    assert doc["ok"] is True and doc["problems"] == []
    assert doc["counts"] == {"nodes": 1, "nodes_ready": 1, "devices": 1, "devices_ok": 1}

    assert h.device_state("window-1", "display", state("fault", "probe: no reply", available=False))
    assert not h.device_state("window-1", "display", state("fault", "probe: no reply", available=False)), "no change"
    (p,) = h.document()["problems"]
    assert (p["node"], p["device"], p["health"], p["reason"]) == ("window-1", "display", "fault", "probe: no reply")

    now[0] = T0 + timedelta(minutes=5)
    assert h.node_status("window-1", {"state": "lost", "bd_seq": 3, "ts": "connect-time"}, live=True)
    (p,) = h.document()["problems"]
    assert p["health"] == "lost" and p["device"] is None and p["devices"] == ["display"]
    assert p["since"] == "2026-11-30T00:05:00.000+00:00", "a live loss is dated when seen (UTC)"
    assert h.document()["ts"] == p["since"], "ts: when the document last changed"


def test_a_late_will_of_an_older_connection_is_ignored():
    h = HallHealth(lambda: T0)
    h.node_status("n1", {"state": "ready", "bd_seq": 5}, live=False)
    assert not h.node_status("n1", {"state": "lost", "bd_seq": 4}, live=True)
    assert h.document()["ok"] is True


def test_a_device_without_state_and_a_cleared_node():
    h = HallHealth(lambda: T0)
    h.node_status("n1", {"state": "ready", "bd_seq": 1}, live=False)
    h.node_birth("n1", birth("printer"))
    (p,) = h.document()["problems"]
    assert (p["device"], p["health"], p["since"]) == ("printer", "unknown", None)
    assert h.node_status("n1", None, live=True) and h.document() == {
        "v": 1, "ok": True, "problems": [], "counts": {"nodes": 0, "nodes_ready": 0, "devices": 0, "devices_ok": 0},
        "ts": "2026-11-30T00:00:00.000+00:00"}
