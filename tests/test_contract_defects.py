"""Issue 8: three contract defects an outside integrator found, each seen the way they saw it, with
an independent aiomqtt client (tests/hallkit.py's Observer) on a real Mosquitto.

1. A request published with the retain flag while central (or a node) was connected ran, and then
   stayed retained at the broker.
2. A request on a topic that cannot be answered (a client id outside the id rule, an extra topic
   level) got silence, and nothing said so.
3. A request_id reused with another action got the earlier action's stored answer, status ok.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3

import pytest
from hallkit import HALL, Observer, central, window_node

from hallctl.bus.topics import Topics
from hallctl_drivers.onbon_bx.emulator import BxEmulator

T = Topics(HALL)
REQ = f"hallctl/v1/{HALL}/central/req"


def _req(request_id: str, **data) -> dict:
    return {"v": 1, "request_id": request_id, "data": data}


async def _retained_at_broker(host: str, port: int, topic: str, marker: str) -> list[bytes]:
    """What a fresh subscriber to ``topic`` gets from the broker as retained. ``marker`` is a topic
    known to hold a retained message, subscribed after ``topic``: once it has arrived, any retained
    message on ``topic`` has arrived too."""
    async with Observer(host, port, [topic, marker]) as fresh:
        await fresh.wait_for(marker)
        return [p for t, p, retained in fresh.messages if t == topic and retained and p]


async def _still_retained(host: str, port: int, topic: str, marker: str, within_s: float = 3.0) -> list[bytes]:
    """Whatever is still retained on ``topic`` after waiting up to ``within_s`` for it to go."""
    deadline = asyncio.get_running_loop().time() + within_s
    while True:
        left = await _retained_at_broker(host, port, topic, marker)
        if not left or asyncio.get_running_loop().time() > deadline:
            return left
        await asyncio.sleep(0.2)


def _raw(obs: Observer, topic: str, request_id: str) -> list[bytes]:
    """The raw payloads seen on ``topic`` for ``request_id``, in arrival order."""
    return [p for t, p, _ in obs.messages if t == topic and p and json.loads(p).get("request_id") == request_id]


# -- 1. retained requests -------------------------------------------------------------------------

async def test_a_retained_request_runs_once_and_does_not_stay_retained(mosquitto, tmp_path):
    """The integrator published a ticket.issue WITH the retain flag while central was connected:
    it was answered (MQTT 3.1.1 never tells a live subscriber the flag), but a fresh subscriber to
    the request topic still got it from the broker afterwards: it stayed retained until the next
    central restart dropped it, against "Retained requests are dropped"."""
    host, port = mosquitto.host, mosquitto.port
    topic, res = T.central_req("kiosk-1", "ticket.issue"), T.central_res("kiosk-1")
    async with Observer(host, port, [res, T.event_filter]) as obs:
        async with central(host, port, tmp_path):
            await obs.publish(topic, _req("ret-1", queue="a"), retain=True)
            first = (await obs.wait_for(res, lambda d: d["request_id"] == "ret-1"))[0]
            assert first["status"] == "ok" and first["data"]["ticket"]["number"] == "A001"
            left = await _still_retained(host, port, topic, T.central_status)
            assert left == [], f"the request is still retained at the broker after it ran: {left}"
        async with central(host, port, tmp_path):  # a restart: nothing to replay, nothing runs again
            await obs.publish(topic, _req("ret-2", queue="a"))
            second = (await obs.wait_for(res, lambda d: d["request_id"] == "ret-2"))[0]
            assert second["data"]["ticket"]["number"] == "A002"
            await obs.wait_for(T.event("ticket.issued"), lambda d: d["data"]["number"] == "A002")
        # events are delivered at least once (the first central may stop before its outbox saw the
        # PUBACK): readers drop repeated seqs, and so does this one
        issued = {e["seq"]: e["data"]["number"] for e in obs.docs(T.event("ticket.issued"))}
        assert sorted(issued.values()) == ["A001", "A002"], f"the retained request issued a second ticket: {issued}"
        assert [d["request_id"] for d in obs.docs(res)] == ["ret-1", "ret-2"], "answered once each"


async def test_a_retained_device_command_runs_once_and_does_not_stay_retained(mosquitto, tmp_path):
    """The same for a node: a `show` published WITH the retain flag while the node was connected
    was shown, and then stayed retained at the broker (a fresh subscriber to the command topic got
    it) until the node's next restart dropped it."""
    host, port = mosquitto.host, mosquitto.port
    nid = "window-5"
    cmd, res = T.dev_cmd(nid, "display", "show"), T.dev_res(nid, "display", "show")
    with BxEmulator() as emu:
        async with Observer(host, port, [res]) as obs:
            async with window_node(host, port, tmp_path, "5", emu):
                await obs.publish(cmd, _req("ret-show", lines=["只显示一次"]), retain=True)
                ok = (await obs.wait_for(res, lambda d: d["request_id"] == "ret-show"))[0]
                assert ok["status"] == "ok"
                left = await _still_retained(host, port, cmd, T.node_status(nid))
                assert left == [], f"the command is still retained at the broker after it ran: {left}"
            async with window_node(host, port, tmp_path, "5", emu):  # a restart
                await obs.publish(cmd, _req("after", lines=["之后"]))
                await obs.wait_for(res, lambda d: d["request_id"] == "after")
            shown = [h for h in emu.screens[1].history if "只显示一次" in h]
            assert len(shown) == 1, f"the retained command ran {len(shown)} times"
            assert [d["request_id"] for d in obs.docs(res)] == ["ret-show", "after"]


