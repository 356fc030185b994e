"""The central's event store on a real SQLite file: reload, idempotency, WAL, crash safety."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import textwrap
from datetime import datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from hallctl.central.core import Central
from hallctl.central.model import Event, HallSpec, QueueSpec, WindowSpec
from hallctl.central.store import LOAD_BATCH, DuplicateRequest, Store, StoreCorrupt, StoreError

SH = ZoneInfo("Asia/Shanghai")


def make_hall() -> HallSpec:
    return HallSpec(
        hall_id="xiaoshan",
        queues={"general": QueueSpec("general", "A", "综合受理"), "tax": QueueSpec("tax", "B", "税务")},
        windows={"1": WindowSpec("1", "1号窗口"), "2": WindowSpec("2", "2号窗口", ("tax",))},
    )


def clock() -> datetime:
    return datetime(2024, 5, 6, 9, 30, tzinfo=SH)


def run(central: Central, store: Store, key: str, action: str, data: dict) -> dict:
    """What the central shell does: answer a repeat from the store, else execute and commit."""
    stored = store.response_for(key)
    if stored is not None:
        return stored
    out = central.handle(action, data)
    store.commit(out.events, key, out.data)
    return out.data


def test_commit_and_reload_give_the_same_events_and_state(tmp_path: Path) -> None:
    path = tmp_path / "central.db"
    central = Central(make_hall(), clock)
    with Store(path) as store:
        run(central, store, "kiosk-1:r1", "ticket.issue", {"queue": "general", "phone": "13800138000"})
        run(central, store, "kiosk-1:r2", "ticket.issue", {"queue": "tax"})
        run(central, store, "win-1:r1", "window.open", {"window": "1"})
        run(central, store, "win-1:r2", "window.call_next", {"window": "1"})
        assert store.last_seq() == central.last_seq == 5

    with Store(path) as store:
        events = list(store.load_events())
        assert [e.seq for e in events] == [1, 2, 3, 4, 5]
        assert [e.type for e in events] == [
            "day.started", "ticket.issued", "ticket.issued", "window.opened", "ticket.called",
        ]
        assert events[1].data["phone"] == "13800138000"  # the store keeps the private copy
        assert events[1].data["number"] == "A001"
        assert events[4].ts == "2024-05-06T09:30:00.000+08:00"
        assert list(store.load_events(after=3)) == events[3:]
        restarted = Central(make_hall(), clock)
        restarted.replay(events)
    assert restarted.state == central.state
    assert restarted.window_state("1")["ticket"]["number"] == "A001"
    # the numbering continues after the restart
    assert restarted.handle("ticket.issue", {"queue": "general"}).data["ticket"]["number"] == "A002"


def test_the_rows_are_plain_json(tmp_path: Path) -> None:
    path = tmp_path / "central.db"
    with Store(path) as store:
        store.commit([Event(1, "window.opened", "2024-05-06T09:00:00.000+08:00", {"window": "1"})], "k", {"ok": "是"})
    db = sqlite3.connect(path)
    assert db.execute("SELECT seq, type, ts, data FROM events").fetchall() == [
        (1, "window.opened", "2024-05-06T09:00:00.000+08:00", '{"window":"1"}')
    ]
    assert db.execute("SELECT request_key, response FROM responses").fetchall() == [("k", '{"ok":"是"}')]
    db.close()


def test_a_repeated_request_is_answered_from_the_store_and_runs_once(tmp_path: Path) -> None:
    path = tmp_path / "central.db"
    central = Central(make_hall(), clock)
    with Store(path) as store:
        first = run(central, store, "kiosk-1:42", "ticket.issue", {"queue": "general"})
    # central restarts (replaying the log), then QoS 1 delivers the same request again
    with Store(path) as store:
        central = Central(make_hall(), clock)
        central.replay(store.load_events())
        again = run(central, store, "kiosk-1:42", "ticket.issue", {"queue": "general"})
        assert again == first
        assert again["ticket"]["number"] == "A001"
        assert store.last_seq() == 2
        assert len(central.tickets) == 1
        # committing the same key again is refused and writes nothing
        with pytest.raises(DuplicateRequest) as err:
            store.commit([Event(3, "window.opened", "t", {"window": "1"})], "kiosk-1:42", {"x": 1})
        assert err.value.response == first
        assert store.last_seq() == 2
        assert store.response_for("kiosk-1:43") is None


def test_wal_and_full_sync(tmp_path: Path) -> None:
    path = tmp_path / "central.db"
    with Store(path) as store:
        store.commit([Event(1, "window.opened", "t", {"window": "1"})])
        other = sqlite3.connect(path)
        assert other.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        other.close()
        assert (tmp_path / "central.db-wal").exists()
        # synchronous is per connection: look at the store's own (2 = FULL)
        assert store._db.execute("PRAGMA synchronous").fetchone()[0] == 2


def test_sequence_gaps_and_overlaps_are_refused(tmp_path: Path) -> None:
    with Store(tmp_path / "central.db") as store:
        store.commit([Event(1, "a", "t", {}), Event(2, "a", "t", {})])
        for bad in ([Event(4, "a", "t", {})], [Event(2, "a", "t", {})], [Event(3, "a", "t", {}), Event(5, "a", "t", {})]):
            with pytest.raises(StoreError, match="do not follow stored seq 2"):
                store.commit(bad, "req", {"ok": True})
        assert store.last_seq() == 2
        assert store.response_for("req") is None  # the response went with the refused events
        with pytest.raises(ValueError):
            store.commit([Event(3, "a", "t", {})], None, {"ok": True})


def test_a_response_without_events_is_kept(tmp_path: Path) -> None:
    with Store(tmp_path / "central.db") as store:
        store.commit([], "win-2:7", {"status": "error", "error": {"code": "conflict"}})
        assert store.response_for("win-2:7") == {"status": "error", "error": {"code": "conflict"}}
        assert store.last_seq() == 0


def test_old_responses_are_pruned(tmp_path: Path) -> None:
    now = datetime(2024, 5, 10, 12, 0, tzinfo=timezone.utc)
    with Store(tmp_path / "central.db") as store:
        store.commit([], "old", {"n": 1}, now=now - timedelta(days=8))
        store.commit([], "recent", {"n": 2}, now=now - timedelta(days=6))
        assert store.prune_responses(7, now=now) == 1
        assert store.response_for("old") is None
        assert store.response_for("recent") == {"n": 2}


def test_loading_crosses_batch_boundaries(tmp_path: Path) -> None:
    n = LOAD_BATCH * 2 + 17
    with Store(tmp_path / "central.db") as store:
        store.commit(Event(i, "x", "t", {"i": i}) for i in range(1, n + 1))
        assert [e.data["i"] for e in store.load_events()] == list(range(1, n + 1))


def test_a_file_that_is_not_a_database(tmp_path: Path) -> None:
    path = tmp_path / "central.db"
    path.write_bytes(b"this is not sqlite, it is a ticket printer log\n" * 200)
    store = Store(path)  # constructing touches nothing; opening says what is wrong
    with pytest.raises(StoreCorrupt) as err:
        store.open()
    assert err.value.code == "config_error"
    assert str(path) in err.value.message
    assert "restore a backup" in err.value.message


def test_a_damaged_database(tmp_path: Path) -> None:
    path = tmp_path / "central.db"
    with Store(path) as store:
        store.commit(Event(i, "x", "t", {"pad": "x" * 500}) for i in range(1, 400))
    db = sqlite3.connect(path)
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    raw = bytearray(path.read_bytes())
    page = 4096
    raw[page * 2 : page * 4] = b"\xff" * (page * 2)  # scribble over two pages of the events table
    path.write_bytes(bytes(raw))
    with pytest.raises(StoreCorrupt, match="restore a backup"):
        Store(path).open()


def test_a_store_from_a_newer_hallctl(tmp_path: Path) -> None:
    path = tmp_path / "central.db"
    Store(path).open().close()
    db = sqlite3.connect(path)
    db.execute("PRAGMA user_version=99")
    db.close()
    with pytest.raises(StoreCorrupt, match="newer hallctl"):
        Store(path).open()


def test_close_is_idempotent_and_final(tmp_path: Path) -> None:
    store = Store(tmp_path / "central.db")
    store.close()
    store.close()
    with pytest.raises(StoreError, match="closed"):
        store.last_seq()


# --- crash safety ------------------------------------------------------------------------------

CHILD = textwrap.dedent(
    """
    import sys
    from datetime import datetime
    from zoneinfo import ZoneInfo
    from hallctl.central.core import Central
    from hallctl.central.model import HallSpec, QueueSpec, WindowSpec
    from hallctl.central.store import Store
    from hallctl.errors import HallctlError

    path, run_id = sys.argv[1], sys.argv[2]
    hall = HallSpec(
        hall_id="xiaoshan",
        queues={"general": QueueSpec("general", "A", "综合受理"), "tax": QueueSpec("tax", "B", "税务")},
        windows={"1": WindowSpec("1", "1号窗口"), "2": WindowSpec("2", "2号窗口", ("tax",))},
    )
    store = Store(path)
    central = Central(hall, lambda: datetime(2024, 5, 6, 10, 0, tzinfo=ZoneInfo("Asia/Shanghai")))
    central.replay(store.load_events())
    plan = [
        ("ticket.issue", {"queue": "general", "phone": "13800138000"}),
        ("ticket.issue", {"queue": "tax"}),
        ("window.open", {"window": "1"}),
        ("window.call_next", {"window": "1"}),
        ("window.complete", {"window": "1"}),
        ("window.pause", {"window": "1"}),
    ]
    i = 0
    while True:
        action, data = plan[i % len(plan)]
        i += 1
        key = f"{run_id}:{i}"
        try:
            out = central.handle(action, data)
        except HallctlError as exc:  # e.g. a ticket still at the window from before the kill
            store.commit([], key, {"action": action, "seqs": [], "error": exc.to_dict()})
        else:
            store.commit(out.events, key, {"action": action, "seqs": [e.seq for e in out.events], "data": out.data})
        print(key, flush=True)
    """
)


def test_killing_central_mid_commit_leaves_a_consistent_store(tmp_path: Path) -> None:
    path = tmp_path / "central.db"
    acknowledged: list[str] = []
    # twelve kills at different points; each lands wherever the child happens to be
    for run_id, commits in enumerate((40, 137, 5, 301, 23, 77, 2, 64, 150, 9, 99, 33)):
        child = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(path), f"run{run_id}"], stdout=subprocess.PIPE, text=True
        )
        try:
            assert child.stdout is not None
            for _ in range(commits):
                line = child.stdout.readline()
                assert line, "the child died on its own"
                acknowledged.append(line.strip())
            child.send_signal(signal.SIGKILL)  # while it is busy committing the next ones
        finally:
            child.kill()
            child.wait(timeout=30)
            child.stdout.close()

    with Store(path) as store:
        events = list(store.load_events())
        seqs = [e.seq for e in events]
        assert seqs == list(range(1, len(seqs) + 1)), "gap or disorder in the event log"
        rows = sqlite3.connect(path).execute("SELECT request_key, response FROM responses").fetchall()
        responses = {k: json.loads(r) for k, r in rows}
        # every request acknowledged before the kill is in the store
        assert set(acknowledged) <= set(responses)
        # every stored response has all its events, and no event belongs to no response
        from_responses = sorted(s for r in responses.values() for s in r["seqs"])
        assert from_responses == seqs
        for r in responses.values():
            for s in r["seqs"]:
                assert s <= len(events)
        # the log replays into a valid state; numbers were never reused across the restarts
        central = Central(make_hall(), clock)
        central.replay(events)
        issued = [e.data["number"] for e in events if e.type == "ticket.issued"]
        assert len(issued) == len(set(issued))
        for prefix in ("A", "B"):
            mine = sorted(int(n[1:]) for n in issued if n[0] == prefix)
            assert mine == list(range(1, len(mine) + 1))
        n_issue = sum(1 for r in responses.values() if r["action"] == "ticket.issue" and r["seqs"])
        assert n_issue == len(issued) == len(central.tickets)


def test_constructing_touches_nothing(tmp_path: Path) -> None:
    store = Store(tmp_path / "central.db")
    assert not (tmp_path / "central.db").exists()
    store.close()
    assert not (tmp_path / "central.db").exists()


def test_a_full_disk_is_an_outage_not_a_damaged_store(tmp_path: Path) -> None:
    from hallctl.errors import StorageUnavailable

    with Store(tmp_path / "central.db") as store:
        store.commit([Event(1, "x", "t", {})], "k1", {"ok": 1})
        db = store._db
        db.execute(f"PRAGMA max_page_count={db.execute('PRAGMA page_count').fetchone()[0]}")  # SQLite may not grow
        with pytest.raises(StorageUnavailable, match="the disk is full") as err:
            store.commit_batch([Event(i, "x", "t", {"pad": "x" * 2000}) for i in range(2, 40)], [("k2", {"ok": 2})])
        assert err.value.code == "internal"
        assert store.last_seq() == 1 and store.response_for("k2") is None, "nothing of the batch was written"
        db.execute("PRAGMA max_page_count=1073741823")
        store.commit_batch([Event(2, "x", "t", {})], [("k2", {"ok": 2})])
        assert store.responses_for(["k1", "k2", "k3"]) == {"k1": {"ok": 1}, "k2": {"ok": 2}}
