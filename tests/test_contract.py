"""Topic contract v1 over a real Mosquitto: birth/will with bd_seq, re-birth, retained commands,
idempotent requests, coded errors for bad input (docs/topics.md)."""

from __future__ import annotations

import json
import os
import signal
import subprocess

from conftest import PYTHON, spawn_env
from hallkit import HALL, Observer, central, node_config, window_node

from hallctl.bus.topics import Topics
from hallctl_drivers.onbon_bx.emulator import BxEmulator

T = Topics(HALL)


def _toml(doc: dict) -> str:
    """A tiny TOML writer for the node configs used here (tables, arrays of tables, scalars)."""
    out: list[str] = []
    for key, value in doc.items():
        if isinstance(value, dict):
            out.append(f"[{key}]")
            out += [f"{k} = {json.dumps(v)}" for k, v in value.items()]
        else:
            for item in value:
                out.append(f"[[{key}]]")
                out += [f"{k} = {json.dumps(v)}" for k, v in item.items() if not isinstance(v, dict)]
                for k, v in item.items():
                    if isinstance(v, dict):
                        out.append(f"[{key}.{k}]")
                        out += [f"{kk} = {json.dumps(vv)}" for kk, vv in v.items()]
    return "\n".join(out) + "\n"


def _spawn_node(cfg_path) -> subprocess.Popen:
    return subprocess.Popen([PYTHON, "-m", "hallctl", "node", "-c", str(cfg_path)], env=spawn_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)


async def test_birth_and_will_share_bd_seq_kill9_is_lost_restart_is_ready(mosquitto, tmp_path):
    with BxEmulator(addresses=[1]) as emu:
        cfg = tmp_path / "node.toml"
        cfg.write_text(_toml(node_config(mosquitto.host, mosquitto.port, tmp_path, "3", emu.port)))
        status, birth = T.node_status("window-3"), T.node_birth("window-3")
        async with Observer(mosquitto.host, mosquitto.port, [status, birth]) as obs:
            proc = _spawn_node(cfg)
            try:
                ready = (await obs.wait_for(status, lambda d: d["state"] == "ready", timeout=15))[0]
                born = (await obs.wait_for(birth, lambda d: d["bd_seq"] == ready["bd_seq"]))[0]
                assert born["devices"][0]["id"] == "display"
                assert "show" in born["devices"][0]["actions"]
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(10)
                lost = (await obs.wait_for(status, lambda d: d["state"] == "lost"))[0]
                assert lost["bd_seq"] == ready["bd_seq"], "the will carries the bd_seq of its birth"
                proc = _spawn_node(cfg)
                again = (await obs.wait_for(status, lambda d: d["state"] == "ready" and d["bd_seq"] > ready["bd_seq"],
                                            timeout=15))[0]
                assert again["bd_seq"] == ready["bd_seq"] + 1
            finally:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
            # a clean stop says so, with the same bd_seq
            off = (await obs.wait_for(status, lambda d: d["state"] == "offline"))[0]
            assert off["bd_seq"] == again["bd_seq"]


async def test_late_will_of_an_old_connection_is_overwritten(mosquitto, tmp_path):
    with BxEmulator() as emu:
        async with window_node(mosquitto.host, mosquitto.port, tmp_path, "1", emu) as node:
            status = T.node_status(node.id)
            async with Observer(mosquitto.host, mosquitto.port, [status]) as obs:
                await obs.wait_for(status, lambda d: d["state"] == "ready")
                # what the broker would publish for a connection that died before this one
                await obs.publish(status, {"v": 1, "state": "lost", "bd_seq": node.bd_seq - 1, "ts": "2026-11-30T08:00:00.000Z"}, retain=True)
                await obs.wait_for(status, lambda d: d["state"] == "ready", count=2)
            async with Observer(mosquitto.host, mosquitto.port, [status]) as late:
                retained = (await late.wait_for(status))[0]
                assert retained["state"] == "ready" and retained["bd_seq"] == node.bd_seq


async def test_nodes_rebirth_when_central_comes_back(mosquitto, tmp_path):
    with BxEmulator() as emu:
        async with window_node(mosquitto.host, mosquitto.port, tmp_path, "1", emu) as node:
            birth = T.node_birth(node.id)
            async with Observer(mosquitto.host, mosquitto.port, [birth, T.central_status]) as obs:
                await obs.wait_for(birth)  # the retained one
                async with central(mosquitto.host, mosquitto.port, tmp_path):
                    await obs.wait_for(T.central_status, lambda d: d["state"] == "online")
                    await obs.wait_for(birth, count=2)
                await obs.wait_for(T.central_status, lambda d: d["state"] == "offline")
                async with central(mosquitto.host, mosquitto.port, tmp_path):
                    births = await obs.wait_for(birth, count=3)
                    assert {b["bd_seq"] for b in births} == {node.bd_seq}, "a re-birth is not a new connection"


