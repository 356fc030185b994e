"""Benchmark: central under load over a real Mosquitto (issue 7).

What it runs, all real parts:

* Mosquitto as ``config/mosquitto.example.conf`` has it (:class:`hallctl.sim.mosquitto.MosquittoProcess`:
  ``set_tcp_nodelay``, persistence, a password file and ``config/mosquitto-acl.example``), or with
  ``--stock-broker`` Mosquitto's defaults instead of hallctl's settings (same users and ACL);
* ``python -m hallctl central -c central.toml`` (``config/central.example.toml`` without opening
  hours) in a process of its own, its store in a temp directory on this machine's disk;
* the load generator, an aiomqtt client in this process (user ``kiosk-1``), and the probe, an
  aiomqtt client in a second process (user ``clerk-1``), so neither loop delays the other.

Phases:

1. ``mqtt_rtt_ms``: bare QoS 1 round trips (publish, receive it back) on the same broker: the
   floor any request/response sits on. ``sqlite_commit_ms``: a one-row SQLite transaction with
   ``synchronous=FULL`` in the store's directory: the floor of a durable commit.
2. ``ticket.issue`` at 20/s for ``--steady-s`` seconds, sent on schedule (open loop) whatever the
   answers do: ``issue_p50_ms``, ``issue_p99_ms``. Each answer is checked against ``central.db``
   through a separate SQLite connection: its ticket is stored when the answer arrives. Then
   ``--rates`` (50, 100, 200/s) for ``--rate-s`` seconds each.
3. A burst of ``--burst`` ``ticket.issue`` published at once: ``tickets_per_s`` = burst / (first
   publish to last answer). Meanwhile the probe sends ``queue.status`` every 10 ms:
   ``probe_p99_ms_during_burst``.

Finally every answer must be ``ok`` with distinct numbers, and ``central.db`` must hold exactly as
many ``ticket.issued`` events as tickets were answered (exit 1 otherwise).

Human-readable lines first; the LAST line of stdout is one JSON object.

    .venv/bin/python bench/central_load.py                  # hallctl's broker settings
    .venv/bin/python bench/central_load.py --stock-broker   # Mosquitto's defaults
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import aiomqtt

from hallctl.sim.mosquitto import HALLCTL_SETTINGS, MosquittoProcess

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
HALL = "demo-hall"
USERS = ("central", "kiosk-1", "clerk-1")
TARGETS = {"probe_p99_ms_during_burst": 50.0, "issue_p99_ms": 25.0, "tickets_per_s": 300.0}
ANSWER_TIMEOUT_S = 60.0


class BenchError(Exception):
    """The benchmark could not measure what it promised (central never up, answers missing...)."""


def pct(values: list[float], q: float) -> float:
    """The q-quantile (nearest rank) of values."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


def r(value: float, digits: int = 2) -> float:
    return round(value, digits)


def password(user: str) -> str:
    return f"bench-{user}"


def base(hall: str = HALL) -> str:
    return f"hallctl/v1/{hall}"


# -- MQTT clients ------------------------------------------------------------------------------


