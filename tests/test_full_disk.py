"""``hallctl central`` started on a full disk: an outage, not a configuration error. It exits 75
(EX_TEMPFAIL, which systemd restarts; 78 would stop the restarts), says the disk is full, and once
space is freed it starts and serves.

The full disk is real: a 1 MiB tmpfs mounted in a mount namespace of its own (``unshare``; as
root here and in CI, with a user namespace otherwise), filled to the last byte; central runs
inside that namespace (``nsenter``), the test fills and empties it through ``/proc/<pid>/root``."""

from __future__ import annotations

import errno
import os
import re
import shutil
import signal
import subprocess
from pathlib import Path

import pytest
from conftest import PYTHON, ROOT, spawn_env
from hallkit import Observer

from hallctl.bus.topics import Topics

ROOTED = os.geteuid() == 0


class Namespace:
    """A mount namespace with a small tmpfs on ``mountpoint``, kept alive by a sleeping process."""

    def __init__(self, mountpoint: Path, size: str = "1m") -> None:
        self.mountpoint = mountpoint
        mountpoint.mkdir()
        script = f"mount -t tmpfs -o size={size} tmpfs '{mountpoint}' && echo ready && exec sleep 600"
        self.proc = subprocess.Popen(["unshare", "-m" if ROOTED else "-rm", "sh", "-c", script],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        ready = self.proc.stdout.readline().strip() if self.proc.stdout else ""
        if ready != "ready":
            self.close()
            err = self.proc.stderr.read() if self.proc.stderr else ""
            if ROOTED:
                raise AssertionError(f"could not mount a tmpfs in a new mount namespace: {err}")
            pytest.skip(f"no user and mount namespaces here ({err.strip()}); CI runs this as root")

    def inside(self, path: Path) -> Path:
        """``path`` as the processes of the namespace see it."""
        return Path(f"/proc/{self.proc.pid}/root") / path.relative_to("/")

    def command(self, *argv: str) -> list[str]:
        enter = ["nsenter", "-t", str(self.proc.pid), "-m"]
        if not ROOTED:
            enter[3:3] = ["-U", "--preserve-credentials"]
        return [*enter, "--", *argv]

    def fill(self) -> Path:
        filler = self.inside(self.mountpoint / "filler")
        with open(filler, "wb", buffering=0) as f:
            try:
                while f.write(b"\0" * 4096):
                    pass
            except OSError as exc:
                assert exc.errno == errno.ENOSPC, exc
        return filler

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()  # the namespace and its tmpfs go with its last process
        self.proc.communicate(timeout=10)


@pytest.fixture
def namespace(tmp_path):
    for tool in ("unshare", "nsenter"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} (util-linux) is missing")
    ns = Namespace(tmp_path / "disk")
    try:
        yield ns
    finally:
        ns.close()


def central_config(tmp_path: Path, port: int, store: Path) -> str:
    text = (ROOT / "config" / "central.example.toml").read_text()
    text = re.sub(r"(?m)^port = 1883", f"port = {port}", text)
    text = re.sub(r'(?m)^path = ".*"', f'path = "{store}"', text)
    text = re.sub(r"(?m)^(hours|weekdays|closed_dates|open_dates) = .*$", "", text)
    path = tmp_path / "central.toml"
    path.write_text(text)
    return str(path)


async def test_central_on_a_full_disk_exits_75_says_so_and_serves_once_there_is_room(mosquitto, tmp_path, namespace):
    cfg = central_config(tmp_path, mosquitto.port, namespace.mountpoint / "central.db")
    filler = namespace.fill()
    full = subprocess.run(namespace.command(PYTHON, "-m", "hallctl", "central", "-c", cfg), env=spawn_env(),
                          capture_output=True, text=True, timeout=60)
    assert full.returncode == 75, full.stderr
    assert "disk is full" in full.stderr and "configuration error" not in full.stderr.replace("not a configuration error", "")
    assert "Traceback" not in full.stderr

    filler.unlink()  # space is freed; systemd starts central again
    t = Topics("demo-hall")
    async with Observer(mosquitto.host, mosquitto.port, [t.central_status, t.central_res("kiosk-1")]) as obs:
        proc = subprocess.Popen(namespace.command(PYTHON, "-m", "hallctl", "central", "-c", cfg), env=spawn_env(),
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            await obs.wait_for(t.central_status, lambda d: d["state"] == "online", timeout=30)
            await obs.publish(t.central_req("kiosk-1", "ticket.issue"),
                              {"v": 1, "request_id": "after-full", "data": {"queue": "tax"}})
            res = (await obs.wait_for(t.central_res("kiosk-1"), timeout=20))[0]
            assert res["status"] == "ok" and res["data"]["ticket"]["number"] == "C001"
        finally:
            proc.send_signal(signal.SIGTERM)
            _, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err.decode()
    assert namespace.inside(namespace.mountpoint / "central.db").exists()
    assert not (namespace.mountpoint / "central.db").exists(), "the store was on the namespace's tmpfs"


async def test_central_on_a_read_only_disk_exits_75_and_says_so(tmp_path, namespace):
    cfg = central_config(tmp_path, 1, namespace.mountpoint / "central.db")
    subprocess.run(namespace.command("mount", "-o", "remount,ro", str(namespace.mountpoint)), check=True)
    res = subprocess.run(namespace.command(PYTHON, "-m", "hallctl", "central", "-c", cfg), env=spawn_env(),
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 75, res.stderr
    assert "read-only" in res.stderr and "Traceback" not in res.stderr
