"""Benchmark: how fast ``hallctl node`` with 6 displays becomes READY, and how much memory it takes.

What it does, all with real parts:

* a real Mosquitto on a free loopback port (:class:`hallctl.sim.mosquitto.MosquittoProcess`);
* six Onbon BX-6K emulators (:class:`hallctl_drivers.onbon_bx.emulator.BxEmulator`), each on its own pty,
  and a node config with six ``[[device]]`` entries (app ``window_display``, windows 1..6);
* cold start: ``python -m hallctl node -c <cfg>`` with ``NOTIFY_SOCKET`` pointing at a datagram
  socket this script listens on; ready_s = spawn -> ``READY=1`` (the systemd notify protocol),
  repeated ``--runs`` times, median reported; the node is stopped with SIGTERM between runs;
* peak RSS: after READY on the last run, retained window-state documents are published for a few
  seconds the way central does, the emulated displays must show the last called numbers, then the
  node's VmHWM is read from /proc/<pid>/status;
* a baseline measured in the same run: a bare ``python -c pass`` (spawn -> exit, and its VmHWM)
  and ``python -c "import hallctl.node.daemon"`` (spawn -> exit).

Human-readable lines first; the LAST line of stdout is one JSON object (see :func:`measure`).
Exit status 1 with a message (and the node's stderr tail) when the node never becomes READY or
does not drive the displays. A node that ignores SIGTERM is killed after STOP_TIMEOUT_S, reported
with a WARNING line and counted in ``details.stop_timeouts``; the measurement goes on.

    .venv/bin/python bench/node_footprint.py [--runs 5] [--traffic-s 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import select
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HALL = "bench-hall"
NODE_ID = "bench-node"
DEVICES = 6
TARGETS = {"ready_s": 1.5, "rss_mb": 60}
READY_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 5.0
SCREEN_TIMEOUT_S = 10.0
PYTHON = sys.executable


class BenchError(Exception):
    """The benchmark could not measure what it promised (node never ready, displays blank...)."""


# -- helpers --------------------------------------------------------------------------------


def _toml_value(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)  # JSON strings/ints/bools are valid TOML here


def node_config_toml(mqtt_host: str, mqtt_port: int, store: Path, ports: list[str]) -> str:
    """A node config with one ``[[device]]`` per emulated display (window i on ports[i-1])."""
    out = [
        "[node]", f"id = {_toml_value(NODE_ID)}", f"hall = {_toml_value(HALL)}", "",
        "[mqtt]", f"host = {_toml_value(mqtt_host)}", f"port = {mqtt_port}", "keepalive = 5", "",
        "[store]", f"path = {_toml_value(str(store))}", "",
    ]
    for i, port in enumerate(ports, start=1):
        out += [
            "[[device]]", f'id = "display-{i}"', 'profile = "onbon-bx-6k"', 'app = "window_display"',
            "[device.options]", f"port = {_toml_value(port)}", "address = 1", f'window = "{i}"', "",
        ]
    return "\n".join(out)


def vm_hwm_mb(pid: int | str = "self") -> float:
    """Peak resident set size (VmHWM) of a process in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024  # kB
    raise BenchError(f"no VmHWM in /proc/{pid}/status")


def spawn_to_exit_s(args: list[str]) -> float:
    """Wall time from spawn to exit of a short-lived command; fails if it fails."""
    t0 = time.perf_counter()
    proc = subprocess.run(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    elapsed = time.perf_counter() - t0
    if proc.returncode != 0:
        err = proc.stderr.decode(errors="replace")[-2000:]
        raise BenchError(f"{' '.join(args)} exited with {proc.returncode}: {err}")
    return elapsed


def python_rss_mb() -> float:
    """VmHWM of a bare interpreter, read by the child itself just before it exits."""
    code = "print(next(l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM:')))"
    out = subprocess.run([PYTHON, "-c", code], check=True, capture_output=True, text=True).stdout
    return int(out.strip()) / 1024


def tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) or "(empty)"
    except OSError:
        return "(unreadable)"


def r(value: float, digits: int = 3) -> float:
    return round(value, digits)


# -- the node under test ---------------------------------------------------------------------