class Requester:
    """One MQTT client that sends requests to central and matches the answers by request_id."""

    def __init__(self, port: int, user: str) -> None:
        self.port, self.user = port, user
        self.res_topic = f"{base()}/central/res/{user}"
        self.rtt_topic = f"{base()}/node/{user}/rtt"  # the ACL lets every user use its node subtree
        self.status: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._waiting: dict[str, asyncio.Future[tuple[float, dict[str, Any]]]] = {}
        self._client: aiomqtt.Client | None = None
        self._reader: asyncio.Task[None] | None = None
        self._sends: set[asyncio.Task[None]] = set()
        self._n = 0

    async def __aenter__(self) -> "Requester":
        self._client = aiomqtt.Client(
            "127.0.0.1", self.port, identifier=f"{self.user}-{os.getpid()}", username=self.user,
            password=password(self.user), max_inflight_messages=2000,
            socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)])
        self._client.pending_calls_threshold = 1_000_000  # thousands in flight is the point here
        await self._client.__aenter__()
        for topic in (self.res_topic, self.rtt_topic, f"{base()}/central/status"):
            await self._client.subscribe(topic, qos=1)
        self._reader = asyncio.create_task(self._read())
        return self

    async def __aexit__(self, *exc: Any) -> None:
        assert self._reader is not None and self._client is not None
        self._reader.cancel()
        await asyncio.gather(self._reader, return_exceptions=True)
        await self._client.__aexit__(None, None, None)

    async def _read(self) -> None:
        assert self._client is not None
        async for m in self._client.messages:
            now = time.perf_counter()
            payload = bytes(m.payload) if isinstance(m.payload, (bytes, bytearray)) else b""
            topic = str(m.topic)
            if topic == self.rtt_topic:
                key = payload.decode()
            elif topic.endswith("/central/status"):
                if payload:
                    self.status.put_nowait(json.loads(payload))
                continue
            else:
                doc = json.loads(payload)
                key = str(doc.get("request_id"))
                payload = doc  # type: ignore[assignment]
            fut = self._waiting.pop(key, None)
            if fut is not None and not fut.done():
                fut.set_result((now, payload if isinstance(payload, dict) else {}))

    def _publish(self, topic: str, payload: bytes) -> None:
        """Start a QoS 1 publish without waiting for its PUBACK (the order of calls is the wire order)."""
        assert self._client is not None
        task = asyncio.create_task(self._client.publish(topic, payload, qos=1, timeout=ANSWER_TIMEOUT_S))
        self._sends.add(task)
        task.add_done_callback(self._sends.discard)

    def request(self, action: str, data: dict[str, Any]) -> tuple[float, asyncio.Future[tuple[float, dict[str, Any]]]]:
        """Send one request; (the time it was sent, a future of (arrival time, response))."""
        self._n += 1
        rid = f"{self.user}-{os.getpid()}-{self._n}"
        fut: asyncio.Future[tuple[float, dict[str, Any]]] = asyncio.get_running_loop().create_future()
        self._waiting[rid] = fut
        body = json.dumps({"v": 1, "request_id": rid, "data": data}).encode()
        sent = time.perf_counter()
        self._publish(f"{base()}/central/req/{self.user}/{action}", body)
        return sent, fut

    async def round_trip(self, i: int) -> float:
        """A bare QoS 1 publish that comes back to us: seconds."""
        fut: asyncio.Future[tuple[float, dict[str, Any]]] = asyncio.get_running_loop().create_future()
        self._waiting[f"rtt-{i}"] = fut
        sent = time.perf_counter()
        self._publish(self.rtt_topic, f"rtt-{i}".encode())
        arrived, _ = await asyncio.wait_for(fut, 10)
        return arrived - sent


async def answers(pending: list[tuple[float, asyncio.Future[tuple[float, dict[str, Any]]]]], what: str
                  ) -> list[tuple[float, float, dict[str, Any]]]:
    """(sent, arrived, response) for every request, or BenchError when some never came."""
    futs = [f for _, f in pending]
    done, missing = await asyncio.wait(futs, timeout=ANSWER_TIMEOUT_S)
    if missing:
        raise BenchError(f"{what}: {len(missing)} of {len(futs)} requests unanswered after {ANSWER_TIMEOUT_S:g} s")
    return [(sent, *fut.result()) for sent, fut in pending]


# -- the probe (a process of its own) ------------------------------------------------------------


async def probe_main(port: int, interval_s: float) -> None:
    """Wait for "go" on stdin, send queue.status every interval until "stop", print the latencies."""
    async with Requester(port, "clerk-1") as probe:
        print("ready", flush=True)
        await asyncio.to_thread(sys.stdin.readline)
        stop = asyncio.ensure_future(asyncio.to_thread(sys.stdin.readline))
        loop = asyncio.get_running_loop()
        pending = []
        t0 = loop.time()
        while not stop.done():
            pending.append(probe.request("queue.status", {}))
            await asyncio.sleep(max(0.0, t0 + len(pending) * interval_s - loop.time()))
        got = await answers(pending, "probe")
        bad = [doc for _, _, doc in got if doc.get("status") != "ok"]
        print(json.dumps({"ms": [(a - s) * 1000 for s, a, _ in got], "errors": len(bad)}), flush=True)


class Probe:
    def __init__(self, port: int, interval_s: float) -> None:
        self.port, self.interval_s = port, interval_s
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            PYTHON, __file__, "--probe-child", str(self.port), "--probe-interval-ms", str(self.interval_s * 1000),
            stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        assert self.proc.stdout is not None
        line = await asyncio.wait_for(self.proc.stdout.readline(), 30)
        if line.strip() != b"ready":
            raise BenchError(f"probe did not start: {line!r}")

    async def say(self, word: str) -> None:
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.write(word.encode() + b"\n")
        await self.proc.stdin.drain()

    async def result(self) -> dict[str, Any]:
        assert self.proc is not None and self.proc.stdout is not None
        line = await asyncio.wait_for(self.proc.stdout.readline(), ANSWER_TIMEOUT_S + 10)
        await self.proc.wait()
        if not line:
            raise BenchError("the probe printed no result")
        return json.loads(line)