async def _request(obs: Observer, client: str, action: str, payload, *, retain=False) -> None:
    await obs.publish(T.central_req(client, action), payload, retain=retain)


async def test_duplicate_request_id_executes_once_and_is_answered_twice(mosquitto, tmp_path):
    async with central(mosquitto.host, mosquitto.port, tmp_path):
        res = T.central_res("kiosk-1")
        async with Observer(mosquitto.host, mosquitto.port, [res, T.event_filter]) as obs:
            req = {"v": 1, "request_id": "k1-0001", "data": {"queue": "a", "phone": "13800138000"}}
            await _request(obs, "kiosk-1", "ticket.issue", req)
            await _request(obs, "kiosk-1", "ticket.issue", req)
            answers = await obs.wait_for(res, lambda d: d["request_id"] == "k1-0001", count=2)
            assert answers[0] == answers[1]
            assert answers[0]["status"] == "ok"
            assert answers[0]["data"]["ticket"]["number"] == "A001"
            assert answers[0]["data"]["ticket"]["phone_masked"] == "138****8000"
            assert "13800138000" not in json.dumps(answers[0])
            # a second, different request proves the first was counted once
            await _request(obs, "kiosk-1", "ticket.issue", {"v": 1, "request_id": "k1-0002", "data": {"queue": "a"}})
            nxt = (await obs.wait_for(res, lambda d: d["request_id"] == "k1-0002"))[0]
            assert nxt["data"]["ticket"]["number"] == "A002"
            issued = await obs.wait_for(T.event("ticket.issued"), count=2)
            assert [e["data"]["number"] for e in issued] == ["A001", "A002"]
            assert all("13800138000" not in json.dumps(e) for e in issued)
    # and after a restart of central the duplicate is still answered from the store, not executed
    async with central(mosquitto.host, mosquitto.port, tmp_path):
        async with Observer(mosquitto.host, mosquitto.port, [res]) as obs:
            await _request(obs, "kiosk-1", "ticket.issue", req)
            again = (await obs.wait_for(res, lambda d: d["request_id"] == "k1-0001"))[0]
            assert again == answers[0]
            await _request(obs, "kiosk-1", "ticket.issue", {"v": 1, "request_id": "k1-0003", "data": {"queue": "a"}})
            third = (await obs.wait_for(res, lambda d: d["request_id"] == "k1-0003"))[0]
            assert third["data"]["ticket"]["number"] == "A003"


async def test_bad_requests_get_coded_errors_and_central_keeps_serving(mosquitto, tmp_path):
    async with central(mosquitto.host, mosquitto.port, tmp_path):
        res = T.central_res("tester")
        async with Observer(mosquitto.host, mosquitto.port, [res]) as obs:
            await _request(obs, "tester", "ticket.issue", b"{not json")
            await _request(obs, "tester", "ticket.issue", {"v": 1, "request_id": "r-schema", "data": {"queue": 7}})
            await _request(obs, "tester", "ticket.explode", {"v": 1, "request_id": "r-unknown", "data": {}})
            await _request(obs, "tester", "window.call_next", {"v": 1, "request_id": "r-nowin", "data": {"window": "99"}})
            await _request(obs, "tester", "ticket.issue", {"v": 1, "request_id": "r-ok", "data": {"queue": "b"}})
            docs = await obs.wait_for(res, count=5)
            by_id = {d["request_id"]: d for d in docs}
            assert by_id[None]["error"]["code"] == "bad_request"
            assert by_id["r-schema"]["error"]["code"] == "bad_request"
            assert "queue" in by_id["r-schema"]["error"]["message"]
            assert by_id["r-unknown"]["error"]["code"] == "unknown_command"
            assert by_id["r-nowin"]["error"]["code"] == "not_found"
            assert by_id["r-ok"]["status"] == "ok" and by_id["r-ok"]["data"]["ticket"]["number"] == "B001"