class NodeProcess:
    """``python -m hallctl node`` as systemd would run it: Type=notify, stopped by SIGTERM."""

    def __init__(self, cfg: Path, workdir: Path, run_no: int) -> None:
        self.cfg = cfg
        self.stderr_path = workdir / f"node-run{run_no}.stderr"
        self.notify_path = workdir / f"notify-{run_no}.sock"
        self.proc: subprocess.Popen[bytes] | None = None
        self._sock: socket.socket | None = None

    def start_and_wait_ready(self, timeout: float) -> float:
        """Spawn the node and return the seconds until its ``READY=1`` datagram."""
        # The socket stays bound until stop(), so the node's STOPPING=1 has somewhere to go.
        self._sock = sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(str(self.notify_path))
        env = dict(os.environ, NOTIFY_SOCKET=str(self.notify_path))
        for key in ("WATCHDOG_USEC", "WATCHDOG_PID"):
            env.pop(key, None)
        with open(self.stderr_path, "wb") as err:
            t0 = time.perf_counter()
            self.proc = subprocess.Popen(
                [PYTHON, "-m", "hallctl", "node", "-c", str(self.cfg)],
                env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err,
                cwd=self.cfg.parent, start_new_session=True,
            )
        deadline = t0 + timeout
        while True:
            ready, _, _ = select.select([sock], [], [], 0.02)
            if ready:
                data = sock.recv(4096)
                now = time.perf_counter()
                if "READY=1" in data.decode(errors="replace").splitlines():
                    return now - t0
                continue
            if self.proc.poll() is not None:
                raise BenchError(
                    f"node exited with status {self.proc.returncode} before READY=1; stderr tail:\n"
                    f"{tail(self.stderr_path)}"
                )
            if time.perf_counter() > deadline:
                raise BenchError(
                    f"node not READY within {timeout:g}s (no READY=1 on NOTIFY_SOCKET); stderr tail:\n"
                    f"{tail(self.stderr_path)}"
                )

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def stop(self) -> float | None:
        """SIGTERM and wait: the seconds the clean stop took, or None when the node ignored it
        for STOP_TIMEOUT_S and had to be killed (systemd would do the same after
        TimeoutStopSec; the will then says "lost" instead of "offline")."""
        try:
            if self.proc is None or self.proc.poll() is not None:
                return 0.0
            t0 = time.perf_counter()
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                return None
            return time.perf_counter() - t0
        finally:
            if self._sock is not None:
                self._sock.close()
                self._sock = None
            self.notify_path.unlink(missing_ok=True)


# -- traffic like central's ------------------------------------------------------------------


def window_state(window: int, number: int) -> dict[str, Any]:
    return {
        "v": 1, "window": str(window), "name": f"{window}号窗口", "state": "open",
        "ticket": {"number": f"A{number:03d}", "queue": "a", "status": "called",
                   "called_at": time.strftime("%Y-%m-%dT%H:%M:%S+08:00"), "recalls": 0},
    }


def expected_lines(window: int, number: int) -> list[str]:
    """What the window display shows for ``window_state(window, number)`` (default templates)."""
    return [f"请A{number:03d}号", f"到{window}号窗口办理"]


async def publish_window_states(host: str, port: int, seconds: float, start_number: int,
                                interval_s: float = 0.1) -> tuple[int, dict[int, int]]:
    """Publish retained window states for all windows every ``interval_s`` for ``seconds``.

    Returns (documents published, last ticket number per window).
    """
    import aiomqtt

    sent, last = 0, {}
    number = start_number
    async with aiomqtt.Client(host, port, identifier=f"bench-central-{os.getpid()}") as client:
        deadline = time.monotonic() + seconds
        while True:
            for w in range(1, DEVICES + 1):
                number = number % 999 + 1
                topic = f"hallctl/v1/{HALL}/window/{w}/state"
                await client.publish(topic, json.dumps(window_state(w, number), ensure_ascii=False),
                                     qos=1, retain=True)
                last[w] = number
                sent += 1
            if time.monotonic() >= deadline:
                return sent, last
            await asyncio.sleep(interval_s)


def check_screens(emus: list[Any], last: dict[int, int]) -> dict[int, int]:
    """Every display must show its window's last called number. Returns frames seen per window."""
    wrong = []
    for w, emu in enumerate(emus, start=1):
        want = expected_lines(w, last[w])
        if not emu.wait_for(lambda emu=emu, want=want: emu.screens[1].lines == want, timeout=SCREEN_TIMEOUT_S):
            wrong.append(f"window {w}: shows {emu.screens[1].lines!r}, expected {want!r}")
        if emu.errors:
            wrong.append(f"window {w}: emulator errors {emu.errors!r}")
    if wrong:
        raise BenchError("the node did not drive the displays:\n  " + "\n  ".join(wrong))
    return {w: len(emu.screens[1].frames) for w, emu in enumerate(emus, start=1)}


# -- main -------------------------------------------------------------------------------------


