"""Window keypads end to end (issue 10): a real Mosquitto, a real central (its [[client]] list makes
the node a window client of its three windows), one node with a GPIO keypad on gpiozero's
MockFactory (window 1), two QSystem RS485 keypads on one emulated bus on a pty (windows 2 and 3:
display and LED), and a BX window display per window on another pty.

A press is a pin pulled low or a 4-byte frame from the emulated keypad. Each press makes exactly
one call in central (its answer, its queue events), which shows on the window display and on
the keypad itself; a double press, a press repeated while central is slow, a request sent again
after a timeout and a request redelivered all call once."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from pathlib import Path
from typing import Any, AsyncIterator

from conftest import PYTHON, spawn_env
from gpiozero import Device
from gpiozero.pins.mock import MockFactory
from hallkit import HALL, Observer, Running, central

from hallctl.access.roles import Client
from hallctl.bus.topics import Topics
from hallctl.config import parse_node_config
from hallctl.node.daemon import Node
from hallctl_drivers.keypad.emulator import QsysKeypadBus
from hallctl_drivers.onbon_bx.emulator import BxEmulator

T = Topics(HALL)
NODE = "counters-a"
PIN = {"call_next": 17, "recall": 27, "start": 22, "complete": 23, "no_show": 24, "led_green": 5, "led_red": 6}
CLIENTS = (Client(NODE, "window", ("1", "2", "3")), Client("clerk", "window", ("1", "2", "3")),
           Client("kiosk-1", "kiosk"))


def node_config(host: str, port: int, tmp: Path, keypads: str, displays: str, feedback_s: float,
                refresh_s: float) -> dict[str, Any]:
    gpio = {f"button_{f}": PIN[f] for f in ("call_next", "recall", "start", "complete", "no_show")}
    return {
        "node": {"id": NODE, "hall": HALL},
        "mqtt": {"host": host, "port": port, "keepalive": 5},
        "store": {"path": str(tmp / f"{NODE}.db")},
        "device": [
            {"id": "keypad-1", "profile": "gpio-keypad", "app": "keypad", "probe_interval_s": 0.5,
             "options": {"window": "1", **gpio, "led_green": PIN["led_green"], "led_red": PIN["led_red"],
                         "bounce_time_s": 0.01, "guard_s": 0.5}},
            {"id": "keypad-2", "profile": "qsystem-keypad-display", "app": "keypad", "probe_interval_s": 0.5,
             "options": {"window": "2", "port": keypads, "address": 0x22, "feedback_s": feedback_s,
                         "refresh_s": refresh_s, "guard_s": 0.5}},
            # central's answer is waited for 0.3 s before the request goes again (same request_id)
            {"id": "keypad-3", "profile": "qsystem-keypad-led", "app": "keypad", "probe_interval_s": 0.5,
             "options": {"window": "3", "port": keypads, "address": 0x23, "request_timeout_s": 0.3,
                         "request_attempts": 5, "guard_s": 0.5, "feedback_s": feedback_s}},
        ] + [{"id": f"display-{w}", "profile": "onbon-bx-6k", "app": "window_display",
              "options": {"window": str(w), "port": displays, "address": w}} for w in (1, 2, 3)],
    }


class Hall:
    def __init__(self, obs: Observer, node: Node, central_svc: Any, pins: MockFactory, pads: QsysKeypadBus,
                 bx: BxEmulator) -> None:
        self.obs, self.node, self.central, self.pins, self.pads, self.bx = obs, node, central_svc, pins, pads, bx

    async def ask(self, client: str, action: str, rid: str, **data: Any) -> dict:
        await self.obs.publish(T.central_req(client, action), {"v": 1, "request_id": rid, "data": data})
        return (await self.obs.wait_for(T.central_res(client), lambda d: d["request_id"] == rid))[-1]

    def calls(self, window: str, type_: str = "ticket.called") -> list[str]:
        """The numbers called (or recalled) at ``window``, each event once (delivery is at least once)."""
        seen = {d["seq"]: d for d in self.obs.docs(T.event(type_))}
        return [d["data"]["number"] for _, d in sorted(seen.items()) if d["data"].get("window") == window]

    async def wait_calls(self, window: str, n: int) -> list[str]:
        async with asyncio.timeout(10):
            while len(self.calls(window)) < n:
                await asyncio.sleep(0.02)
        await asyncio.sleep(0.3)  # and no second one follows
        return self.calls(window)

    def press_pin(self, function: str) -> None:
        pin = self.pins.pin(PIN[function])
        pin.drive_low()
        pin.drive_high()

    async def display_shows(self, window: int, lines: list[str]) -> None:
        ok = await asyncio.to_thread(self.bx.wait_for, lambda: self.bx.screens[window].lines == lines, 10)
        assert ok, self.bx.screens[window].lines

    async def keypad_shows(self, address: int, pred) -> None:
        pad = self.pads.keypads[address]
        assert await asyncio.to_thread(self.pads.wait_for, lambda: pred(pad), 10), (pad.text, pad.blink, pad.led)

    def led(self, function: str, seconds: float = 0.7) -> set[bool]:
        """What a GPIO LED did over ``seconds``: {True, False} is blinking."""
        seen, end = set(), time.monotonic() + seconds
        while time.monotonic() < end:
            seen.add(bool(self.pins.pin(PIN[function]).state))
            time.sleep(0.01)
        return seen


@contextlib.asynccontextmanager
async def keypad_hall(broker: Any, tmp: Path, tickets: int = 8, clients: tuple[Client, ...] = CLIENTS,
                      feedback_s: float = 3.0, refresh_s: float = 30.0, with_central: bool = True
                      ) -> AsyncIterator[Hall]:
    host, port = broker.host, broker.port
    factory, before = MockFactory(), Device.pin_factory
    Device.pin_factory = factory  # the node's gpiozero buttons and LEDs are on the mock pins
    filters = [T.event_filter, T.central_res("clerk"), T.central_res("kiosk-1"), T.central_res(NODE),
               f"{T.base}/central/req/{NODE}/+"]
    try:
        async with contextlib.AsyncExitStack() as stack:
            pads = stack.enter_context(QsysKeypadBus([0x22, 0x23]))
            bx = stack.enter_context(BxEmulator([1, 2, 3]))
            svc = await stack.enter_async_context(central(host, port, tmp, clients=clients)) if with_central else None
            obs = await stack.enter_async_context(Observer(host, port, filters))
            node = Node(parse_node_config(node_config(host, port, tmp, pads.port, bx.port, feedback_s, refresh_s)))
            run = Running(node)
            stack.push_async_callback(run.stop)
            async with asyncio.timeout(10):
                await node.ready.wait()
            hall = Hall(obs, node, svc, factory, pads, bx)
            if with_central:
                for w in ("1", "2", "3"):
                    assert (await hall.ask("clerk", "window.open", f"open-{w}", window=w))["status"] == "ok"
                for i in range(tickets):
                    assert (await hall.ask("kiosk-1", "ticket.issue", f"t{i}", queue="a"))["status"] == "ok"
            yield hall
    finally:
        Device.pin_factory = before
        factory.reset()


async def test_each_press_calls_once_and_shows_on_the_displays_and_the_keypad(mosquitto, tmp_path) -> None:
    async with keypad_hall(mosquitto, tmp_path) as hall:
        # GPIO: the call-next button of window 1
        hall.press_pin("call_next")
        assert await hall.wait_calls("1", 1) == ["A001"]
        await hall.display_shows(1, ["请A001号", "到1号窗口办理"])
        assert await asyncio.to_thread(hall.led, "led_green") == {True, False}  # called: green blinking
        assert await asyncio.to_thread(hall.led, "led_red", 0.2) == {False}

        # RS485, display keypad at 0x22 (window 2): key 1 while idle is "call next"
        hall.pads.press(0x22, "1")
        assert await hall.wait_calls("2", 1) == ["A002"]
        await hall.display_shows(2, ["请A002号", "到2号窗口办理"])
        await hall.keypad_shows(0x22, lambda p: p.text == "A2" and p.blink == 1)
        # RS485, LED keypad at 0x23 (window 3), on the same bus
        hall.pads.press(0x23, "1")
        assert await hall.wait_calls("3", 1) == ["A003"]
        await hall.display_shows(3, ["请A003号", "到3号窗口办理"])
        await hall.keypad_shows(0x23, lambda p: p.led == "green_blink_slow")
        called_3 = time.monotonic()

        # central's own answers to the node: one call_next per press, each the ticket shown
        answers = hall.obs.docs(T.central_res(NODE))
        assert sorted(a["data"]["ticket"]["number"] for a in answers) == ["A001", "A002", "A003"]
        assert all(a["data"]["ticket"]["status"] == "called" for a in answers)

        # key 2 starts the service: the number stays, steady, and the window display says so
        hall.pads.press(0x22, "2")
        await hall.keypad_shows(0x22, lambda p: p.text == "A2" and p.blink == 0)
        await hall.display_shows(2, ["2号窗口", "正在办理A002"])
        # key 4 completes it; the keypad shows CAL, blinking: tickets are waiting
        hall.pads.press(0x22, "4")
        await hall.keypad_shows(0x22, lambda p: p.text == "CAL" and p.blink == 1)
        await hall.display_shows(2, ["2号窗口", "欢迎光临"])
        # a key 1 while called is a recall, not another call (pressed past the 0.5 s double-press guard)
        await asyncio.sleep(max(0.0, 0.6 - (time.monotonic() - called_3)))
        hall.pads.press(0x23, "1")
        async with asyncio.timeout(10):
            while hall.calls("3", "ticket.recalled") != ["A003"]:
                await asyncio.sleep(0.02)
        assert hall.calls("3") == ["A003"]
        states = {k: v for k, v in hall.node.states.items() if k.startswith("keypad")}
        assert all(s["available"] for s in states.values()), states


async def test_a_double_press_calls_once(mosquitto, tmp_path) -> None:
    async with keypad_hall(mosquitto, tmp_path) as hall:
        app1, app2 = hall.node.apps["keypad-1"], hall.node.apps["keypad-2"]
        # two presses 50 ms apart on the GPIO call-next button
        hall.press_pin("call_next")
        await asyncio.sleep(0.05)
        hall.press_pin("call_next")
        assert await hall.wait_calls("1", 1) == ["A001"]
        assert [k for k, _ in app1.presses] == ["call_next", "call_next"]  # both reached the app ...
        assert app1.presses[1][1] in ("busy", "guard")  # ... and the second was a double press

        # the same on the RS485 keypad: key 1 twice, 50 ms apart; the second is no recall either
        hall.pads.press(0x22, "1")
        await asyncio.sleep(0.05)
        hall.pads.press(0x22, "1")
        assert await hall.wait_calls("2", 1) == ["A002"]
        assert hall.calls("2", "ticket.recalled") == []
        assert [o for _, o in app2.presses][1] in ("busy", "guard")
        await hall.keypad_shows(0x22, lambda p: p.text == "A2")


async def test_central_slow_a_retry_and_a_redelivery_call_once(mosquitto, tmp_path) -> None:
    """Central's disk is slow (its commit waits): the node sends the request again after 0.3 s
    with the same request_id, the clerk presses again twice; then the request is delivered once
    more, verbatim. One call."""
    async with keypad_hall(mosquitto, tmp_path) as hall:
        store = hall.central.store
        commit, release = store.commit_batch, threading.Event()

        def slow_commit(*args: Any, **kw: Any) -> Any:  # in central's writer thread
            release.wait(10)
            return commit(*args, **kw)

        store.commit_batch = slow_commit
        req_topic = f"{T.base}/central/req/{NODE}/window.call_next"
        try:
            hall.pads.press(0x23, "1")
            async with asyncio.timeout(10):  # the request went out, and went again unanswered
                while len(hall.obs.docs(req_topic)) < 2:
                    await asyncio.sleep(0.02)
            hall.pads.press(0x23, "1")
            hall.pads.press(0x23, "1")
            await asyncio.sleep(0.2)
            assert hall.calls("3") == []
        finally:
            release.set()
            store.commit_batch = commit
        assert await hall.wait_calls("3", 1) == ["A001"]
        assert hall.calls("3", "ticket.recalled") == []
        requests = hall.obs.docs(req_topic)
        assert len(requests) >= 2 and len({r["request_id"] for r in requests}) == 1, requests
        app3 = hall.node.apps["keypad-3"]
        assert [o for _, o in app3.presses] == ["sent", "busy", "busy"]
        await hall.keypad_shows(0x23, lambda p: p.led == "green_blink_slow")

        # the broker delivers the request once more (a QoS 1 redelivery): central answers what it
        # answered, byte for byte, and calls nobody
        rid = requests[0]["request_id"]
        raw = [p for t, p, _ in hall.obs.messages if t == T.central_res(NODE) and json.loads(p)["request_id"] == rid]
        await hall.obs.publish(req_topic, requests[0])
        async with asyncio.timeout(10):
            while len(again := [p for t, p, _ in hall.obs.messages
                                if t == T.central_res(NODE) and json.loads(p)["request_id"] == rid]) <= len(raw):
                await asyncio.sleep(0.02)
        assert set(again) == {raw[0]}
        assert await hall.wait_calls("3", 1) == ["A001"]


async def test_failures_show_what_went_wrong_on_the_keypad(mosquitto, tmp_path) -> None:
    async with keypad_hall(mosquitto, tmp_path, tickets=0, feedback_s=1.0) as hall:
        # nobody waiting: no call, the keypad says so ("---", red blinking slowly), then idle again
        hall.pads.press(0x22, "1")
        await hall.keypad_shows(0x22, lambda p: p.text == "---")
        hall.pads.press(0x23, "1")
        await hall.keypad_shows(0x23, lambda p: p.led == "red_blink_slow")
        # key 2 with nobody called: central says conflict; a red blink and a beep
        hall.pads.press(0x23, "2")
        await hall.keypad_shows(0x23, lambda p: p.led == "red_blink" and p.beeps == 1)
        # key 3 (transfer) with no transfer queue configured
        hall.pads.press(0x22, "3")
        await hall.keypad_shows(0x22, lambda p: p.text == "E-S")
        # and back to the window's state after feedback_s (1 s here)
        await hall.keypad_shows(0x22, lambda p: p.text == "" and p.blink == 0)
        await hall.keypad_shows(0x23, lambda p: p.led == "off")
        assert hall.calls("2") == hall.calls("3") == []
        # a ticket is issued while the clerks are idle: CAL blinking, the LED blinking green with a beep
        assert (await hall.ask("kiosk-1", "ticket.issue", "late", queue="a"))["status"] == "ok"
        await hall.keypad_shows(0x22, lambda p: p.text == "CAL" and p.blink == 1)
        await hall.keypad_shows(0x23, lambda p: p.led == "green_blink" and p.beeps == 2)


async def test_a_keypad_node_that_is_not_the_windows_client_is_refused(mosquitto, tmp_path) -> None:
    """Central's [[client]] list does not give this node window 2: forbidden, shown as E-F."""
    clients = (Client(NODE, "window", ("1", "3")), *CLIENTS[1:])
    async with keypad_hall(mosquitto, tmp_path, tickets=1, clients=clients) as hall:
        hall.pads.press(0x22, "1")
        await hall.keypad_shows(0x22, lambda p: p.text == "E-F" and p.blink == 1)
        answer = hall.obs.docs(T.central_res(NODE))[-1]
        assert answer["error"]["code"] == "forbidden"
        assert hall.calls("2") == []