# -- central and the broker ------------------------------------------------------------------------


def central_config(workdir: Path, port: int) -> Path:
    text = (ROOT / "config" / "central.example.toml").read_text()
    text = re.sub(r"(?m)^port = 1883", f"port = {port}", text)
    text = re.sub(r'(?m)^# username = .*$', 'username = "central"', text)
    text = re.sub(r'(?m)^# password = .*$', f'password = "{password("central")}"', text)
    text = re.sub(r'(?m)^path = ".*"', f'path = "{workdir / "central.db"}"', text)
    # tickets at any hour: the bench must not depend on when it runs
    text = re.sub(r"(?m)^(hours|weekdays|closed_dates|open_dates) = .*$", "", text)
    path = workdir / "central.toml"
    path.write_text(text)
    return path


def broker_for(workdir: Path, stock: bool) -> MosquittoProcess:
    pw = workdir / "passwd"
    pw.touch()
    for user in USERS:
        subprocess.run(["mosquitto_passwd", "-b", str(pw), user, password(user)], check=True, capture_output=True)
    auth = ("allow_anonymous false", f"password_file {pw}", f"acl_file {ROOT / 'config' / 'mosquitto-acl.example'}")
    return MosquittoProcess(extra_config=auth, stock=stock)


def sqlite_commit_ms(directory: Path, n: int) -> list[float]:
    """One-row transactions with synchronous=FULL (WAL) on the store's disk, 50 ms apart."""
    db = sqlite3.connect(directory / "fsync.db", isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute("CREATE TABLE t (x TEXT)")
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        db.execute("BEGIN IMMEDIATE")
        db.execute("INSERT INTO t VALUES (?)", ("x" * 200,))
        db.execute("COMMIT")
        times.append((time.perf_counter() - t0) * 1000)
        time.sleep(0.05)
    db.close()
    return times


class StoreReader:
    """central.db read through a connection of our own, as anyone could after a power cut."""

    def __init__(self, path: Path) -> None:
        self._db = sqlite3.connect(path, check_same_thread=False)
        self._lock = threading.Lock()

    def has_ticket(self, ticket_id: str) -> bool:
        with self._lock:
            return self._db.execute(
                "SELECT 1 FROM events WHERE type = 'ticket.issued' AND json_extract(data, '$.ticket') = ?",
                (ticket_id,)).fetchone() is not None

    def tickets(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM events WHERE type = 'ticket.issued'").fetchone()[0]


# -- the phases ----------------------------------------------------------------------------------


async def rate_phase(kiosk: Requester, rate: float, seconds: float, store: StoreReader | None
                     ) -> tuple[list[tuple[float, float, dict[str, Any]]], int]:
    """ticket.issue at ``rate``/s for ``seconds``, on schedule; with ``store``, each answer's
    ticket is looked up in central.db as the answer arrives. Returns the answers and how many
    tickets were not in the store when their answer came."""
    loop = asyncio.get_running_loop()
    pending, checks = [], []

    async def check(fut: asyncio.Future[tuple[float, dict[str, Any]]]) -> bool:
        _, doc = await fut
        ticket = doc.get("data", {}).get("ticket", {}).get("id")
        return ticket is not None and await asyncio.to_thread(store.has_ticket, ticket)  # type: ignore[union-attr]

    n = max(1, int(rate * seconds))
    t0 = loop.time()
    for k in range(n):
        await asyncio.sleep(max(0.0, t0 + k / rate - loop.time()))
        sent, fut = kiosk.request("ticket.issue", {"queue": "general"})
        pending.append((sent, fut))
        if store is not None:
            checks.append(asyncio.ensure_future(check(fut)))
    got = await answers(pending, f"{rate:g}/s")
    not_stored = sum(1 for ok in await asyncio.gather(*checks) if not ok)
    return got, not_stored


def latency_ms(got: list[tuple[float, float, dict[str, Any]]]) -> list[float]:
    return [(arrived - sent) * 1000 for sent, arrived, _ in got]


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix="hallctl-central-load-"))
    broker = broker_for(workdir, args.stock_broker)
    await asyncio.to_thread(broker.start)
    central: subprocess.Popen[bytes] | None = None
    err_path = workdir / "central.stderr"
    try:
        cfg = central_config(workdir, broker.port)
        with open(err_path, "wb") as err:
            central = subprocess.Popen([PYTHON, "-m", "hallctl", "central", "-c", str(cfg)],
                                       env=dict(os.environ, HALLCTL_LOG_LEVEL="WARNING"),
                                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err)
        async with Requester(broker.port, "kiosk-1") as kiosk:
            async with asyncio.timeout(30):
                while (await kiosk.status.get()).get("state") != "online":
                    pass
            print(f"broker: mosquitto {'stock' if args.stock_broker else 'with ' + ', '.join(HALLCTL_SETTINGS)}; "
                  f"central pid {central.pid}", flush=True)

            # spaced as the requests at 20/s are (an idle machine wakes up slower), and back to back
            rtts = []
            for i in range(args.rtt_n):
                rtts.append(await kiosk.round_trip(i) * 1000)
                await asyncio.sleep(0.05)
            rtts_b2b = [await kiosk.round_trip(args.rtt_n + i) * 1000 for i in range(args.rtt_n)]
            commits = await asyncio.to_thread(sqlite_commit_ms, workdir, args.rtt_n)
            commit_ms = statistics.median(commits)
            print(f"mqtt QoS 1 round trip, 50 ms apart: p50 {statistics.median(rtts):.3f} ms, p99 {pct(rtts, 0.99):.3f} ms; "
                  f"back to back: p50 {statistics.median(rtts_b2b):.3f} ms; sqlite commit (synchronous=FULL), "
                  f"50 ms apart: p50 {commit_ms:.3f} ms, p99 {pct(commits, 0.99):.3f} ms", flush=True)

            store = StoreReader(workdir / "central.db")
            answered: list[dict[str, Any]] = []
            got, not_stored = await rate_phase(kiosk, 20, args.steady_s, store)
            answered += [doc for _, _, doc in got]
            steady = latency_ms(got)
            print(f"ticket.issue at 20/s for {args.steady_s:g} s: p50 {statistics.median(steady):.2f} ms, "
                  f"p99 {pct(steady, 0.99):.2f} ms; not yet in central.db when answered: {not_stored}", flush=True)
            rates: dict[str, Any] = {"20": {"p50_ms": r(statistics.median(steady)), "p99_ms": r(pct(steady, 0.99)),
                                            "requests": len(steady)}}
            for rate in args.rates:
                got, _ = await rate_phase(kiosk, rate, args.rate_s, None)
                answered += [doc for _, _, doc in got]
                ms = latency_ms(got)
                rates[f"{rate:g}"] = {"p50_ms": r(statistics.median(ms)), "p99_ms": r(pct(ms, 0.99)), "requests": len(ms)}
                print(f"ticket.issue at {rate:g}/s for {args.rate_s:g} s: p50 {statistics.median(ms):.2f} ms, "
                      f"p99 {pct(ms, 0.99):.2f} ms", flush=True)

            speeds, probe_ms, burst_ms, probe_errors = [], [], [], 0
            for b in range(args.bursts):
                probe = Probe(broker.port, args.probe_interval_ms / 1000)
                await probe.start()
                await probe.say("go")
                await asyncio.sleep(args.probe_interval_ms / 1000 * 2)  # the probe is under way
                t0 = time.perf_counter()
                pending = [kiosk.request("ticket.issue", {"queue": "general"}) for _ in range(args.burst)]
                got = await answers(pending, "burst")
                await probe.say("stop")
                probed = await probe.result()
                answered += [doc for _, _, doc in got]
                last = max(arrived for _, arrived, _ in got)
                speeds.append(args.burst / (last - t0))
                burst_ms += latency_ms(got)
                probe_ms += probed["ms"]
                probe_errors += probed["errors"]
                print(f"burst {b + 1} of {args.burst}: answered in {last - t0:.3f} s, {speeds[-1]:.0f} tickets/s; "
                      f"queue.status every {args.probe_interval_ms:g} ms meanwhile ({len(probed['ms'])} probes): "
                      f"p50 {statistics.median(probed['ms']):.2f} ms, max {max(probed['ms']):.2f} ms", flush=True)
                await asyncio.sleep(0.5)
            tickets_per_s = statistics.median(speeds)
            print(f"bursts: median {tickets_per_s:.0f} tickets/s; {len(probe_ms)} probes: p50 "
                  f"{statistics.median(probe_ms):.2f} ms, p99 {pct(probe_ms, 0.99):.2f} ms", flush=True)

            errors = [d for d in answered if d.get("status") != "ok"]
            numbers = [d["data"]["ticket"]["number"] for d in answered if d.get("status") == "ok"]
            stored = await asyncio.to_thread(store.tickets)
            if errors or probe_errors:
                raise BenchError(f"{len(errors)} error answers (first: {errors[:1]}), {probe_errors} probe errors")
            if len(set(numbers)) != len(numbers):
                raise BenchError("a ticket number was given twice")
            if stored != len(answered) or not_stored:
                raise BenchError(f"central.db holds {stored} tickets for {len(answered)} answered "
                                 f"({not_stored} answered before they were stored)")
            print(f"checked: {len(answered)} tickets answered ok, distinct numbers, {stored} in central.db", flush=True)
    finally:
        if central is not None and central.poll() is None:
            central.send_signal(signal.SIGTERM)
            try:
                central.wait(20)
            except subprocess.TimeoutExpired:
                central.kill()
                central.wait()
        await asyncio.to_thread(broker.close)
    if central is not None and central.returncode not in (0, None):
        raise BenchError(f"central exited with {central.returncode}: {err_path.read_text()[-2000:]} "
                         f"(its store and log stay in {workdir})")
    shutil.rmtree(workdir, ignore_errors=True)
    rtt = statistics.median(rtts)
    result = {
        "bench": "central_load",
        "broker": "stock" if args.stock_broker else "hallctl example config",
        "issue_p50_ms": r(statistics.median(steady)),
        "issue_p99_ms": r(pct(steady, 0.99)),
        "tickets_per_s": r(tickets_per_s, 0),
        "probe_p99_ms_during_burst": r(pct(probe_ms, 0.99)),
        "mqtt_rtt_ms": r(rtt, 3),
        "baseline": {"mqtt_rtt_ms": r(rtt, 3), "mqtt_rtt_p99_ms": r(pct(rtts, 0.99), 3),
                     "mqtt_rtt_back_to_back_ms": r(statistics.median(rtts_b2b), 3),
                     "sqlite_commit_ms": r(commit_ms, 3), "sqlite_commit_p99_ms": r(pct(commits, 0.99), 3)},
        "ratios": {"issue_p50_vs_rtt": r(statistics.median(steady) / rtt, 1),
                   "issue_p50_vs_rtt_plus_commit": r(statistics.median(steady) / (rtt + commit_ms), 1)},
        "rates": rates,
        "burst": {"tickets": args.burst, "bursts": args.bursts, "tickets_per_s": [r(v, 0) for v in speeds],
                  "issue_p50_ms": r(statistics.median(burst_ms)), "issue_max_ms": r(max(burst_ms)),
                  "probes": len(probe_ms), "probe_p50_ms": r(statistics.median(probe_ms)),
                  "probe_max_ms": r(max(probe_ms))},
        "targets": TARGETS,
        "meets_targets": {
            "probe_p99_ms_during_burst": pct(probe_ms, 0.99) <= TARGETS["probe_p99_ms_during_burst"],
            "issue_p99_ms": pct(steady, 0.99) <= TARGETS["issue_p99_ms"],
            "tickets_per_s": tickets_per_s >= TARGETS["tickets_per_s"],
        },
        "stored_tickets": stored,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
    }
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--stock-broker", action="store_true",
                   help="run Mosquitto without hallctl's settings (no set_tcp_nodelay), for comparison")
    p.add_argument("--steady-s", type=float, default=10.0, help="seconds at 20 requests/s (default 10)")
    p.add_argument("--rates", type=lambda s: [float(x) for x in s.split(",")], default=[50.0, 100.0, 200.0],
                   help="further rates, requests/s (default 50,100,200)")
    p.add_argument("--rate-s", type=float, default=3.0, help="seconds at each further rate (default 3)")
    p.add_argument("--burst", type=int, default=1000, help="tickets requested at once (default 1000)")
    p.add_argument("--bursts", type=int, default=3, help="bursts, each with its probe (default 3)")
    p.add_argument("--probe-interval-ms", type=float, default=10.0, help="queue.status during the burst (default 10)")
    p.add_argument("--rtt-n", type=int, default=100, help="bare MQTT round trips, spaced and back to back (default 100)")
    p.add_argument("--quick", action="store_true", help="a short run: 3 s steady, 1 s per rate, a burst of 300")
    p.add_argument("--probe-child", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.probe_child:
        asyncio.run(probe_main(args.probe_child, args.probe_interval_ms / 1000))
        return 0
    if args.quick:
        args.steady_s, args.rate_s, args.burst, args.bursts = 3.0, 1.0, 300, 1
    try:
        result = asyncio.run(measure(args))
    except BenchError as exc:
        print(f"central_load: FAILED: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(result, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