# -- 2. unanswerable requests ---------------------------------------------------------------------

async def test_unanswerable_requests_are_logged_once_and_counted_in_central_status(mosquitto, tmp_path, caplog):
    """The integrator sent requests on topics central cannot answer: a client id outside the id
    rule (`central/req/Kiosk_1/ticket.issue`: `central/res/Kiosk_1` is not a topic of the contract)
    and an extra topic level (`central/req/kiosk-1/extra/ticket.issue`, which central did not even
    subscribe to). They got silence, while the doc says "every request is answered"; nothing on the
    bus said that anything had been refused."""
    caplog.set_level(logging.WARNING, logger="hallctl.central")
    host, port = mosquitto.host, mosquitto.port
    res = T.central_res("kiosk-1")
    async with central(host, port, tmp_path):
        async with Observer(host, port, [T.central_status, res]) as obs:
            await obs.wait_for(T.central_status, lambda d: d["state"] == "online")
            await obs.publish(f"{REQ}/Kiosk_1/ticket.issue", _req("u-1", queue="a"))
            await obs.publish(f"{REQ}/Kiosk_1/ticket.issue", _req("u-2", queue="a"))  # same topic: not logged again
            await obs.publish(f"{REQ}/kiosk-1/extra/ticket.issue", _req("u-3", queue="a"))
            await obs.publish(f"{REQ}/Kiosk_1/queue.status", _req("u-4"))  # a read-only action
            await obs.publish(f"{REQ}//queue.status", _req("u-6"))  # an empty client id
            await obs.publish(REQ, _req("u-7"))  # no client id, no action
            await obs.publish(f"{REQ}/kiosk-1/ticket.issue", _req("u-5", queue="a"))  # a good one
            good = (await obs.wait_for(res, lambda d: d["request_id"] == "u-5"))[0]
            assert good["data"]["ticket"]["number"] == "A001", "an unanswerable request ran"
            try:
                await obs.wait_for(T.central_status, lambda d: d.get("unanswerable") == 6, timeout=5)
            except TimeoutError:
                pytest.fail(f"central/status does not count the 6 unanswerable requests: {obs.docs(T.central_status)}")
            await asyncio.sleep(1.5)  # a miscount would show by now (the status is re-published at most every 1 s)
            async with Observer(host, port, [T.central_status]) as late:  # the retained document
                doc = (await late.wait_for(T.central_status))[0]
                assert doc["state"] == "online" and doc["unanswerable"] == 6
            assert [d["request_id"] for d in obs.docs(res)] == ["u-5"]
    warned = [r.getMessage() for r in caplog.records if "cannot be answered" in r.getMessage()]
    assert len(warned) == 5, f"one warning per topic: {warned}"
    assert any("Kiosk_1" in w and "client id" in w for w in warned)
    assert any("extra" in w and "levels" in w for w in warned)


