"""A buttons-only kiosk (issue 9): one push button per category with a lamp, on gpiozero's
MockFactory, beside the ticket printer (the ESC/POS emulator on a pty), on a real Mosquitto with a
real central. A press prints that category's ticket, confirmed in central; a lamp is lit while its
category can be issued and dark while the printer is out of paper, when a press issues nothing."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
from pathlib import Path
from typing import AsyncIterator

import aiohttp
from conftest import PYTHON, spawn_env
from escpos_samples import profile
from gpiozero import Device
from gpiozero.pins.mock import MockFactory
from hallkit import HALL, Observer, Running, central
from kioskkit import KIOSK, Page, kiosk_config, kiosk_hall

from hallctl.bus.topics import Topics
from hallctl.config import parse_node_config
from hallctl.node.daemon import Node
from hallctl_drivers.escpos.emulator import PtyPrinter

T = Topics(HALL)
BUTTONS = {"general": 17, "house": 27}
LAMPS = {"general": 5, "house": 6}


def config(host: str, port: int, tmp: Path, printer_port: str) -> dict:
    cfg = kiosk_config(host, port, tmp, printer_port, buttons={"general": "general", "house": "house"},
                       button_panel="buttons")
    cfg["device"].append({"id": "buttons", "profile": "gpio-button-panel",
                          "options": {"buttons": BUTTONS, "lamps": LAMPS, "bounce_time_s": 0.01}})
    return cfg


@contextlib.asynccontextmanager
async def buttons_kiosk(host: str, port: int, tmp: Path) -> AsyncIterator[tuple[Node, PtyPrinter, MockFactory]]:
    factory, before = MockFactory(), Device.pin_factory
    Device.pin_factory = factory
    try:
        with PtyPrinter.for_profile(profile("snbc-bt-t080"), out_dir=tmp / "tickets") as emu:
            node = Node(parse_node_config(config(host, port, tmp, emu.port)))
            run = Running(node)
            try:
                async with asyncio.timeout(10):
                    await node.ready.wait()
                yield node, emu, factory
            finally:
                async with asyncio.timeout(10):
                    await run.stop()
    finally:
        Device.pin_factory = before
        factory.reset()


async def until(pred, timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not pred():
            await asyncio.sleep(0.02)


def lit(factory: MockFactory) -> dict[str, bool]:
    return {name: bool(factory.pin(pin).state) for name, pin in LAMPS.items()}


def press(factory: MockFactory, button: str) -> None:
    pin = factory.pin(BUTTONS[button])
    pin.drive_low()
    pin.drive_high()


async def test_a_button_prints_its_categorys_ticket_and_the_lamps_say_when_it_can(mosquitto, tmp_path) -> None:
    async with central(mosquitto.host, mosquitto.port, tmp_path, hall=kiosk_hall()), \
            buttons_kiosk(mosquitto.host, mosquitto.port, tmp_path) as (node, emu, pins), \
            Observer(mosquitto.host, mosquitto.port, [T.event("ticket.confirmed"), T.central_res("probe")]) as obs:
        await until(lambda: lit(pins) == {"general": True, "house": True})

        press(pins, "house")
        confirmed = (await obs.wait_for(T.event("ticket.confirmed")))[0]
        assert confirmed["data"]["number"] == "B001"
        await until(lambda: len(emu.tickets) == 1)
        assert "B001" in emu.tickets[0].lines
        await obs.publish(T.central_req("probe", "ticket.status"), {"v": 1, "request_id": "s1",
                                                                    "data": {"ticket": "B001"}})
        status = (await obs.wait_for(T.central_res("probe"), lambda d: d["request_id"] == "s1"))[0]
        assert status["data"]["ticket"]["status"] == "waiting" and status["data"]["ticket"]["phone_masked"] is None

        # no paper: every lamp dark, and a press issues nothing
        emu.set(paper_out=True)
        await until(lambda: lit(pins) == {"general": False, "house": False})
        press(pins, "general")
        await asyncio.sleep(0.5)
        assert len(emu.tickets) == 1 and len(obs.docs(T.event("ticket.confirmed"))) == 1

        # paper back: lit again, and the next press prints
        emu.set(paper_out=False)
        await until(lambda: lit(pins) == {"general": True, "house": True})
        press(pins, "general")
        await until(lambda: len(emu.tickets) == 2)
        assert "A001" in emu.tickets[1].lines
        await until(lambda: lit(pins) == {"general": True, "house": True})


async def test_without_central_the_lamps_stay_dark_and_a_press_issues_nothing(mosquitto, tmp_path) -> None:
    async with buttons_kiosk(mosquitto.host, mosquitto.port, tmp_path) as (node, emu, pins):
        await asyncio.sleep(0.5)  # the lamps were set as the kiosk started: dark, it cannot issue
        assert lit(pins) == {"general": False, "house": False}
        press(pins, "general")
        await asyncio.sleep(0.5)
        assert emu.tickets == [] and node.apps["printer"].flow.shown == "unavailable"


async def test_a_press_while_someone_is_at_the_touchscreen_issues_nothing(mosquitto, tmp_path) -> None:
    async with central(mosquitto.host, mosquitto.port, tmp_path, hall=kiosk_hall()), \
            buttons_kiosk(mosquitto.host, mosquitto.port, tmp_path) as (node, emu, pins), \
            aiohttp.ClientSession() as http:
        page = Page(node.apps["printer"].url, http)
        await page.wait_screen("home")
        await until(lambda: lit(pins) == {"general": True, "house": True})
        assert (await page.press(do="queue", id="general"))["screen"] == "matters"
        await until(lambda: lit(pins) == {"general": False, "house": False})  # the buttons are not offered
        press(pins, "house")
        await asyncio.sleep(0.5)
        assert emu.tickets == [] and (await page.view())["screen"] == "matters"  # the citizen's choice stands
        await page.press(do="home")
        await until(lambda: lit(pins) == {"general": True, "house": True})
        press(pins, "house")
        await until(lambda: len(emu.tickets) == 1)
        assert "B001" in emu.tickets[0].lines


def test_buttons_without_their_panel_is_a_config_error(tmp_path) -> None:
    cfg = tmp_path / "node.toml"
    cfg.write_text(f"""
[node]
id = "{KIOSK}"
hall = "{HALL}"
[[device]]
id = "printer"
profile = "snbc-bt-t080"
app = "kiosk"
[device.options]
port = "/dev/ttyUSB0"
buttons = {{ a = "general" }}
""", encoding="utf-8")
    proc = subprocess.run([PYTHON, "-m", "hallctl", "node", "-c", str(cfg)], env=spawn_env(),
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 78, proc.stderr
    assert "button_panel" in proc.stderr
