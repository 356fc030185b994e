"""Defects an outside integrator found in what central accepts (issue 8): each test fails on the
code before its fix. The answers are read over Mosquitto, as the integrator read them."""

from __future__ import annotations

import asyncio
import json
import re

from hallkit import HALL, Observer, central, node_config

from hallctl.bus.topics import Topics

T = Topics(HALL)


def _req(rid: str, data: dict) -> dict:
    return {"v": 1, "request_id": rid, "data": data}


async def _answer(obs: Observer, client: str, rid: str) -> dict:
    return (await obs.wait_for(T.central_res(client), lambda d: d.get("request_id") == rid))[0]


async def test_a_payload_of_nested_brackets_is_answered(mosquitto_session, tmp_path):
    """60 KB of nested brackets: the handler died with RecursionError and nobody was answered.
    Now: bad_request, and central serves the next request."""
    host, port = mosquitto_session.host, mosquitto_session.port
    async with central(host, port, tmp_path), Observer(host, port, [T.central_res("kiosk-1")]) as obs:
        deep = b'{"v": 1, "request_id": "deep", "data": {"x": ' + b"[" * 30000 + b"]" * 30000 + b"}}"
        await obs.publish(T.central_req("kiosk-1", "ticket.issue"), deep)
        err = (await obs.wait_for(T.central_res("kiosk-1")))[0]
        assert err["status"] == "error" and err["error"]["code"] == "bad_request"
        assert "nests deeper than 32 levels" in err["error"]["message"]
        await obs.publish(T.central_req("kiosk-1", "ticket.issue"), _req("after", {"queue": "a"}))
        assert (await _answer(obs, "kiosk-1", "after"))["status"] == "ok"


async def test_a_phone_number_is_no_clerk_id_and_no_channel(mosquitto_session, tmp_path):
    """A clerk id 13800138000 was accepted and published unmasked on the retained window state and
    event/window.opened; a channel 13912345678 unmasked on event/ticket.issued. Both are refused
    now, and nothing personal reaches an open topic."""
    host, port = mosquitto_session.host, mosquitto_session.port
    topics = [T.central_res("clerk-1"), T.central_res("kiosk-1"), T.window_state("1"), T.event("window.opened"),
              T.event("ticket.issued")]
    async with central(host, port, tmp_path), Observer(host, port, topics) as obs:
        await obs.publish(T.central_req("clerk-1", "window.open"), _req("o1", {"window": "1", "clerk": "13800138000"}))
        err = await _answer(obs, "clerk-1", "o1")
        assert err["error"]["code"] == "bad_request" and err["error"]["detail"] == {"field": "clerk"}
        await obs.publish(T.central_req("kiosk-1", "ticket.issue"), _req("t1", {"queue": "a", "channel": "13912345678"}))
        err = await _answer(obs, "kiosk-1", "t1")
        assert err["error"]["code"] == "bad_request" and "kiosk, window, online, app" in err["error"]["message"]
        await obs.publish(T.central_req("kiosk-1", "ticket.issue"), _req("t2", {"queue": "a", "channel": "online"}))
        assert (await _answer(obs, "kiosk-1", "t2"))["data"]["ticket"]["channel"] == "online"
        await asyncio.sleep(0.3)
        seen = " ".join(p.decode() for _, p, _ in obs.messages)
        assert not re.search(r"1[3-9]\d{9}", seen), "a phone number reached an open topic"
        assert obs.docs(T.event("window.opened")) == []


async def test_an_offline_device_says_unknown_command_for_an_action_it_lacks(mosquitto_session, tmp_path):
    """An offline device answered device_offline to an action it does not have (a retry would
    never help); now unknown_command, and device_offline only for its own actions."""
    from hallctl.config import parse_node_config
    from hallctl.node.daemon import Node
    from hallctl_drivers.onbon_bx.emulator import BxEmulator
    from hallkit import Running

    host, port = mosquitto_session.host, mosquitto_session.port
    with BxEmulator() as emu:
        emu.unplug()  # the adapter is pulled: the display never comes up
        node = Node(parse_node_config(node_config(host, port, tmp_path, "1", emu.port)))
        res = T.dev_res("window-1", "display", "x").replace("/x", "/+")
        async with Observer(host, port, [res, T.dev_state("window-1", "display")]) as obs:
            run = Running(node)
            try:
                await obs.wait_for(T.dev_state("window-1", "display"), lambda d: d["health"] == "fault")
                await obs.publish(T.dev_cmd("window-1", "display", "print"), _req("p1", {}))
                await obs.publish(T.dev_cmd("window-1", "display", "ping"), _req("p2", {}))
                lacks = (await obs.wait_for(T.dev_res("window-1", "display", "print")))[0]
                offline = (await obs.wait_for(T.dev_res("window-1", "display", "ping")))[0]
                assert lacks["error"]["code"] == "unknown_command" and "ping" in lacks["error"]["message"]
                assert offline["error"]["code"] == "device_offline"
            finally:
                await run.stop()


def test_the_example_config_issues_at_any_time_when_its_hours_block_is_left_out():
    """The example's comment said 'Leave hours out to issue at any time', but leaving out that one
    line made the file invalid (weekdays and holidays need hours). The comment now names the lines
    to leave out, and doing what it says gives a hall without opening hours."""
    from pathlib import Path

    from hallctl.central.config import parse_central_config
    import tomllib

    text = (Path(__file__).resolve().parent.parent / "config" / "central.example.toml").read_text(encoding="utf-8")
    comment = next(line for line in text.splitlines() if "to issue at any time" in line)
    keys = re.findall(r'"(\w+)"', comment)
    assert keys == ["hours", "weekdays", "closed_dates", "open_dates"], comment
    kept = "\n".join(line for line in text.splitlines() if line.split("=")[0].strip() not in keys)
    cfg = parse_central_config(tomllib.loads(kept))
    assert cfg.hall_settings.hours is None


async def test_an_unknown_action_is_answered_with_every_action_central_has(mosquitto_session, tmp_path):
    """central's unknown_command listed its core's actions but not kpi.summary and staffing.advice,
    which work; an integrator reading the list would not know them."""
    host, port = mosquitto_session.host, mosquitto_session.port
    async with central(host, port, tmp_path), Observer(host, port, [T.central_res("kiosk-1")]) as obs:
        await obs.publish(T.central_req("kiosk-1", "ticket.frobnicate"), _req("u1", {}))
        err = await _answer(obs, "kiosk-1", "u1")
        assert err["error"]["code"] == "unknown_command"
        for action in ("ticket.issue", "window.call_next", "queue.status", "kpi.summary", "staffing.advice"):
            assert action in err["error"]["message"]


def test_the_queries_refuse_unknown_fields_as_every_other_action(tmp_path):
    """kpi.summary and staffing.advice took any data; every other action answers an unknown field
    bad_request naming it (the request schema is closed)."""
    from hallkit import hall_spec

    from hallctl.central.service import CentralService, MqttSettings

    svc = CentralService(hall_spec(), str(tmp_path / "c.db"), MqttSettings())
    for action, data in (("kpi.summary", {"dya": "2026-11-30"}), ("staffing.advice", {"day": "2026-11-30"})):
        answer = svc.respond("k", action, json.dumps({"v": 1, "request_id": "q", "data": data}).encode())
        assert answer["error"]["code"] == "bad_request" and answer["error"]["detail"]["field"] == next(iter(data)), answer
    ok = svc.respond("k", "kpi.summary", b'{"v": 1, "request_id": "q2", "data": {"day": "2026-11-30"}}')
    assert ok["status"] == "ok"
