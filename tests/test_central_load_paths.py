"""Central's request paths on a real Mosquitto and a real SQLite file: a read does not wait behind
writes, copies of a request still in flight run once and get the same answer, a full disk mid-
service answers `internal` and loses nothing committed, and no answer leaves before its commit.

The writer is held with a job of its own between two batches (what a reload does), so writes are
really queued when the read or the copy arrives: the order of arrivals is asserted, not times."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
from typing import AsyncIterator

import aiomqtt
from hallkit import HALL, Observer, central, hall_spec

from hallctl.bus.topics import Topics
from hallctl.central.service import CentralService, MqttSettings
from hallctl.central.store import Store

T = Topics(HALL)
KIOSK, CLERK = T.central_res("kiosk-1"), T.central_res("clerk-1")


@contextlib.asynccontextmanager
async def writer_held(svc: CentralService) -> AsyncIterator[None]:
    """Central's writer busy with a job until the block ends: writes queue behind it."""
    release, started = asyncio.Event(), asyncio.Event()

    async def hold() -> None:
        started.set()
        await release.wait()

    job = asyncio.create_task(svc._exclusive(hold))
    await started.wait()
    try:
        yield
    finally:
        release.set()
        await job


async def until(check, what: str) -> None:
    async with asyncio.timeout(10):
        while not check():
            await asyncio.sleep(0.01)


def issue(rid: str, queue: str = "a") -> dict:
    return {"v": 1, "request_id": rid, "data": {"queue": queue}}


def stored_tickets(path) -> list[str]:
    with contextlib.closing(sqlite3.connect(path)) as db:
        rows = db.execute("SELECT json_extract(data, '$.number') FROM events WHERE type = 'ticket.issued' ORDER BY seq")
        return [r[0] for r in rows]


async def test_a_read_is_answered_from_committed_state_while_writes_wait(mosquitto, tmp_path):
    async with central(mosquitto.host, mosquitto.port, tmp_path) as svc, \
            Observer(mosquitto.host, mosquitto.port, [KIOSK, CLERK]) as obs:
        await obs.publish(T.central_req("kiosk-1", "ticket.issue"), issue("first"))
        await obs.wait_for(KIOSK)
        async with writer_held(svc):
            for i in range(60):
                await obs.publish(T.central_req("kiosk-1", "ticket.issue"), issue(f"w{i}"))
            await until(lambda: len(svc._pending) == 60, "the writes queued at central")
            await obs.publish(T.central_req("clerk-1", "queue.status"), {"v": 1, "request_id": "q1", "data": {}})
            status = (await obs.wait_for(CLERK))[0]
            assert status["status"] == "ok" and status["data"]["waiting"]["a"] == 1, "committed state only"
            assert len(obs.docs(KIOSK)) == 1, "no queued write was answered before the read"
        answers = await obs.wait_for(KIOSK, count=61)
        assert sorted(d["data"]["ticket"]["number"] for d in answers) == [f"A{i:03d}" for i in range(1, 62)]
        kinds = [t for t, _, _ in obs.messages]
        assert kinds.index(CLERK) < kinds.index(KIOSK, 1), "the read came before the writes queued before it"
        await obs.publish(T.central_req("clerk-1", "queue.status"), {"v": 1, "request_id": "q2", "data": {}})
        later = await obs.wait_for(CLERK, lambda d: d["request_id"] == "q2")
        assert later[0]["data"]["waiting"]["a"] == 61


async def test_copies_of_a_request_in_flight_run_once_and_get_the_same_answer(mosquitto, tmp_path):
    async with central(mosquitto.host, mosquitto.port, tmp_path) as svc, \
            Observer(mosquitto.host, mosquitto.port, [KIOSK]) as obs:
        async with writer_held(svc):
            for _ in range(3):  # a QoS 1 redelivery and a kiosk's retry, while the first waits
                await obs.publish(T.central_req("kiosk-1", "ticket.issue"), issue("dup"))
            await until(lambda: "kiosk-1:dup" in svc._pending and svc._pending["kiosk-1:dup"].copies == 3, "copies")
        answers = await obs.wait_for(KIOSK, count=3)
        assert answers[0]["data"]["ticket"]["number"] == "A001" and answers[0] == answers[1] == answers[2]
        # once answered, a copy is answered from the store
        await obs.publish(T.central_req("kiosk-1", "ticket.issue"), issue("dup"))
        assert (await obs.wait_for(KIOSK, count=4))[3] == answers[0]
        assert stored_tickets(svc.store.path) == ["A001"], "executed once"