async def test_a_keypad_that_lost_power_or_its_adapter_shows_the_truth_again(mosquitto, tmp_path) -> None:
    """A QSystem keypad never answers, so a power cut is invisible: the app sends what it should
    show every refresh_s (1 s here). A pulled RS485 adapter takes both keypads of the line down;
    when it is back they show the window's state again."""
    async with keypad_hall(mosquitto, tmp_path, refresh_s=1.0) as hall:
        hall.pads.press(0x22, "1")
        await hall.keypad_shows(0x22, lambda p: p.text == "A1" and p.blink == 1)
        hall.pads.press(0x23, "1")
        await hall.keypad_shows(0x23, lambda p: p.led == "green_blink_slow")
        hall.pads.power_cycle(0x22)
        assert hall.pads.keypads[0x22].text == ""
        await hall.keypad_shows(0x22, lambda p: p.text == "A1" and p.blink == 1)

        state = T.dev_state(NODE, "keypad-3")
        async with Observer(mosquitto.host, mosquitto.port, [state]) as obs:
            hall.pads.unplug()
            down = (await obs.wait_for(state, lambda d: not d["available"]))[-1]
            assert down["health"] == "fault" and hall.pads.port in down["reason"]
            hall.pads.power_cycle(0x23)
            hall.pads.replug()
            await obs.wait_for(state, lambda d: d["available"], timeout=15)
        await hall.keypad_shows(0x23, lambda p: p.led == "green_blink_slow")
        assert hall.calls("2") == ["A001"] and hall.calls("3") == ["A002"]


