"""A device kind defined only in the test suite (tests/devkit_bell.py: kind, driver, profile, app,
emulator) runs end to end on a node started from a config file, over Mosquitto, with nothing
under hallctl/node/ knowing it exists."""

from __future__ import annotations

import asyncio
import json
import subprocess
from pathlib import Path

import aiomqtt
import devkit_bell
from conftest import PYTHON, ROOT, spawn_env, write_toml
from hallkit import HALL, Observer, Running

from hallctl.bus.topics import Topics
from hallctl.config import load_node_config
from hallctl.node.daemon import Node

T = Topics(HALL)


def _config(tmp: Path, host: str, port: int, bell_port: int, window: str = "3", app: str = "bell_ringer",
            plugins: str = "") -> Path:
    profiles = tmp / "profiles"
    profiles.mkdir(exist_ok=True)
    (profiles / "acme-bell-1.toml").write_text(devkit_bell.PROFILE, encoding="utf-8")
    return write_toml(tmp / "node.toml", f"""
        [node]
        id = "bell-node"
        hall = "{HALL}"
        profile_dirs = ["profiles"]
        plugins = [{plugins}]

        [mqtt]
        host = "{host}"
        port = {port}

        [store]
        path = "bell-node.db"

        [[device]]
        id = "bell"
        profile = "acme-bell-1"
        app = "{app}"
        probe_interval_s = 0.2
        [device.options]
        port = {bell_port}
        window = "{window}"
        """)


async def test_a_kind_from_outside_runs_end_to_end(mosquitto_session, tmp_path):
    host, port = mosquitto_session.host, mosquitto_session.port
    nid = "bell-node"
    async with devkit_bell.BellEmulator() as bell:
        node = Node(load_node_config(_config(tmp_path, host, port, bell.port)))
        topics = [T.node_birth(nid), T.dev_state(nid, "bell"), T.dev_res(nid, "bell", "ring").replace("/ring", "/+"),
                  T.dev_event(nid, "bell", "pressed")]
        async with Observer(host, port, topics) as obs:
            run = Running(node)
            try:
                async with asyncio.timeout(10):
                    await node.ready.wait()
                # the birth lets a client that knows no bell drive it
                birth = (await obs.wait_for(T.node_birth(nid), lambda d: d["devices"]))[-1]
                (dev,) = birth["devices"]
                assert dev["kind"] == "test_bell" and dev["model"] == {"vendor": "Acme (test)", "name": "Bell-1"}
                assert dev["features"] == ["chime_test"] and dev["actions"] == ["chime_test", "probe", "ring"]
                assert dev["action_specs"]["ring"]["args"]["properties"]["times"]["maximum"] == 9
                assert dev["action_specs"]["chime_test"]["test"] is True
                await obs.wait_for(T.dev_state(nid, "bell"), lambda d: d["available"] and d["health"] == "ok")

                # the hall calls a number at window 3: the app rings the bell twice
                await obs.publish(T.window_state("3"), {"v": 1, "window": "3", "name": "3号窗口", "state": "open",
                                                        "ticket": {"number": "A007", "queue": "a", "status": "called",
                                                                   "called_at": "2026-11-30T09:00:00+08:00", "recalls": 0}}, retain=True)
                for _ in range(100):
                    if bell.rings == 2:
                        break
                    await asyncio.sleep(0.05)
                assert "RING 2" in bell.heard and bell.rings == 2

                # any announced action runs through the command topic; bad arguments never reach it
                await obs.publish(T.dev_cmd(nid, "bell", "chime_test"), {"v": 1, "request_id": "c1", "data": {}})
                ok = (await obs.wait_for(T.dev_res(nid, "bell", "chime_test")))[0]
                assert ok["status"] == "ok" and ok["data"] == {"rang": 1} and bell.rings == 3
                rings = [h for h in bell.heard if h != "PING"]
                await obs.publish(T.dev_cmd(nid, "bell", "ring"), {"v": 1, "request_id": "r1", "data": {"times": 12}})
                err = (await obs.wait_for(T.dev_res(nid, "bell", "ring")))[0]
                assert err["error"]["code"] == "bad_request" and "data.times" in err["error"]["message"]
                await obs.publish(T.dev_cmd(nid, "bell", "ring"), {"v": 1, "request_id": "r2", "data": {"times": 1.0}})
                ok = (await obs.wait_for(T.dev_res(nid, "bell", "ring"), lambda d: d["request_id"] == "r2"))[0]
                assert ok["data"] == {"rang": 1} and "RING 1" in bell.heard, "1.0 is an integer; the driver gets 1"
                rings = [h for h in bell.heard if h != "PING"]
                await obs.publish(T.dev_cmd(nid, "bell", "show"), {"v": 1, "request_id": "s1", "data": {}})
                err = (await obs.wait_for(T.dev_res(nid, "bell", "show")))[0]
                assert err["error"]["code"] == "unknown_command" and "ring" in err["error"]["message"]
                assert [h for h in bell.heard if h != "PING"] == rings, "refused commands put nothing on the wire"

                # the button: a device event on MQTT, and the app hears it
                await bell.press(2)
                ev = (await obs.wait_for(T.dev_event(nid, "bell", "pressed")))[0]
                assert ev["device"] == "bell" and ev["type"] == "pressed" and ev["data"] == {"button": 2} and ev["v"] == 1 and ev["ts"]
                assert node.apps["bell"].presses == [2]

                # a bell that stops answering is reported with the reason
                bell.silent = True
                state = (await obs.wait_for(T.dev_state(nid, "bell"), lambda d: d["health"] == "fault"))[-1]
                assert state["available"] is False and "did not answer" in state["reason"]
            finally:
                await run.stop()
                await obs.publish(T.window_state("3"), b"", retain=True)


