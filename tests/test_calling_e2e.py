"""Calling end to end, every device that must agree (issue 10): a press on a mock GPIO pin (window 1)
and a frame from the emulated RS485 keypad (window 2) each make one call that shows on the window
displays (BX emulator), on the call-order board (its PNG, read back with tesseract) and in the voice
caller's queue (a WAV file per announcement, in call order); a double press calls once. Real
Mosquitto, real central, a window node (tests/test_keypad_e2e.py's hall) and a hall screen node
with the board and the voice."""

from __future__ import annotations

import asyncio
import contextlib
import wave
from pathlib import Path
from typing import AsyncIterator

from boardkit import call_rows, read_cells
from hallkit import HALL, Running
from PIL import Image
from test_keypad_e2e import keypad_hall

from hallctl.config import parse_node_config
from hallctl.node.daemon import Node


def screen_config(host: str, port: int, tmp: Path) -> dict:
    return {
        "node": {"id": "hall-screen", "hall": HALL},
        "mqtt": {"host": host, "port": port, "keepalive": 5},
        "store": {"path": str(tmp / "hall-screen.db")},
        "device": [{"id": "board", "profile": "generic-hdmi-board-landscape", "app": "call_board",
                    "options": {"png_dir": str(tmp / "board")}},
                   # not paced: each announcement is written as fast as it is made (no speaker to wait for)
                   {"id": "voice", "profile": "espeak-ng-mandarin", "app": "voice_caller",
                    "options": {"out_dir": str(tmp / "voice"), "pace": False, "repeat": 1}}],
    }


@contextlib.asynccontextmanager
async def hall_screen(host: str, port: int, tmp: Path) -> AsyncIterator[Node]:
    node = Node(parse_node_config(screen_config(host, port, tmp)))
    run = Running(node)
    try:
        async with asyncio.timeout(15):
            await node.ready.wait()
        yield node
    finally:
        await run.stop()


def board_driver_flash_s(screen: Node) -> float:
    """How long the board flashes a new call (its profile's)."""
    return float(screen.plans["board"].profile.settings.get("flash_s", 6.0))


async def until(pred, timeout: float = 20.0) -> None:
    async with asyncio.timeout(timeout):
        while not pred():
            await asyncio.sleep(0.05)


async def test_a_keypad_press_shows_on_the_displays_the_board_and_the_voice_once(mosquitto, tmp_path) -> None:
    async with hall_screen(mosquitto.host, mosquitto.port, tmp_path) as screen, \
            keypad_hall(mosquitto, tmp_path) as hall:
        board, voice = screen.apps["board"], screen.apps["voice"]

        hall.press_pin("call_next")  # GPIO keypad, window 1
        assert await hall.wait_calls("1", 1) == ["A001"]
        hall.pads.press(0x22, "1")  # RS485 keypad, window 2
        hall.pads.press(0x22, "1")  # ... pressed twice at once: one call
        assert await hall.wait_calls("2", 1) == ["A002"]
        hall.press_pin("call_next")  # the GPIO button again, within its double-press guard: no call
        await asyncio.sleep(0.3)
        assert hall.calls("1") == ["A001"] and hall.calls("2") == ["A002"]

        # the window displays
        await hall.display_shows(1, ["请A001号", "到1号窗口办理"])
        await hall.display_shows(2, ["请A002号", "到2号窗口办理"])

        # the board: a frame holding both calls, newest first, and what a person reads on it
        await until(lambda: any(r.calls[:2] == ("A002", "A001") for r in board.renders))
        png = tmp_path / "board" / "board.png"
        await until(png.exists)
        await asyncio.sleep(board_driver_flash_s(screen) + 0.5)  # the newest row settled after flashing
        rows = call_rows(await asyncio.to_thread(read_cells, Image.open(png)))
        assert rows[:2] == [("A002", "2号窗口"), ("A001", "1号窗口")], rows

        # the voice: both spoken, each once, in call order, to the window that called it
        await until(lambda: len(voice.spoken) >= 2)
        await asyncio.sleep(0.5)  # and nothing more follows
        assert [(s.number, s.window) for s in voice.spoken] == [("A001", "1"), ("A002", "2")]
        for s in voice.spoken:
            with wave.open(s.file) as w:
                assert w.getnframes() / w.getframerate() > 1.0  # a sentence, not a click
