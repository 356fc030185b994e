"""Outbox: a real SQLite file, reopened, and a writer killed mid-stream."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading

import pytest

from hallctl.runtime.outbox import Outbox, OutboxItem


@pytest.fixture
def db_path(tmp_path):
    return tmp_path / "outbox.db"


def test_put_peek_ack(db_path):
    with Outbox(db_path) as box:
        a = box.put("hallctl/v1/h/central/req/ticket.issue", b'{"request_id":"1"}')
        b = box.put("hallctl/v1/h/node/n/status", b"online", qos=0, retain=True)
        assert len(box) == 2
        items = box.peek()
        assert [i.id for i in items] == [a, b]
        first = items[0]
        assert isinstance(first, OutboxItem)
        assert (first.topic, first.payload, first.qos, first.retain) == (
            "hallctl/v1/h/central/req/ticket.issue", b'{"request_id":"1"}', 1, False)
        assert items[1].retain is True and items[1].qos == 0
        assert box.peek(limit=1) == [first]
        box.ack(a)
        assert [i.id for i in box.peek()] == [b]
        box.ack(a)  # a duplicate ack (QoS 1 redelivery) is harmless
        box.ack(b)
        assert len(box) == 0 and box.peek() == []


def test_ids_are_never_reused(db_path):
    with Outbox(db_path) as box:
        a = box.put("t", b"1")
        box.ack(a)
        b = box.put("t", b"2")
        assert b > a


def test_items_survive_close_and_reopen(db_path):
    box = Outbox(db_path)
    ids = [box.put("t/x", f"msg {n}".encode()) for n in range(5)]
    box.ack(ids[0])
    box.close()
    box.close()  # idempotent

    with Outbox(db_path) as again:
        assert len(again) == 4
        assert [(i.id, i.payload) for i in again.peek()] == [
            (i, f"msg {n}".encode()) for n, i in enumerate(ids) if n > 0]
        assert again.put("t/x", b"next") > ids[-1]


def test_bad_input_is_rejected_and_nothing_stored(db_path):
    with Outbox(db_path) as box:
        with pytest.raises(TypeError):
            box.put("t", "not bytes")  # type: ignore[arg-type]
        with pytest.raises(ValueError):
            box.put("t", b"x", qos=3)
        with pytest.raises(ValueError):
            box.put("", b"x")
        assert len(box) == 0


def test_cap_drops_oldest_and_says_so(db_path, caplog):
    with Outbox(db_path, max_items=3) as box:
        ids = [box.put("t", bytes([n])) for n in range(3)]
        with caplog.at_level(logging.WARNING, logger="hallctl.runtime.outbox"):
            newest = box.put("t", b"new")
        assert [i.id for i in box.peek()] == [ids[1], ids[2], newest]
        assert len(box) == 3 and box.dropped == 1
        warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warnings) == 1 and "dropped the 1 oldest" in warnings[0].getMessage()


def test_closed_outbox_raises(db_path):
    box = Outbox(db_path)
    box.close()
    with pytest.raises(RuntimeError, match="closed"):
        box.put("t", b"x")


_WRITER = textwrap.dedent("""
    import sys
    from hallctl.runtime.outbox import Outbox
    box = Outbox(sys.argv[1])
    n = 0
    while True:
        n += 1
        item_id = box.put("hallctl/v1/h/central/req/evaluation.submit", b"payload %d" % n)
        print(item_id, flush=True)
""")


def test_sigkilled_writer_leaves_readable_db_with_contiguous_ids(db_path):
    proc = subprocess.Popen(
        [sys.executable, "-c", _WRITER, str(db_path)], stdout=subprocess.PIPE, text=True
    )
    try:
        reported = []
        while len(reported) < 200:
            line = proc.stdout.readline()
            assert line, "writer died early"
            reported.append(int(line))
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL

    raw = sqlite3.connect(db_path)
    assert raw.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    raw.close()
    with Outbox(db_path) as box:
        ids = [i.id for i in box.peek(limit=1_000_000)]
    assert ids == list(range(1, len(ids) + 1))  # contiguous, nothing half-written
    assert ids[-1] >= reported[-1]  # every put that returned is on disk
    assert reported == list(range(1, len(reported) + 1))


async def test_wait_nonempty_wakes_on_put_from_the_same_loop(db_path):
    with Outbox(db_path) as box:
        waiter = asyncio.create_task(box.wait_nonempty())
        await asyncio.sleep(0)
        assert not waiter.done()
        box.put("t", b"x")
        await asyncio.wait_for(waiter, 10)


async def test_wait_nonempty_wakes_on_put_from_another_thread(db_path):
    with Outbox(db_path) as box:
        waiter = asyncio.create_task(box.wait_nonempty())
        await asyncio.sleep(0)
        thread = threading.Thread(target=box.put, args=("t", b"x"))
        thread.start()
        await asyncio.wait_for(waiter, 10)
        thread.join()


async def test_wait_nonempty_returns_at_once_when_items_wait(db_path):
    with Outbox(db_path) as box:
        await box.aput("t", b"x")
        await asyncio.wait_for(box.wait_nonempty(), 10)
        [item] = await box.apeek()
        await box.aack(item.id)
        assert len(box) == 0


def test_constructing_touches_nothing_and_opening_creates(tmp_path):
    path = tmp_path / "later" / "outbox.db"
    box = Outbox(path)
    assert not path.parent.exists()
    with box:
        assert path.exists()


def test_ack_many_deletes_a_batch_at_once_and_keeps_the_rest(db_path):
    with Outbox(db_path) as box:
        ids = box.put_many([("t", bytes([n]), 1, False) for n in range(250)])
        assert ids == list(range(ids[0], ids[0] + 250)), "ids follow the order of the items"
        box.ack_many(ids[:180] + [10_000])  # an unknown id is ignored
        assert len(box) == 70 and [i.payload for i in box.peek(100)] == [bytes([n]) for n in range(180, 250)]
    with Outbox(db_path) as again:
        assert len(again) == 70
