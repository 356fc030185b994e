"""``hallctl diag`` against the demo hall on Mosquitto, run as a subprocess the way a technician
runs it: every device with its health, a display that goes quiet named with its reason, every
action a display announces driven, ``--json`` of every subcommand parsed."""

from __future__ import annotations

import asyncio
import io
import json
import time

import pytest
from conftest import PYTHON, spawn_env
from hallkit import Observer

from hallctl.bus.topics import Topics
from hallctl.sim.demo import HALL, DemoOptions, demo_hall

T = Topics(HALL)


async def diag(broker, *args: str, env_extra: dict[str, str] | None = None) -> tuple[int, str, str]:
    env = spawn_env()
    env.update({"HALLCTL_BROKER": f"{broker.host}:{broker.port}", "HALLCTL_HALL": HALL, **(env_extra or {})})
    proc = await asyncio.create_subprocess_exec(PYTHON, "-m", "hallctl", "diag", *args, env=env,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    return proc.returncode, out.decode(), err.decode()


@pytest.fixture
async def hall(mosquitto):
    async with demo_hall(DemoOptions(broker=f"{mosquitto.host}:{mosquitto.port}", rate=2.0, service_s=2.0,
                                     seed=3, quiet=True), out=io.StringIO()) as running:
        yield running


async def test_devices_lists_every_display_and_names_one_that_goes_quiet(mosquitto, hall):
    rc, out, err = await diag(mosquitto, "devices", "--json")
    assert rc == 0, out + err
    rows = json.loads(out)["devices"]
    # the demo hall: the hall's screen (board and voice), its kiosk's printer, a display and a
    # keypad per window
    assert [(r["node"], r["device"]) for r in rows] == [("hall-screen", "board"), ("hall-screen", "voice"),
                                                        ("kiosk-1", "printer")] + [
        (f"window-{w}", dev) for w in range(1, 5) for dev in ("display", "keypad")]
    assert all(r["health"] == "ok" for r in rows), rows
    kinds = {r["device"]: r["kind"] for r in rows}
    assert kinds == {"board": "call_board", "voice": "voice_caller", "printer": "ticket_printer",
                     "display": "window_display", "keypad": "window_keypad"}
    assert all(r["model"] == "Onbon 仰邦 BX-6K" for r in rows if r["device"] == "display"), rows

    rc, text, _ = await diag(mosquitto, "devices")
    assert rc == 0 and text.splitlines()[0].split() == ["NODE", "DEVICE", "KIND", "MODEL", "HEALTH", "SINCE", "REASON"]
    assert sum(" ok " in line for line in text.splitlines()) == len(rows)

    async with Observer(mosquitto.host, mosquitto.port, [T.dev_state("window-2", "display")]) as obs:
        silenced = time.monotonic()
        hall.emulators["2"].faults.silent = True
        await obs.wait_for(T.dev_state("window-2", "display"), lambda d: d["health"] == "fault", timeout=10)
        visible_after = time.monotonic() - silenced
    assert visible_after <= 2.0, f"the fault reached the broker after {visible_after:.2f} s"
    rc, out, _ = await diag(mosquitto, "devices", "--json")
    assert rc == 1, "a device not ok is a problem: exit 1"
    bad = [r for r in json.loads(out)["devices"] if r["health"] != "ok"]
    assert [(r["node"], r["health"], r["available"]) for r in bad] == [("window-2", "fault", False)]
    assert "did not answer" in bad[0]["reason"] or "no reply" in bad[0]["reason"], bad[0]["reason"]
    rc, text, _ = await diag(mosquitto, "devices")
    line = next(line for line in text.splitlines() if line.startswith("window-2"))
    # the reason may have moved on between the two calls (a failed show, then a failed probe)
    assert " fault " in line and ("did not answer" in line or "no reply" in line), line

    # central's hall health says the same, and the display is back once it answers again
    await _wait_health(mosquitto, lambda h: any(p["node"] == "window-2" and p["health"] == "fault" for p in h["problems"]))
    hall.emulators["2"].faults.silent = False
    health = await _wait_health(mosquitto, lambda h: h["ok"])
    assert health["counts"] == {"nodes": 6, "nodes_ready": 6, "devices": 11, "devices_ok": 11}


async def _wait_health(broker, pred, timeout: float = 15.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        rc, out, err = await diag(broker, "health", "--json")
        if rc in (0, 1) and pred(doc := json.loads(out)):
            return doc
        assert time.monotonic() < deadline, (rc, out, err)
        await asyncio.sleep(0.3)


async def test_run_drives_every_action_a_display_announces(mosquitto, hall):
    rc, out, _ = await diag(mosquitto, "run", "window-1/display", "--json")
    assert rc == 0
    specs = json.loads(out)["actions"]
    assert set(specs) == {"show", "clear", "ping", "status", "brightness", "probe"}
    args = {"show": ['lines=["测试文字", "1号窗口"]'], "brightness": ["level=9"]}
    for action in sorted(specs):
        rc, out, err = await diag(mosquitto, "run", "window-1/display", action, *args.get(action, []), "--json")
        response = json.loads(out)
        assert rc == 0 and response["status"] == "ok" and response["ts"], (action, out, err)
        if action == "show":  # the display showed it (a call at window 1 may have replaced it since)
            assert "测试文字\n1号窗口" in hall.emulators["1"].screens[1].history
        if action == "brightness":
            assert hall.emulators["1"].screens[1].brightness == 9
        if action == "probe":
            assert response["data"]["health"] == "ok"

    rc, out, _ = await diag(mosquitto, "run", "window-1/display", "brightness", "level=99")
    assert rc == 1 and out.startswith("error bad_request: data.level: must be 0..15")
    rc, _, err = await diag(mosquitto, "run", "window-1/display", "explode")
    assert rc == 2 and "has no action 'explode'" in err
    rc, _, err = await diag(mosquitto, "run", "window-9/display", "ping")
    assert rc == 2 and "window-9" in err
    rc2, out, _ = await diag(mosquitto, "run", "window-1/display", "brightness", "lvl=8")
    assert rc2 == 1 and "data.lvl: unknown key 'lvl'; did you mean 'level'?" in out
    rc, text, _ = await diag(mosquitto, "run", "window-1/display")
    assert rc == 0 and "brightness" in text and "level: integer 0..15 (required)" in text


async def test_json_of_nodes_events_and_health_parses(mosquitto, hall, tmp_path):
    rc, out, _ = await diag(mosquitto, "nodes", env_extra={"HALLCTL_JSON": "1"})
    nodes = json.loads(out)["nodes"]
    assert rc == 0 and [n["node"] for n in nodes] == ["hall-screen", "kiosk-1", "window-1", "window-2", "window-3",
                                                   "window-4"]
    assert all(n["state"] == "ready" and n["version"] and n["uptime_s"] is not None for n in nodes)

    rc, out, _ = await diag(mosquitto, "events", "--json", "--count", "3", "--duration", "20")
    events = [json.loads(line) for line in out.splitlines()]
    assert rc == 0 and len(events) == 3 and all(e["type"] and e["doc"]["v"] == 1 for e in events)

    rc, text, _ = await diag(mosquitto, "events", "--follow", "--type", "ticket.called", "--count", "2")
    lines = text.splitlines()
    assert rc == 0 and len(lines) == 2 and all(" central " in line and " ticket.called " in line for line in lines)

    await _wait_health(mosquitto, lambda h: h["ok"])
    rc, out, _ = await diag(mosquitto, "health", "--json")
    assert rc == 0 and json.loads(out)["ok"] is True and json.loads(out)["central"] == "online"
    rc, text, _ = await diag(mosquitto, "health")
    assert rc == 0 and text.startswith(f"hall {HALL}: OK - central online, 6/6 nodes ready, 11/11 devices ok")

    # a hall nobody is in is a problem, and the halls that are there are named
    rc, _, err = await diag(mosquitto, "nodes", "--hall", "test-hal")
    assert rc == 1 and f"no node has announced itself in hall test-hal" in err and HALL in err
    rc, _, err = await diag(mosquitto, "devices", "--hall", "Demo-Hall")
    assert rc == 2 and "hall: invalid id 'Demo-Hall'" in err and "Traceback" not in err

    # credentials from a file given by environment; a broker that is not there: exit 4
    secret = tmp_path / "pw"
    secret.write_text("not-needed-here\n")
    rc, _, err = await diag(mosquitto, "nodes", "--timeout", "1",
                            env_extra={"HALLCTL_BROKER": "127.0.0.1:1", "HALLCTL_PASSWORD_FILE": str(secret)})
    assert rc == 4 and "cannot connect to 127.0.0.1:1" in err and "not-needed-here" not in err


def test_a_node_config_s_password_beats_the_environment_s(tmp_path, monkeypatch):
    """The order diag --help gives: an option, else -c's node config, else the environment."""
    from hallctl.cli import _build_parser
    from hallctl.diag.settings import connection_from as _connection

    (tmp_path / "node.pw").write_text("from-the-node-config\n")
    (tmp_path / "env.pw").write_text("from-the-environment\n")
    (tmp_path / "option.pw").write_text("from-the-option\n")
    config = tmp_path / "node.toml"
    config.write_text('[node]\nid = "window-3"\nhall = "h"\n[mqtt]\nusername = "window-3"\npassword_file = "node.pw"\n')
    monkeypatch.setenv("HALLCTL_PASSWORD_FILE", str(tmp_path / "env.pw"))
    parse = _build_parser().parse_args
    assert _connection(parse(["diag", "nodes", "-c", str(config)])).password == "from-the-node-config"
    assert _connection(parse(["diag", "nodes", "-c", str(config), "--password-file",
                              str(tmp_path / "option.pw")])).password == "from-the-option"
    assert _connection(parse(["diag", "nodes", "--hall", "h"])).password == "from-the-environment"
