"""``hallctl demo``: a whole simulated hall in one process.

An embedded broker (amqtt, so nothing to install) or a given one, central, one node per window
with an emulated Onbon BX LED display and an emulated QSystem-type RS485 keypad on ptys, a kiosk
node with an emulated ESC/POS ticket printer whose page citizens touch (and a newcomer can too, in
a browser: its address is printed), a hall screen node with the call-order board (a web page, its
address printed) and the voice caller, and clerks pressing their keypads. Everything talks over
MQTT exactly as the real hall does; the displays receive real BX frames, the keypads real QSystem
frames, the printer real ESC/POS. ``--out DIR`` keeps each ticket (PNG and .bin), each board frame
(``DIR/board/*.png``) and each announcement (``DIR/voice/*.wav``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import socket
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, AsyncIterator, TextIO

from hallctl.access.roles import Client
from hallctl.bus.client import Bus
from hallctl.bus.requests import Requester
from hallctl.bus.topics import Topics, parse
from hallctl.central.model import DepartmentSpec, HallSpec, MatterSpec, QueueSpec, WindowSpec
from hallctl.central.service import CentralService, MqttSettings
from hallctl.config import parse_node_config
from hallctl.node.daemon import Node
from hallctl.runtime.tasks import cancel_and_wait
from hallctl.profiles import load_profiles
from hallctl_drivers.escpos.emulator import PtyPrinter
from hallctl_drivers.keypad.emulator import QsysKeypadBus
from hallctl_drivers.voice.sinks import speaker_present
from hallctl_drivers.onbon_bx.emulator import BxEmulator
from hallctl.sim.citizens import KioskCitizens
from hallctl.sim.traffic import KeypadClerk, TrafficStats, WindowStates

HALL = "demo-hall"
QUEUES = [QueueSpec("a", "A", "综合受理"), QueueSpec("b", "B", "不动产"), QueueSpec("c", "C", "税务")]
DEPARTMENTS = [DepartmentSpec("amr", "市场监管"), DepartmentSpec("tax", "税务")]
MATTERS = [MatterSpec("business-licence", "营业执照设立登记", "a", "amr"),
           MatterSpec("food-permit", "食品经营许可", "a", "amr"),
           MatterSpec("invoice", "发票申领", "c", "tax")]
#: the kiosk node's id: also its client id at central, with the kiosk role
KIOSK = "kiosk-1"
#: the printer of the demo's kiosk (an 80 mm kiosk printer with a Chinese font and a cutter)
KIOSK_PRINTER = "snbc-bt-t080"
#: the node behind the hall's TV: the call-order board (HDMI) and the voice caller (its speaker)
SCREEN = "hall-screen"
#: each window's keypad: the QSystem 1.4.1 kind (a 3-character display), address 0x22 on its own bus
KEYPAD_PROFILE = "qsystem-keypad-display"
KEYPAD_ADDRESS = 0x22


class DemoUnavailable(RuntimeError):
    """What the demo needs is not installed."""


@dataclass(frozen=True)
class DemoOptions:
    duration: float | None = None
    windows: int = 4
    broker: str | None = None
    rate: float = 1.0
    service_s: float = 3.0
    seed: int | None = None
    quiet: bool = False
    #: where each printed ticket is saved (PNG and the raw bytes, .bin); None: not saved
    out: str | None = None
    #: the kiosk page's port (0: any free one; 8080 when it is taken)
    kiosk_port: int = 8080
    #: the call-order board's page (0: any free one; 8081 when it is taken)
    board_port: int = 8081


def demo_hall_spec(windows: int) -> HallSpec:
    specs = {}
    for i in range(1, windows + 1):
        # the last window is a "1+X" section window (不动产 and 税务 only); the rest are universal
        queues = ("b", "c") if i == windows and windows > 1 else ("*",)
        specs[str(i)] = WindowSpec(str(i), f"{i}号窗口", queues)
    return HallSpec(HALL, {q.id: q for q in QUEUES}, specs, name="演示政务服务中心",
                    matters={m.id: m for m in MATTERS}, departments={d.id: d for d in DEPARTMENTS},
                    ticket_link="https://hall.example.cn/t/{token}")


class Console:
    """Prints the hall as it happens: tickets, calls, what each display shows."""

    def __init__(self, out: TextIO, quiet: bool) -> None:
        self.out, self.quiet, self.t0 = out, quiet, time.monotonic()

    def line(self, text: str) -> None:
        if not self.quiet:
            print(f"[{time.monotonic() - self.t0:6.1f}s] {text}", file=self.out, flush=True)


async def _watch_displays(emulators: dict[str, BxEmulator], console: Console) -> None:
    seen = {w: 0 for w in emulators}
    while True:
        for w, emu in emulators.items():
            history = emu.screens[1].history
            while seen[w] < len(history):
                text = history[seen[w]]
                console.line(f"{w}号窗口显示屏 ← {text.replace(chr(10), ' | ') if text.strip() else '(dark: blinking)'}")
                seen[w] += 1
        await asyncio.sleep(0.1)


async def _watch_voice(app: Any, console: Console) -> None:
    seen = 0
    while True:
        spoken = list(app.spoken)
        for item in spoken[seen:]:
            where = f", {Path(item.file).name}" if item.file else ""
            console.line(f"语音 请{item.number}号到{item.window}号窗口办理 ({item.duration_ms / 1000:.1f} s{where})")
        seen = len(spoken)
        await asyncio.sleep(0.2)


@dataclass
class DemoHall:
    """A running demo hall: what the tests and the summary look at."""

    hall: HallSpec
    host: str
    port: int
    central: CentralService
    nodes: list[Node]
    emulators: dict[str, BxEmulator]
    keypads: dict[str, QsysKeypadBus]
    printer: PtyPrinter
    kiosk_url: str
    board_url: str
    stats: TrafficStats
    tasks: list[asyncio.Task[Any]]


def _node_config(w: str, host: str, port: int, tmp: Path, emu: BxEmulator, pads: QsysKeypadBus) -> dict[str, Any]:
    # probes every 0.5 s with a 0.3 s reply timeout: a display that goes quiet shows up in
    # `hallctl diag devices` within a second (the pty answers in well under a millisecond)
    return {
        "node": {"id": f"window-{w}", "hall": HALL},
        "mqtt": {"host": host, "port": port},
        "store": {"path": str(tmp / f"window-{w}.db")},
        "device": [{"id": "display", "profile": "onbon-bx-6k", "app": "window_display", "probe_interval_s": 0.5,
                    "options": {"port": emu.port, "address": 1, "window": w, "reply_timeout_s": 0.3}},
                   {"id": "keypad", "profile": KEYPAD_PROFILE, "app": "keypad",
                    "options": {"port": pads.port, "address": KEYPAD_ADDRESS, "window": w}}],
    }


def _screen_config(host: str, port: int, tmp: Path, board_port: int, out: str | None) -> dict[str, Any]:
    board: dict[str, Any] = {"http_port": board_port}
    if out:
        board.update(png_dir=str(Path(out) / "board"), png_mode="frames")
    # the voice: WAV files with --out; else the speaker when this machine has one; else WAV files in
    # the demo's temporary folder, paced as a speaker (so the queue and the console behave the same)
    voice: dict[str, Any] = {"repeat": 1}
    if out:
        voice["out_dir"] = str(Path(out) / "voice")
    elif not speaker_present():
        voice["out_dir"] = str(tmp / "voice")
    return {
        "node": {"id": SCREEN, "hall": HALL},
        "mqtt": {"host": host, "port": port},
        "store": {"path": str(tmp / f"{SCREEN}.db")},
        "device": [{"id": "board", "profile": "generic-hdmi-board-landscape", "app": "call_board",
                    "options": board},
                   {"id": "voice", "profile": "espeak-ng-mandarin", "app": "voice_caller", "options": voice}],
    }


def _kiosk_config(host: str, port: int, tmp: Path, printer: PtyPrinter, http_port: int) -> dict[str, Any]:
    return {
        "node": {"id": KIOSK, "hall": HALL},
        "mqtt": {"host": host, "port": port},
        "store": {"path": str(tmp / f"{KIOSK}.db")},
        "device": [{"id": "printer", "profile": KIOSK_PRINTER, "app": "kiosk", "probe_interval_s": 0.5,
                    "options": {"port": printer.port, "http_port": http_port, "next_kiosk": "服务台"}}],
    }


def _free_or_any(port: int) -> int:
    """``port`` if nothing listens on it, else 0 (any free one): a demo must not fail on 8080."""
    if port == 0:
        return 0
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return 0
    return port


def _free_port(port: int) -> int:
    """``port`` if nothing listens on it, else one the system says is free now."""
    port = _free_or_any(port)
    if port:
        return port
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.asynccontextmanager
async def demo_hall(opts: DemoOptions, out: TextIO = sys.stdout) -> AsyncIterator[DemoHall]:
    """Broker (unless ``opts.broker``), central, one node per window with its emulated display,
    a kiosk and the clerks, all started; stopped cleanly on exit."""
    rng = random.Random(opts.seed)
    console = Console(out, opts.quiet)
    hall = demo_hall_spec(opts.windows)
    topics = Topics(HALL)
    async with contextlib.AsyncExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="hallctl-demo-")))
        if opts.broker:
            host, _, port_s = opts.broker.rpartition(":")
            host, port = host or "127.0.0.1", int(port_s)
            broker_name = f"MQTT broker {host}:{port}"
        else:
            try:  # the embedded broker is an extra: a node install does not carry it
                from hallctl.sim.broker import EmbeddedBroker
            except ImportError:
                raise DemoUnavailable(
                    "the embedded broker is not installed: pip install 'hallctl[demo]' "
                    "(or run on a broker of your own: hallctl demo --broker HOST:PORT)") from None
            broker = await stack.enter_async_context(EmbeddedBroker())
            host, port = broker.host, broker.port
            broker_name = f"embedded broker (amqtt) on {host}:{port}"
        mqtt = MqttSettings(host, port)
        print(f"hallctl demo: {opts.windows} windows, {broker_name}", file=out, flush=True)

        tasks: list[asyncio.Task[Any]] = []
        # the hall's roles, as a real hall lists them: the kiosk issues, the clerks call their windows
        # (each window's node, for its keypad; the clerks' sign-in at the window's PC; the hall's screen)
        clients = (Client(KIOSK, "kiosk"), Client("demo-clerks", "window", tuple(hall.windows)),
                   *(Client(f"window-{w}", "window", (w,)) for w in hall.windows), Client(SCREEN, "display"))
        central = CentralService(hall, str(tmp / "central.db"), mqtt, clients=clients)
        tasks.append(asyncio.create_task(central.run(), name="central"))

        emulators: dict[str, BxEmulator] = {}
        keypads: dict[str, QsysKeypadBus] = {}
        nodes: list[Node] = []
        for w in hall.windows:
            emu = stack.enter_context(BxEmulator(addresses=[1], name=f"window-{w}-display"))
            emulators[w] = emu
            pads = keypads[w] = stack.enter_context(QsysKeypadBus([KEYPAD_ADDRESS], name=f"window-{w}-keypad"))
            node = Node(parse_node_config(_node_config(w, host, port, tmp, emu, pads), file=f"<demo window-{w}>"))
            nodes.append(node)
            tasks.append(asyncio.create_task(node.run(), name=f"node-{w}"))

        printer = stack.enter_context(PtyPrinter.for_profile(load_profiles().get(KIOSK_PRINTER), out_dir=opts.out))
        kiosk_node = Node(parse_node_config(_kiosk_config(host, port, tmp, printer, _free_or_any(opts.kiosk_port)),
                                            file="<demo kiosk>"))
        nodes.append(kiosk_node)
        tasks.append(asyncio.create_task(kiosk_node.run(), name="node-kiosk"))
        board_port = _free_port(opts.board_port)
        screen_node = Node(parse_node_config(_screen_config(host, port, tmp, board_port, opts.out),
                                             file="<demo hall screen>"))
        nodes.append(screen_node)
        tasks.append(asyncio.create_task(screen_node.run(), name="node-screen"))

        stats = TrafficStats()
        clerks = Requester("demo-clerks")
        states = WindowStates()

        async def on_sim_message(incoming: Any) -> None:
            parsed = parse(incoming.topic)
            if parsed is not None and parsed.kind == "window_state" and incoming.payload:
                await states.on_state(str(parsed.window), json.loads(incoming.payload))
            else:
                await clerks.on_message(incoming)

        sim_bus = Bus(host, port, "demo-sim", subscriptions=[(topics.central_res(clerks.client_id), 1),
                                                             (topics.window_state_filter, 1)],
                      on_message=on_sim_message, clean_session=True)
        clerks.bus = sim_bus
        tasks.append(asyncio.create_task(sim_bus.run(), name="sim-bus"))
        running = DemoHall(hall, host, port, central, nodes, emulators, keypads, printer, "",
                           f"http://127.0.0.1:{board_port}/", stats, tasks)
        try:
            async with asyncio.timeout(15):
                await asyncio.gather(sim_bus.connected.wait(), central.ready.wait(),
                                     *(n.ready.wait() for n in nodes))
            running.kiosk_url = kiosk_node.apps["printer"].url
            console.line(f"central, {len(hall.windows)} window nodes, the kiosk and the hall screen ready")
            print(f"kiosk page (取号机): {running.kiosk_url}  (open it in a browser to take a ticket)", file=out, flush=True)
            print(f"call-order board (叫号屏): {running.board_url}  (the hall's TV shows this page)", file=out, flush=True)
            if opts.out:
                print(f"printed tickets are saved in {opts.out} (PNG and .bin), board frames in "
                      f"{Path(opts.out) / 'board'}, announcements in {Path(opts.out) / 'voice'} (WAV)",
                      file=out, flush=True)

            def on_issue(r: dict[str, Any]) -> None:
                q = hall.queues[r["queue"]].name
                phone = f", 短信至 {r['phone_masked']}" if r.get("phone_masked") else ""
                eta = f", 预计等待 {r['wait']} 分钟" if r.get("wait") is not None else ""
                console.line(f"取号 {r['number']} ({q}), 前面还有 {r.get('people_ahead') or 0} 人{eta}{phone}"
                             f", 号票第 {len(printer.tickets)} 张")

            def on_call(window: str, t: dict[str, Any]) -> None:
                console.line(f"叫号 请 {t['number']} 号到 {hall.windows[window].name} 办理")

            tasks.append(asyncio.create_task(
                KioskCitizens(running.kiosk_url, opts.rate, rng, stats, on_issue).run(), name="citizens"))
            for w in hall.windows:
                press = (lambda key, pads=keypads[w]: pads.press(KEYPAD_ADDRESS, key))
                tasks.append(asyncio.create_task(
                    KeypadClerk(w, clerks, topics, opts.service_s, random.Random(rng.random()), stats, press, states,
                                on_call).run(),
                    name=f"clerk-{w}"))
            tasks.append(asyncio.create_task(_watch_displays(emulators, console), name="displays"))
            tasks.append(asyncio.create_task(_watch_voice(screen_node.apps["voice"], console), name="voice"))
            yield running
        finally:
            # the simulated people leave first: a citizen at a kiosk that is shutting down is no error
            for t in tasks:
                if t.get_name() == "citizens" or t.get_name().startswith("clerk-"):
                    await cancel_and_wait(t)
            for n in nodes:
                await n.stop()
            await central.stop()
            await sim_bus.close()
            for t in tasks:
                await cancel_and_wait(t)


async def run_demo(opts: DemoOptions, out: TextIO = sys.stdout) -> int:
    async with demo_hall(opts, out) as running:
        try:
            if opts.duration is None:
                await asyncio.Event().wait()
            else:
                await asyncio.sleep(opts.duration)
            # let the last calls reach the displays
            await asyncio.sleep(0.5)
        finally:
            crashed = [t for t in running.tasks if t.done() and not t.cancelled() and t.exception()]
    _summary(out, running.hall, running.stats, running.emulators, crashed, running.printer, opts.out)
    screen = running.nodes[-1]
    presses = sum(len(pads.presses) for pads in running.keypads.values())
    print(f"keypad presses: {presses}; board frames drawn: {len(screen.apps['board'].renders)}; "
          f"announcements: {len(screen.apps['voice'].spoken)}", file=out, flush=True)
    return 1 if crashed else 0


def _summary(out: TextIO, hall: HallSpec, stats: TrafficStats, emulators: dict[str, BxEmulator],
             crashed: list[asyncio.Task[Any]], printer: PtyPrinter, saved: str | None) -> None:
    print("\n== demo summary ==", file=out)
    print(f"tickets issued: {len(stats.issued)}", file=out)
    print(f"tickets printed: {len(printer.tickets)}" + (f" (saved in {saved})" if saved else ""), file=out)
    print(f"calls made:     {len(stats.calls)}", file=out)
    print(f"completed:      {stats.completed}", file=out)
    for w, emu in emulators.items():
        screen = emu.screens[1]
        texts = [h.replace("\n", " | ") if h.strip() else "(dark: blinking)" for h in screen.history]
        print(f"{hall.windows[w].name} display received {len(screen.frames)} frames, "
              f"{len(texts)} texts; now showing: {screen.text.replace(chr(10), ' | ') or '(blank)'}", file=out)
        for text in texts:
            print(f"    {text}", file=out)
    if stats.errors:
        print(f"request errors: {len(stats.errors)} (first: {stats.errors[0]})", file=out)
    for t in crashed:
        print(f"task {t.get_name()} crashed: {t.exception()!r}", file=out)
    out.flush()