async def test_retained_requests_are_dropped_and_cleared(mosquitto, tmp_path):
    """A request left retained on the broker would run again at every restart of central
    (Tasmota's ghost switching): it is dropped, and cleared from the broker."""
    req = T.central_req("ghost", "ticket.issue")
    async with Observer(mosquitto.host, mosquitto.port, [T.central_res("ghost")]) as obs:
        await obs.publish(req, {"v": 1, "request_id": "g-1", "data": {"queue": "a"}}, retain=True)
        async with central(mosquitto.host, mosquitto.port, tmp_path) as svc:
            await _request(obs, "ghost", "ticket.issue", {"v": 1, "request_id": "g-2", "data": {"queue": "a"}})
            ok = (await obs.wait_for(T.central_res("ghost"), lambda d: d["request_id"] == "g-2"))[0]
            assert ok["data"]["ticket"]["number"] == "A001", "the retained request issued no ticket"
            assert [d["request_id"] for d in obs.docs(T.central_res("ghost"))] == ["g-2"]
            assert svc.dropped_retained == 1
    async with Observer(mosquitto.host, mosquitto.port, [req, T.central_status]) as late:
        await late.wait_for(T.central_status)  # retained messages have arrived by now
        assert late.docs(req) == [], "the ghost request was cleared from the broker"


async def test_device_commands_errors_duplicates_and_retained(mosquitto, tmp_path):
    with BxEmulator() as emu:
        async with window_node(mosquitto.host, mosquitto.port, tmp_path, "2", emu) as node:
            nid = node.id
            show_res = T.dev_res(nid, "display", "show")
            filters = [f"hallctl/v1/{HALL}/node/{nid}/dev/+/res/+"]
            async with Observer(mosquitto.host, mosquitto.port, filters) as obs:
                frames_before = len(emu.screens[1].frames)
                cmd = {"v": 1, "request_id": "d-1", "data": {"lines": ["测试", "显示屏"]}}
                await obs.publish(T.dev_cmd(nid, "display", "show"), cmd)
                await obs.publish(T.dev_cmd(nid, "display", "show"), cmd)
                answers = await obs.wait_for(show_res, lambda d: d["request_id"] == "d-1", count=2)
                assert answers[0] == answers[1] and answers[0]["status"] == "ok"
                assert emu.screens[1].lines == ["测试", "显示屏"]
                assert len(emu.screens[1].frames) == frames_before + 1, "executed once"

                await obs.publish(T.dev_cmd(nid, "printer", "print"), {"v": 1, "request_id": "d-2", "data": {}})
                await obs.publish(T.dev_cmd(nid, "display", "explode"), {"v": 1, "request_id": "d-3", "data": {}})
                await obs.publish(T.dev_cmd(nid, "display", "show"), b"\xff\xfe garbage")
                await obs.publish(T.dev_cmd(nid, "display", "show"), {"v": 1, "request_id": "d-4", "data": {"lines": "x"}})
                nodev = (await obs.wait_for(T.dev_res(nid, "printer", "print")))[0]
                assert nodev["error"]["code"] == "unknown_device"
                unk = (await obs.wait_for(T.dev_res(nid, "display", "explode")))[0]
                assert unk["error"]["code"] == "unknown_command"
                bad = await obs.wait_for(show_res, lambda d: d["status"] == "error", count=2)
                assert {d["error"]["code"] for d in bad} == {"bad_request"}
                assert {d["request_id"] for d in bad} == {None, "d-4"}
                # still serving
                await obs.publish(T.dev_cmd(nid, "display", "show"), {"v": 1, "request_id": "d-5", "data": {"lines": ["好"]}})
                await obs.wait_for(show_res, lambda d: d["request_id"] == "d-5")
                assert emu.screens[1].lines == ["好"]


async def test_retained_device_command_is_dropped_at_node_start(mosquitto, tmp_path):
    nid = "window-4"
    cmd = T.dev_cmd(nid, "display", "show")
    with BxEmulator() as emu:
        async with Observer(mosquitto.host, mosquitto.port, [T.dev_res(nid, "display", "show")]) as obs:
            await obs.publish(cmd, {"v": 1, "request_id": "d-ghost", "data": {"lines": ["幽灵"]}}, retain=True)
            async with window_node(mosquitto.host, mosquitto.port, tmp_path, "4", emu) as node:
                await obs.publish(cmd, {"v": 1, "request_id": "d-live", "data": {"lines": ["真的"]}})
                await obs.wait_for(T.dev_res(nid, "display", "show"), lambda d: d["request_id"] == "d-live")
                assert "幽灵" not in "".join(emu.screens[1].history)
                assert [d["request_id"] for d in obs.docs(T.dev_res(nid, "display", "show"))] == ["d-live"]
                assert node.dropped_retained == 1