# -- 3. a request_id reused with another action -------------------------------------------------

async def test_a_request_id_reused_for_another_action_is_refused_not_replayed(mosquitto, tmp_path):
    """The integrator's kiosk-1 sent ticket.issue with request_id r1, then window.call_next with
    r1: the answer was ticket.issue's stored answer with status ok, and the window called nobody."""
    host, port = mosquitto.host, mosquitto.port
    res = T.central_res("kiosk-1")
    async with central(host, port, tmp_path):
        async with Observer(host, port, [res]) as obs:
            async def ask(action: str, request_id: str, **data) -> dict:
                n = len([d for d in obs.docs(res) if d["request_id"] == request_id])
                await obs.publish(T.central_req("kiosk-1", action), _req(request_id, **data))
                return (await obs.wait_for(res, lambda d: d["request_id"] == request_id, count=n + 1))[-1]

            assert (await ask("window.open", "open-1", window="1"))["status"] == "ok"
            issued = await ask("ticket.issue", "r1", queue="a")
            assert issued["data"]["ticket"]["number"] == "A001"
            reused = await ask("window.call_next", "r1", window="1")
            assert reused["status"] == "error", f"answered with the earlier action's answer: {reused}"
            assert reused["error"]["code"] == "bad_request"
            assert reused["error"]["message"] == "request_id r1 was already used for ticket.issue"
            called = await ask("window.call_next", "r2", window="1")
            assert called["data"]["ticket"]["number"] == "A001", "the refused call_next was executed"
            # the same request again is still its stored answer
            assert await ask("ticket.issue", "r1", queue="a") == issued

            # both at once: the second arrives while the first is still queued or committing
            assert (await ask("window.complete", "done-1", window="1"))["status"] == "ok"
            await obs.publish(T.central_req("kiosk-1", "ticket.issue"), _req("r3", queue="a"))
            await obs.publish(T.central_req("kiosk-1", "window.call_next"), _req("r3", window="1"))
            both = await obs.wait_for(res, lambda d: d["request_id"] == "r3", count=2)
            assert sorted(d["status"] for d in both) == ["error", "ok"], both
            refused = next(d for d in both if d["status"] == "error")
            assert refused["error"]["message"] == "request_id r3 was already used for ticket.issue"
            status = await ask("ticket.status", "s-1", ticket="A002")
            assert status["data"]["ticket"]["status"] == "waiting", "the refused call_next was executed"


async def test_a_duplicate_is_answered_with_the_same_bytes(mosquitto, tmp_path):
    """A duplicate of the same request (a retry after a timeout) is the stored answer re-sent
    unchanged, byte for byte, also after a restart of central: a client may compare or hash it."""
    host, port = mosquitto.host, mosquitto.port
    res, req = T.central_res("kiosk-1"), _req("same-1", queue="a", phone="13800138000")
    async with Observer(host, port, [res]) as obs:
        async with central(host, port, tmp_path):
            await obs.publish(T.central_req("kiosk-1", "ticket.issue"), req)
            await obs.wait_for(res, lambda d: d["request_id"] == "same-1")
            await obs.publish(T.central_req("kiosk-1", "ticket.issue"), req)  # answered from the store
            await obs.wait_for(res, lambda d: d["request_id"] == "same-1", count=2)
        async with central(host, port, tmp_path):
            await obs.publish(T.central_req("kiosk-1", "ticket.issue"), req)
            await obs.wait_for(res, lambda d: d["request_id"] == "same-1", count=3)
        first, second, third = _raw(obs, res, "same-1")
        assert second == first, f"\n{first!r}\n{second!r}"
        assert third == first, f"\n{first!r}\n{third!r}"


