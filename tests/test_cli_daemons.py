"""``hallctl central`` and ``hallctl node`` as the processes systemd runs, from the example configs."""

from __future__ import annotations

import re
import signal
import socket
import subprocess

from conftest import PYTHON, ROOT, spawn_env
from hallkit import Observer

from hallctl.bus.topics import Topics


def _example(name: str, tmp_path, port: int, **subs: str) -> str:
    text = (ROOT / "config" / name).read_text()
    text = re.sub(r"(?m)^port = 1883", f"port = {port}", text)
    text = re.sub(r'(?m)^path = ".*"', f'path = "{tmp_path / name}.db"', text)
    # the example's opening hours would make the test depend on the time of day it runs
    text = re.sub(r"(?m)^(hours|weekdays|closed_dates|open_dates) = .*$", "", text)
    for old, new in subs.items():
        text = text.replace(old, new)
    path = tmp_path / name
    path.write_text(text)
    return str(path)


async def test_central_from_example_config_serves_and_stops_cleanly(mosquitto, tmp_path):
    cfg = _example("central.example.toml", tmp_path, mosquitto.port)
    t = Topics("demo-hall")
    async with Observer(mosquitto.host, mosquitto.port, [t.central_status, t.central_res("kiosk-1"),
                                                           t.window_state("1")]) as obs:
        proc = subprocess.Popen([PYTHON, "-m", "hallctl", "central", "-c", cfg], env=spawn_env(),
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            await obs.wait_for(t.central_status, lambda d: d["state"] == "online", timeout=20)
            closed = (await obs.wait_for(t.window_state("1")))[0]
            assert closed["name"] == "1号窗口" and closed["state"] == "closed"
            await obs.publish(t.central_req("kiosk-1", "ticket.issue"),
                              {"v": 1, "request_id": "x1", "data": {"queue": "tax", "phone": "13900139000"}})
            res = (await obs.wait_for(t.central_res("kiosk-1")))[0]
            assert res["data"]["ticket"]["number"] == "C001"
            assert res["data"]["ticket"]["phone_masked"] == "139****9000"
        finally:
            proc.send_signal(signal.SIGTERM)
            _, err = proc.communicate(timeout=20)
        assert proc.returncode == 0, err.decode()
        assert "13900139000" not in err.decode(), "no phone number in the log"
        await obs.wait_for(t.central_status, lambda d: d["state"] == "offline")


async def test_node_sends_ready_to_systemd(mosquitto, tmp_path):
    from hallctl_drivers.onbon_bx.emulator import BxEmulator

    with BxEmulator() as emu:
        cfg = _example("node.example.toml", tmp_path, mosquitto.port, **{"/dev/ttyUSB0": emu.port})
        sock_path = str(tmp_path / "notify.sock")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(sock_path)
        sock.settimeout(20)
        env = spawn_env() | {"NOTIFY_SOCKET": sock_path, "WATCHDOG_USEC": "2000000", "WATCHDOG_PID": ""}
        proc = subprocess.Popen([PYTHON, "-m", "hallctl", "node", "-c", cfg], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            got: list[str] = []
            while not any("READY=1" in g for g in got) or not any("WATCHDOG=1" in g for g in got):
                got.append(sock.recv(4096).decode())
            assert any("READY=1" in g for g in got)
            # READY is sent only after the display's first start: with no window state retained
            # yet it has answered the PING, so the emulator has seen at least one frame
            assert emu.screens[1].frames
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.communicate(timeout=20)
            sock.close()
        assert proc.returncode == 0


async def test_node_stops_on_sigterm_while_its_display_is_busy(mosquitto, tmp_path):
    """Regression: on Python 3.11 asyncio.wait_for could swallow the cancellation of a device
    worker that was just handed a job, and the node then ignored SIGTERM (1 stop in 4)."""
    from hallctl_drivers.onbon_bx.emulator import BxEmulator

    t = Topics("demo-hall")
    with BxEmulator() as emu:
        cfg = _example("node.example.toml", tmp_path, mosquitto.port, **{"/dev/ttyUSB0": emu.port})
        async with Observer(mosquitto.host, mosquitto.port, [t.node_status("window-3")]) as obs:
            await obs.publish(t.window_state("3"), {"v": 1, "window": "3", "name": "3号窗口", "state": "open",
                                                    "ticket": {"number": "A001", "queue": "a", "status": "called",
                                                               "called_at": "2026-11-30T09:00:00+08:00", "recalls": 0}}, retain=True)
            for attempt in range(6):
                proc = subprocess.Popen([PYTHON, "-m", "hallctl", "node", "-c", cfg], env=spawn_env(),
                                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
                await obs.wait_for(t.node_status("window-3"), lambda d: d["state"] == "ready", count=attempt + 1, timeout=20)
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.communicate(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    raise AssertionError(f"node ignored SIGTERM (stop {attempt + 1})")
                assert proc.returncode == 0
                await obs.wait_for(t.node_status("window-3"), lambda d: d["state"] == "offline", count=attempt + 1)


def test_central_check_prints_the_hall_or_the_config_error(tmp_path):
    """What a technician runs after editing central's config, before `systemctl reload`."""
    ok = subprocess.run([PYTHON, "-m", "hallctl", "central", "-c", str(ROOT / "config" / "central.example.toml"),
                         "--check"], env=spawn_env(), capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0, ok.stderr
    assert "hall demo-hall: config OK" in ok.stdout
    assert "queue real-estate (B, 不动产): 2 matters: 二手房转移登记, 抵押登记" in ok.stdout
    assert "tickets issued 08:30-12:00 and 13:30-17:00" in ok.stdout
    bad = tmp_path / "central.toml"
    bad.write_text((ROOT / "config" / "central.example.toml").read_text().replace('queue = "tax"\ndepartment', 'queue = "taxes"\ndepartment'))
    res = subprocess.run([PYTHON, "-m", "hallctl", "central", "-c", str(bad), "--check"], env=spawn_env(),
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 78
    assert "matter[2].queue: unknown queue 'taxes'; did you mean 'tax'?" in res.stderr