def _node_exit(path: Path) -> subprocess.CompletedProcess[str]:
    env = spawn_env()
    env["PYTHONPATH"] = str(ROOT / "tests")
    return subprocess.run([PYTHON, "-m", "hallctl", "node", "-c", str(path)], capture_output=True, text=True,
                          timeout=60, env=env, cwd=ROOT)


def test_a_profile_of_another_kind_than_the_app_drives_exits_78(tmp_path):
    """The bell (registered by a plugin the config names) given to the window display app:
    refused at start, naming the file and the key."""
    path = _config(tmp_path, "127.0.0.1", 1, 2, app="window_display", plugins='"devkit_bell"')
    proc = _node_exit(path)
    assert proc.returncode == 78, proc.stderr
    assert f"{path}: device[0].profile" in proc.stderr
    assert "test_bell device" in proc.stderr and "window_display" in proc.stderr


def test_a_plugin_that_cannot_be_imported_exits_78(tmp_path):
    path = _config(tmp_path, "127.0.0.1", 1, 2, plugins='"devkit_no_such_module"')
    proc = _node_exit(path)
    assert proc.returncode == 78, proc.stderr
    assert f"{path}: node.plugins[0]: cannot import plugin 'devkit_no_such_module'" in proc.stderr


async def test_a_button_pressed_while_the_broker_is_down_arrives_once_it_is_back(mosquitto, tmp_path, caplog):
    """Device events go through the node's outbox: a press during a broker outage is not lost.
    An event the kind does not declare is a driver bug: logged, never published."""
    import logging

    host, port = mosquitto.host, mosquitto.port
    nid = "bell-node"
    caplog.set_level(logging.ERROR, logger="hallctl.node")
    async with devkit_bell.BellEmulator() as bell:
        node = Node(load_node_config(_config(tmp_path, host, port, bell.port)))
        run = Running(node)
        try:
            async with asyncio.timeout(10):
                await node.ready.wait()
            events = T.dev_event(nid, "bell", "pressed").replace("/pressed", "/+")
            # a listener with a persistent session, subscribed before the outage: whatever the node
            # sends after the broker is back is queued for it, however fast the node reconnects
            async with aiomqtt.Client(host, port, identifier="listener", clean_session=False) as c:
                await c.subscribe(events, qos=1)
            await asyncio.to_thread(mosquitto.stop)
            await bell.press(3)
            await bell.say("JAM")
            for _ in range(100):
                if node.apps["bell"].presses == [3]:
                    break
                await asyncio.sleep(0.05)
            assert node.apps["bell"].presses == [3], "the app hears the press at once"
            await asyncio.to_thread(mosquitto.start)
            got: list[tuple[str, dict]] = []
            async with aiomqtt.Client(host, port, identifier="listener", clean_session=False) as c:
                await c.subscribe(events, qos=1)
                async with asyncio.timeout(15):
                    async for m in c.messages:
                        got.append((str(m.topic), json.loads(m.payload)))
                        if m.topic.matches(T.dev_event(nid, "bell", "pressed")):
                            break
                await asyncio.sleep(0.3)  # a jammed event, if published, would have come with it
            assert got[-1][1]["data"] == {"button": 3} and got[-1][1]["type"] == "pressed"
            assert not [t for t, _ in got if t.endswith("/jammed")]
            assert any("'jammed', which its kind test_bell does not declare" in r.getMessage() for r in caplog.records)
        finally:
            await run.stop()


def test_a_kind_whose_names_cannot_be_topic_levels_is_refused():
    import pytest

    from hallctl_drivers.kinds import Action, Kind, register_kind

    with pytest.raises(ValueError, match="'Card Read' cannot be a topic level"):
        register_kind(Kind("t_reader", "x", {"read": Action("read", "x")}, events={"Card Read": {}}))
    with pytest.raises(ValueError, match="'show/all' cannot be a topic level"):
        register_kind(Kind("t_sign2", "x", {"show/all": Action("show/all", "x")}))
