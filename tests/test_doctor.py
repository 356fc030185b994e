"""``hallctl doctor``, run as a technician would: each check printed, each failure with its fix,
a non-zero exit when something failed."""

from __future__ import annotations

import asyncio
import json
import os
import pty
import subprocess
import tty

import pytest
from conftest import PYTHON, spawn_env, write_toml
from hallkit import HALL, central

from hallctl.sim.mosquitto import free_port

CONFIG = """
    [node]
    id = "window-{window}"
    hall = "{hall}"

    [mqtt]
    host = "127.0.0.1"
    port = {port}

    [store]
    path = "store/window-1.db"

    [[device]]
    id = "display"
    profile = "onbon-bx-6k"
    app = "window_display"
    [device.options]
    port = "{tty}"
    window = "{window}"
    """


@pytest.fixture
def tty_path():
    master, slave = pty.openpty()
    tty.setraw(slave)
    yield os.ttyname(slave)
    os.close(master)
    os.close(slave)


def doctor(path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PYTHON, "-m", "hallctl", "doctor", "-c", str(path), "--timeout", "2", *extra],
                          env=spawn_env(), capture_output=True, text=True, timeout=60)


def lines_of(out: str, name: str) -> list[str]:
    """The check's line and its fix line."""
    lines = out.splitlines()
    i = next(i for i, line in enumerate(lines) if line.split()[1:2] == name.split()[:1] and name in line)
    return lines[i:i + 2]


def test_a_missing_port_and_an_unreachable_broker_fail_with_their_fixes(tmp_path):
    path = write_toml(tmp_path / "node.toml", CONFIG.format(hall=HALL, port=free_port(), tty="/dev/ttyUSB-gone", window=1))
    proc = doctor(path)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    port_line, port_fix = lines_of(proc.stdout, "serial port")
    assert port_line.startswith("FAIL") and "/dev/ttyUSB-gone" in port_line and "does not exist" in port_line
    assert port_fix.strip().startswith("fix: plug the RS485/USB adapter in")
    broker_line, broker_fix = lines_of(proc.stdout, "broker")
    assert broker_line.startswith("FAIL") and "Connection refused" in broker_line
    assert "fix: is Mosquitto running" in broker_fix
    assert lines_of(proc.stdout, "config")[0].startswith("OK")
    assert lines_of(proc.stdout, "clock")[0].startswith("SKIP")


def test_a_bad_config_fails_first_and_says_where(tmp_path):
    path = write_toml(tmp_path / "node.toml", CONFIG.format(hall=HALL, port=1, tty="/dev/null", window=1).replace(
        'window = "1"', 'window = "1"\n    adress = 2'))
    proc = doctor(path, "--json")
    assert proc.returncode == 1
    doc = json.loads(proc.stdout)
    first = doc["checks"][0]
    assert doc["ok"] is False and first["name"] == "config" and first["status"] == "fail"
    assert "device[0].options.adress: unknown key 'adress'; did you mean 'address'?" in first["detail"]
    assert first["fix"].startswith(f"open {path} and correct device[0].options.adress")


async def test_a_healthy_node_passes_every_check(mosquitto_session, tmp_path, tty_path):
    host, port = mosquitto_session.host, mosquitto_session.port
    path = write_toml(tmp_path / "node.toml", CONFIG.format(hall=HALL, port=port, tty=tty_path, window=1))
    async with central(host, port, tmp_path):
        proc = await asyncio.create_subprocess_exec(
            PYTHON, "-m", "hallctl", "doctor", "-c", str(path), "--json", env=spawn_env(),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await proc.communicate()
    doc = json.loads(out)
    by_name = {c["name"]: c for c in doc["checks"]}
    assert proc.returncode == 0, doc
    assert {c["status"] for c in doc["checks"]} == {"ok"}, doc
    assert set(by_name) == {"config", "profile", "serial port", "gpio", "font", "broker", "hall", "clock", "store"}
    assert "read/write" in by_name["serial port"]["detail"] and "of central's" in by_name["clock"]["detail"]


async def test_a_wrong_hall_and_a_window_central_does_not_know_fail(mosquitto_session, tmp_path, tty_path):
    host, port = mosquitto_session.host, mosquitto_session.port
    wrong_hall = write_toml(tmp_path / "a.toml", CONFIG.format(hall="test-hal", port=port, tty=tty_path, window=1))
    no_window = write_toml(tmp_path / "b.toml", CONFIG.format(hall=HALL, port=port, tty=tty_path, window=9))
    async with central(host, port, tmp_path):  # windows 1..3
        results = []
        for path in (wrong_hall, no_window):
            proc = await asyncio.create_subprocess_exec(
                PYTHON, "-m", "hallctl", "doctor", "-c", str(path), env=spawn_env(),
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
            out, _ = await proc.communicate()
            results.append((proc.returncode, out.decode()))
    (rc, out), (rc2, out2) = results
    line, fix = lines_of(out, "hall")
    assert rc == 1 and line.startswith("FAIL") and "no central in hall 'test-hal'" in line and HALL in line
    assert "fix: [node] hall in" in fix
    line, fix = lines_of(out2, "hall")  # the first hall line: central is there
    assert line.startswith("OK") and "is online" in line
    bad = [ln for ln in out2.splitlines() if ln.startswith("FAIL")]
    assert rc2 == 1 and len(bad) == 1 and "follows hallctl/v1/test-hall/window/9/state" in bad[0]