async def test_central_unreachable_is_said_and_no_second_request_goes_while_the_first_may_still_land(
        mosquitto, tmp_path) -> None:
    """No central: the press's request goes 5 times (same request_id, 0.3 s apart), then the
    keypad blinks red with a beep. A press right after sends nothing: the first request could
    still reach central until its expires_at, and two would call two citizens."""
    async with keypad_hall(mosquitto, tmp_path, with_central=False) as hall:
        req_topic = f"{T.base}/central/req/{NODE}/window.call_next"
        hall.pads.press(0x23, "1")
        await hall.keypad_shows(0x23, lambda p: p.led == "red_blink" and p.beeps == 1)
        requests = hall.obs.docs(req_topic)
        assert len(requests) == 5 and len({r["request_id"] for r in requests}) == 1
        assert all(r["expires_at"] for r in requests)
        hall.pads.press(0x23, "1")
        await hall.keypad_shows(0x23, lambda p: p.beeps == 2)  # said again, nothing sent
        await asyncio.sleep(0.2)
        assert len(hall.obs.docs(req_topic)) == 5
        assert [o for _, o in hall.node.apps["keypad-3"].presses] == ["sent", "unsure"]


async def diag(broker: Any, *args: str) -> tuple[int, str, str]:
    env = {**spawn_env(), "HALLCTL_BROKER": f"{broker.host}:{broker.port}", "HALLCTL_HALL": HALL}
    proc = await asyncio.create_subprocess_exec(PYTHON, "-m", "hallctl", "diag", *args, env=env,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    return proc.returncode, out.decode(), err.decode()


async def test_diag_runs_the_keypad_led_test_and_the_keypad_shows_the_truth_again(mosquitto, tmp_path) -> None:
    async with keypad_hall(mosquitto, tmp_path) as hall:
        hall.pads.press(0x22, "1")
        await hall.keypad_shows(0x22, lambda p: p.text == "A1")
        pad, pad3 = hall.pads.keypads[0x22], hall.pads.keypads[0x23]
        before = len(pad.history)
        (rc, out, err), (rc3, out3, _), (rc1, out1, _), (rc1s, _, err1) = await asyncio.gather(
            diag(mosquitto, "run", f"{NODE}/keypad-2", "led_test", "--json"),
            diag(mosquitto, "run", f"{NODE}/keypad-3", "led_test", "--json"),
            diag(mosquitto, "run", f"{NODE}/keypad-1", "led_test", "--json"),
            diag(mosquitto, "run", f"{NODE}/keypad-1", "show", "text=A1"))
        response = json.loads(out)
        assert rc == 0 and response["status"] == "ok", out + err
        assert response["data"] == {"texts": ["888", ""], "leds": []}
        # the technician saw 888, then blank; then the app put the called number back
        await hall.keypad_shows(0x22, lambda p: p.history[before:][:2] == [("show", "888", 0), ("show", "", 0)])
        await hall.keypad_shows(0x22, lambda p: p.text == "A1" and p.blink == 1)

        assert rc3 == 0 and json.loads(out3)["data"]["leds"] == ["red", "green", "red_blink", "green_blink", "off"]
        assert ("led", "red", 1) in pad3.history and pad3.beeps >= 1
        # the GPIO keypad cycles its LEDs too; it has no display, and its birth does not offer show
        assert rc1 == 0 and json.loads(out1)["data"]["leds"][-1] == "off"
        assert not hall.pins.pin(PIN["led_red"]).state
        assert rc1s == 2 and "has no action 'show'" in err1