def measure(runs: int, traffic_s: float) -> dict[str, Any]:
    from hallctl_drivers.onbon_bx.emulator import BxEmulator
    from hallctl.sim.mosquitto import MosquittoProcess

    print(f"node footprint: {DEVICES} emulated BX-6K displays, cold starts x{runs}, python {PYTHON}", flush=True)
    if os.environ.get("PYTHONDONTWRITEBYTECODE"):
        print("note: PYTHONDONTWRITEBYTECODE is set, so modules without a .pyc (an editable hallctl) are "
              "compiled at every start; an installed node is a little faster", flush=True)

    # Baseline first, on the same machine in the same minute.
    bare = [spawn_to_exit_s([PYTHON, "-c", "pass"]) for _ in range(runs)]
    imports = [spawn_to_exit_s([PYTHON, "-c", "import hallctl.node.daemon"]) for _ in range(runs)]
    bare_s, import_s, bare_rss = statistics.median(bare), statistics.median(imports), python_rss_mb()
    print(f"baseline: python -c pass {bare_s:.3f}s (VmHWM {bare_rss:.1f} MiB); "
          f"python -c 'import hallctl.node.daemon' {import_s:.3f}s", flush=True)

    with tempfile.TemporaryDirectory(prefix="hallctl-bench-") as tmp, MosquittoProcess() as broker:
        workdir = Path(tmp)
        emus = [BxEmulator(addresses=[1], name=f"bx-window-{w}").start() for w in range(1, DEVICES + 1)]
        try:
            cfg = workdir / "node.toml"
            cfg.write_text(node_config_toml(broker.host, broker.port, workdir / "node.db", [e.port for e in emus]),
                           encoding="utf-8")
            # A real hall has retained window states on the broker before any node starts: every
            # cold start below gets them at once, as a rebooted Pi would.
            asyncio.run(publish_window_states(broker.host, broker.port, 0, start_number=0))
            print(f"mosquitto on {broker.host}:{broker.port}; config {cfg}", flush=True)

            ready_times: list[float] = []
            rss_at_ready: list[float] = []
            stop_times: list[float | None] = []
            rss_mb = 0.0
            traffic: dict[str, Any] = {}
            for run in range(1, runs + 1):
                node = NodeProcess(cfg, workdir, run)
                try:
                    ready_s = node.start_and_wait_ready(READY_TIMEOUT_S)
                    ready_times.append(ready_s)
                    rss_at_ready.append(vm_hwm_mb(node.pid))
                    line = f"run {run}: READY after {ready_s:.3f}s, VmHWM at READY {rss_at_ready[-1]:.1f} MiB"
                    if run == runs:
                        sent, last = asyncio.run(
                            publish_window_states(broker.host, broker.port, traffic_s, start_number=run * 100))
                        frames = check_screens(emus, last)
                        rss_mb = vm_hwm_mb(node.pid)
                        traffic = {"seconds": traffic_s, "states_published": sent, "frames_per_display": frames}
                        line += (f"; after {traffic_s:.0f}s of traffic ({sent} window states, displays show "
                                 f"{expected_lines(1, last[1])}...) VmHWM {rss_mb:.1f} MiB")
                    if node.proc is not None and node.proc.poll() is not None:
                        raise BenchError(f"node died during the run; stderr tail:\n{tail(node.stderr_path)}")
                finally:
                    stop_times.append(node.stop())
                print(line, flush=True)
                if stop_times[-1] is None:
                    print(f"WARNING run {run}: node ignored SIGTERM for {STOP_TIMEOUT_S:g}s and was killed; "
                          f"stderr tail:\n{tail(node.stderr_path, 8)}", flush=True)
        finally:
            for emu in emus:
                emu.close()

    ready_med = statistics.median(ready_times)
    print(f"ready_s median {ready_med:.3f}s (min {min(ready_times):.3f}, max {max(ready_times):.3f}) "
          f"= {ready_med / bare_s:.1f}x bare python start; target {TARGETS['ready_s']}s "
          f"{'OK' if ready_med <= TARGETS['ready_s'] else 'MISSED'}")
    print(f"rss_mb {rss_mb:.1f} MiB = {rss_mb / bare_rss:.1f}x bare python; target {TARGETS['rss_mb']} MiB "
          f"{'OK' if rss_mb <= TARGETS['rss_mb'] else 'MISSED'}", flush=True)
    return {
        "ready_s": r(ready_med),
        "rss_mb": round(rss_mb, 1),
        "devices": DEVICES,
        "baseline": {"python_start_s": r(bare_s), "python_rss_mb": round(bare_rss, 1), "import_s": r(import_s)},
        "ratios": {"ready_vs_python_start": round(ready_med / bare_s, 1), "rss_vs_python": round(rss_mb / bare_rss, 2)},
        "runs": runs,
        "targets": TARGETS,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    # set: hallctl's modules are compiled from source at every start (no .pyc)
                    "dont_write_bytecode": bool(os.environ.get("PYTHONDONTWRITEBYTECODE"))},
        "details": {
            "ready_s": {"min": r(min(ready_times)), "max": r(max(ready_times)), "all": [r(t) for t in ready_times]},
            "rss_at_ready_mb": [round(x, 1) for x in rss_at_ready],
            "stop_s": [None if t is None else r(t) for t in stop_times],
            "stop_timeouts": sum(t is None for t in stop_times),
            "python_start_s_all": [r(t) for t in bare],
            "import_s_all": [r(t) for t in imports],
            "traffic": traffic,
        },
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=5, help="cold starts to time (default 5)")
    p.add_argument("--traffic-s", type=float, default=3.0, help="seconds of window-state traffic before reading RSS")
    args = p.parse_args(argv)
    if args.runs < 1:
        p.error("--runs must be at least 1")
    try:
        result = measure(args.runs, args.traffic_s)
    except BenchError as exc:
        print(f"node_footprint: FAILED: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(result, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