async def test_a_full_disk_mid_service_answers_internal_and_loses_nothing_committed(mosquitto, tmp_path):
    async with central(mosquitto.host, mosquitto.port, tmp_path) as svc, \
            Observer(mosquitto.host, mosquitto.port, [KIOSK, CLERK]) as obs:
        db = svc.store._db
        # the disk fills up: SQLite may not grow the file past its present size (a real SQLITE_FULL)
        db.execute(f"PRAGMA max_page_count={db.execute('PRAGMA page_count').fetchone()[0]}")
        answered: list[dict] = []
        for i in range(300):
            await obs.publish(T.central_req("kiosk-1", "ticket.issue"), issue(f"t{i}"))
            answered += await obs.wait_for(KIOSK, lambda d, rid=f"t{i}": d["request_id"] == rid)
            if answered[-1]["status"] == "error":
                break
        failed = answered.pop()
        assert failed["error"]["code"] == "internal" and "try again" in failed["error"]["message"]
        numbers = [d["data"]["ticket"]["number"] for d in answered]
        assert numbers == [f"A{i:03d}" for i in range(1, len(numbers) + 1)]
        assert stored_tickets(svc.store.path) == numbers, "everything answered ok is stored"
        await obs.publish(T.central_req("clerk-1", "queue.status"), {"v": 1, "request_id": "q", "data": {}})
        status = (await obs.wait_for(CLERK))[0]
        assert status["data"]["waiting"]["a"] == len(numbers), "memory holds what the disk holds"
        # space is freed: the same request is tried again and gets the next number
        db.execute("PRAGMA max_page_count=1073741823")
        await obs.publish(T.central_req("kiosk-1", "ticket.issue"), issue(failed["request_id"]))
        retry = (await obs.wait_for(KIOSK, lambda d: d["request_id"] == failed["request_id"], count=2))[1]
        assert retry["status"] == "ok" and retry["data"]["ticket"]["number"] == f"A{len(numbers) + 1:03d}"
    with Store(tmp_path / "central.db") as store:  # after the stop: all of it is there
        assert sum(1 for e in store.load_events() if e.type == "ticket.issued") == len(numbers) + 1


async def test_no_answer_leaves_before_its_ticket_is_in_the_file(mosquitto, tmp_path):
    async with central(mosquitto.host, mosquitto.port, tmp_path) as svc:
        reader = sqlite3.connect(svc.store.path)  # another process's view: only what was committed
        async with aiomqtt.Client(mosquitto.host, mosquitto.port, identifier="kiosk-1-test") as kiosk:
            await kiosk.subscribe(KIOSK, qos=1)
            for i in range(80):  # at once: they are applied and committed in batches
                await kiosk.publish(T.central_req("kiosk-1", "ticket.issue"), json.dumps(issue(f"r{i}")), qos=1)
            seen = []
            async with asyncio.timeout(20):
                async for message in kiosk.messages:
                    ticket = json.loads(message.payload)["data"]["ticket"]["id"]
                    row = reader.execute("SELECT 1 FROM events WHERE type = 'ticket.issued' "
                                         "AND json_extract(data, '$.ticket') = ?", (ticket,)).fetchone()
                    seen.append(row is not None)
                    if len(seen) == 80:
                        break
        reader.close()
    assert seen == [True] * 80


def test_the_mqtt_password_is_never_shown():
    settings = MqttSettings(username="central", password="s3cret-pw")
    assert "s3cret-pw" not in repr(settings) and "central" in repr(settings)


def test_constructing_central_touches_no_file(tmp_path):
    svc = CentralService(hall_spec(), str(tmp_path / "not-yet" / "central.db"), MqttSettings())
    assert not (tmp_path / "not-yet").exists()
    svc.open()
    assert (tmp_path / "not-yet" / "central.db").exists()
    svc.store.close()
    svc.outbox.close()