#: central's store as hallctl wrote it before issue 8 (schema 1: responses without their action)
_STORE_V1 = """
CREATE TABLE events (seq INTEGER PRIMARY KEY, type TEXT NOT NULL, ts TEXT NOT NULL, data TEXT NOT NULL);
CREATE TABLE responses (request_key TEXT PRIMARY KEY, response TEXT NOT NULL, ts TEXT NOT NULL);
CREATE INDEX responses_ts ON responses (ts);
CREATE TABLE checkpoints (seq INTEGER PRIMARY KEY, day TEXT NOT NULL, state TEXT NOT NULL);
PRAGMA user_version=1;
"""


async def test_an_old_store_is_migrated_and_still_answers_its_duplicates(mosquitto, tmp_path):
    """A store written before the action was kept with each answer is migrated in place when
    central opens it, and a duplicate of a request answered before the upgrade still gets that
    answer, unchanged, and is not executed. (Its action is unknown: such an answer is replayed for
    whatever action reuses its request_id, as before, until it is pruned after 7 days.)"""
    host, port = mosquitto.host, mosquitto.port
    old = {"v": 1, "request_id": "old-1", "status": "ok", "ts": "2026-11-23T01:00:00.000+00:00",
           "data": {"ticket": {"number": "A007", "queue": "a", "status": "waiting"}, "ahead": 0}}
    stored = json.dumps(old, ensure_ascii=False, separators=(",", ":"), sort_keys=True)  # as schema 1 kept it
    db = sqlite3.connect(tmp_path / "central.db")
    db.executescript(_STORE_V1)
    now = "9999-01-01T00:00:00.000000Z"  # never pruned during the test
    db.execute("INSERT INTO responses VALUES (?, ?, ?)", ("kiosk-1:old-1", stored, now))
    db.commit()
    db.close()
    res = T.central_res("kiosk-1")
    async with central(host, port, tmp_path):
        async with Observer(host, port, [res]) as obs:
            await obs.publish(T.central_req("kiosk-1", "ticket.issue"), _req("old-1", queue="a"))
            await obs.wait_for(res, lambda d: d["request_id"] == "old-1")
            assert _raw(obs, res, "old-1") == [stored.encode()]
            await obs.publish(T.central_req("kiosk-1", "ticket.issue"), _req("new-1", queue="a"))
            fresh = (await obs.wait_for(res, lambda d: d["request_id"] == "new-1"))[0]
            assert fresh["data"]["ticket"]["number"] == "A001", "the old request ran again"
            await obs.publish(T.central_req("kiosk-1", "ticket.issue"), _req("new-1", queue="a"))
            await obs.wait_for(res, lambda d: d["request_id"] == "new-1", count=2)
            assert len(set(_raw(obs, res, "new-1"))) == 1
    db = sqlite3.connect(tmp_path / "central.db")
    try:
        assert db.execute("PRAGMA user_version").fetchone()[0] == 2
        rows = dict(db.execute("SELECT request_key, action FROM responses").fetchall())
    finally:
        db.close()
    assert rows == {"kiosk-1:old-1": None, "kiosk-1:new-1": "ticket.issue"}


async def test_a_node_executes_a_request_id_reused_for_another_action(mosquitto, tmp_path):
    """On a node the dedup key is device, action and request_id: a request_id reused with another
    action is a new request there, executed and answered on its own response topic (unchanged by
    issue 8; this test says so)."""
    host, port = mosquitto.host, mosquitto.port
    nid = "window-6"
    with BxEmulator() as emu:
        async with window_node(host, port, tmp_path, "6", emu):
            async with Observer(host, port, [f"hallctl/v1/{HALL}/node/{nid}/dev/display/res/+"]) as obs:
                await obs.publish(T.dev_cmd(nid, "display", "show"), _req("n-1", lines=["第一"]))
                shown = (await obs.wait_for(T.dev_res(nid, "display", "show")))[0]
                await obs.publish(T.dev_cmd(nid, "display", "clear"), _req("n-1"))
                cleared = (await obs.wait_for(T.dev_res(nid, "display", "clear")))[0]
                assert shown["status"] == "ok" and cleared["status"] == "ok"
                assert cleared["request_id"] == "n-1"
                assert emu.screens[1].lines in ([], [""]), "the clear was executed"
