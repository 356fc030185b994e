"""The call board's framebuffer and PNG outputs, read back without the driver's code.

A real /dev/fb0 cannot exist here (no display in CI): each test uses a regular file of the
framebuffer's size in its place, and a folder with the sysfs files the kernel would keep for it
(tests/boardkit.py). The file is decoded with numpy (RGB565, XRGB8888) and compared with the PNG
the same driver wrote, pixel for pixel."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from boardkit import as_565, decode_framebuffer, fake_framebuffer, read_cells, text_of
from PIL import Image, ImageChops

from hallctl.apps.call_board.content import DEFAULT_TEMPLATES, HallView, build
from hallctl.errors import ConfigError
from hallctl.profiles import load_profiles
from hallctl_drivers.base import Health
from hallctl_drivers.board import CallBoardDriver

CATALOGUE = {"hall": {"name": "萧山区行政服务中心"}, "hours": {"periods": ["08:30-12:00", "13:30-17:00"]},
             "queues": [{"id": "a", "name": "综合受理"}, {"id": "b", "name": "不动产登记"}]}


def content(calls: int = 3, waiting_a: int = 4, **extra) -> dict:
    board = {"calls": [{"number": f"A{i:03d}", "window": str(i), "window_name": f"{i}号窗口", "at": f"t{i}"}
                       for i in range(1, calls + 1)],
             "waiting": {"a": waiting_a, "b": 2}, "predicted_wait_min": {"a": 6.5, "b": 1.5}}
    return {**build(HallView(board, CATALOGUE, True, True), DEFAULT_TEMPLATES), **extra}


def board(profile: str, settings: dict | None = None, **options) -> CallBoardDriver:
    p = load_profiles().get(profile)
    return CallBoardDriver({**p.settings, **(settings or {})}, options)


def fb_image(fb, width, height, bpp, stride=None) -> np.ndarray:
    return decode_framebuffer(fb.read_bytes(), width, height, bpp, stride)


def png(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


@pytest.mark.parametrize("bpp,stride", [(16, None), (32, None), (16, 1920 * 2 + 64)],
                         ids=["rgb565", "xrgb8888", "rgb565-padded-lines"])
async def test_the_framebuffer_holds_the_png_render(tmp_path, bpp, stride):
    fb, sysfs = fake_framebuffer(tmp_path, 1920, 1080, bpp, stride)
    drv = board("generic-hdmi-board-landscape", framebuffer=str(fb), fb_sysfs=str(sysfs), png_dir=str(tmp_path / "png"),
                flash_s=0)
    async with drv:
        answer = await drv.execute("show", content())
        assert answer["calls_shown"] == ["A003", "A002", "A001"]
        assert drv.fb.geometry.describe() == f"1920x1080 {bpp} bpp"  # read from sysfs
        shown = fb_image(fb, 1920, 1080, bpp, stride)
        expected = png(tmp_path / "png" / "board.png")
        assert np.array_equal(shown, expected if bpp == 32 else as_565(Image.fromarray(expected)))


async def test_only_the_rows_that_changed_are_written(tmp_path):
    fb, sysfs = fake_framebuffer(tmp_path, 1920, 1080, 16)
    drv = board("generic-hdmi-board-landscape", framebuffer=str(fb), fb_sysfs=str(sysfs), png_dir=str(tmp_path / "png"),
                png_mode="frames", flash_s=0)
    async with drv:
        await drv.execute("show", content(waiting_a=4))
        before = Image.open(sorted((tmp_path / "png").glob("frame-*.png"))[-1]).convert("RGB")
        # mark every byte: whatever the next frame does not write keeps the mark
        fb.write_bytes(b"\xa5" * (1920 * 2 * 1080))
        written = drv.fb.bytes_written
        await drv.execute("show", content(waiting_a=5))  # one count changes
        after_path = sorted((tmp_path / "png").glob("frame-*.png"))[-1]
        after = Image.open(after_path).convert("RGB")
        x0, y0, x1, y1 = ImageChops.difference(before, after).getbbox()
        raw = np.frombuffer(fb.read_bytes(), dtype=np.uint8).reshape(1080, 1920 * 2)
        untouched = np.all(raw == 0xA5, axis=1)
        assert untouched[:y0].all() and untouched[y1:].all()  # no other row was written
        assert not untouched[y0:y1].any()
        shown = fb_image(fb, 1920, 1080, 16)
        assert np.array_equal(shown[y0:y1, x0:x1], as_565(after)[y0:y1, x0:x1])
        assert drv.fb.bytes_written - written == (x1 - x0) * (y1 - y0) * 2
        assert (y1 - y0) < 1080 // 10


async def test_a_portrait_board_is_turned_onto_a_landscape_signal(tmp_path):
    fb, sysfs = fake_framebuffer(tmp_path, 1920, 1080, 32)
    drv = board("generic-hdmi-board-portrait", {"scroll_px_s": 0}, framebuffer=str(fb), fb_sysfs=str(sysfs),
                png_dir=str(tmp_path / "png"), rotate=90, flash_s=0)
    async with drv:
        await drv.execute("show", content())
        upright = png(tmp_path / "png" / "board.png")
        assert upright.shape == (1920, 1080, 3)
        # the TV's top is on the right: the board turned a quarter clockwise
        assert np.array_equal(fb_image(fb, 1920, 1080, 32), np.rot90(upright, k=-1))


async def test_a_turned_board_scrolls_its_notice_in_the_turned_strip_only(tmp_path):
    """The notice at the bottom of a portrait board is the left edge of the turned picture."""
    fb, sysfs = fake_framebuffer(tmp_path, 1920, 1080, 32)
    drv = board("generic-hdmi-board-portrait", framebuffer=str(fb), fb_sysfs=str(sysfs), rotate=90, flash_s=0)
    async with drv:
        await drv.execute("show", content())  # the default notice is wider than 1080 pixels
        fb.write_bytes(b"\xa5" * (1920 * 4 * 1080))
        await asyncio.sleep(0.3)
    raw = np.frombuffer(fb.read_bytes(), dtype=np.uint8).reshape(1080, 1920 * 4)
    columns = np.flatnonzero(~np.all(raw.reshape(1080, 1920, 4) == 0xA5, axis=(0, 2)))
    assert columns.size and columns[0] == 0 and columns[-1] < 100
    assert np.array_equal(columns, np.arange(columns[-1] + 1))


async def test_an_led_board_is_drawn_in_the_sending_cards_window_only(tmp_path):
    """An HDMI sending card shows one window of the picture on the LED matrix (NovaStar: Input
    Capture Start X/Y): the board goes there, the rest of the picture is left alone."""
    fb, sysfs = fake_framebuffer(tmp_path, 1920, 1080, 32, fill=0x5A)
    drv = board("p4-led-board-256x128", framebuffer=str(fb), fb_sysfs=str(sysfs), png_dir=str(tmp_path / "png"),
                fb_x=64, fb_y=32, flash_s=0)
    async with drv:
        answer = await drv.execute("show", content(calls=6))
        assert answer["calls_shown"] == ["A006", "A005", "A004", "A003"]
        raw = np.frombuffer(fb.read_bytes(), dtype=np.uint8).reshape(1080, 1920, 4)
        inside = np.zeros((1080, 1920), dtype=bool)
        inside[32:160, 64:320] = True
        assert np.all(raw[~inside] == 0x5A)
        assert np.array_equal(fb_image(fb, 1920, 1080, 32)[32:160, 64:320], png(tmp_path / "png" / "board.png"))


async def test_the_probe_draws_the_board_again_over_a_console_that_wrote_on_it(tmp_path):
    fb, sysfs = fake_framebuffer(tmp_path, 1920, 1080, 16)
    drv = board("generic-hdmi-board-landscape", framebuffer=str(fb), fb_sysfs=str(sysfs), png_dir=str(tmp_path / "png"),
                flash_s=0)
    async with drv:
        await drv.execute("show", content())
        assert (await drv.probe()).health is Health.OK
        with open(fb, "r+b") as f:  # a getty's login prompt on the console
            f.seek(500 * 1920 * 2)
            f.write(b"\xff\xff" * 1920 * 16)
        result = await drv.probe()
        assert result.health is Health.DEGRADED and "drawn over" in result.reason
        assert np.array_equal(fb_image(fb, 1920, 1080, 16), as_565(Image.open(tmp_path / "png" / "board.png")))
        assert (await drv.probe()).health is Health.OK
        # a changed mode (another HDMI mode after a re-plug) is a fault: the worker restarts the board
        (sysfs / "virtual_size").write_text("1280,720\n")
        result = await drv.probe()
        assert result.health is Health.FAULT and "1280x720" in result.reason


async def test_a_new_call_flashes_and_then_stays_lit(tmp_path):
    fb, sysfs = fake_framebuffer(tmp_path, 1920, 1080, 16)
    drv = board("generic-hdmi-board-landscape", {"flash_s": 1.2, "flash_period_s": 0.4}, framebuffer=str(fb),
                fb_sysfs=str(sysfs), png_dir=str(tmp_path / "png"), png_mode="frames")
    async with drv:
        answer = await drv.execute("show", content())
        assert answer["flashing"]
        lit = as_565(Image.open(tmp_path / "png" / "frame-000002.png"))
        seen = []
        for _ in range(32):  # 1.6 s, every 50 ms
            seen.append(np.array_equal(fb_image(fb, 1920, 1080, 16), lit))
            await asyncio.sleep(0.05)
        changes = sum(a != b for a, b in zip(seen, seen[1:]))
        assert seen[0] and seen[-1] and changes >= 3, seen  # lit, dark, lit, dark ... lit
        # the same call shown again (another count changed) does not flash again
        assert not (await drv.execute("show", content(waiting_a=9)))["flashing"]
        # the phases are not files: one PNG per frame the board settles on
        assert sorted(p.name for p in (tmp_path / "png").glob("*.png")) == [
            "frame-000001.png", "frame-000002.png", "frame-000003.png"]


async def test_a_long_notice_scrolls_and_only_its_strip_is_rewritten(tmp_path):
    fb, sysfs = fake_framebuffer(tmp_path, 1920, 1080, 16)
    drv = board("generic-hdmi-board-landscape", framebuffer=str(fb), fb_sysfs=str(sysfs), flash_s=0)
    notice = "各位办事群众请注意：" + "本中心实行一次告知、限时办结，如有疑问请到服务台咨询。" * 3
    async with drv:
        await drv.execute("show", content(notice=notice))
        fb.write_bytes(b"\xa5" * (1920 * 2 * 1080))
        await asyncio.sleep(0.3)
        first = fb.read_bytes()
        await asyncio.sleep(0.3)
        second = fb.read_bytes()
    rows = np.frombuffer(second, dtype=np.uint8).reshape(1080, 1920 * 2)
    written = np.flatnonzero(~np.all(rows == 0xA5, axis=1))
    assert written.size and written[-1] == 1079 and written[0] > 900  # the bottom strip, nothing else
    assert np.array_equal(written, np.arange(written[0], 1080))
    assert first != second  # and it moves


async def test_the_test_pattern_shows_bars_and_names_the_model_and_size(tmp_path):
    fb, sysfs = fake_framebuffer(tmp_path, 1920, 1080, 32)
    drv = board("generic-hdmi-board-landscape", framebuffer=str(fb), fb_sysfs=str(sysfs), png_dir=str(tmp_path / "png"))
    async with drv:
        await drv.execute("test_pattern", {})
        shown = fb_image(fb, 1920, 1080, 32)
    bars = [tuple(shown[60, int((i + 0.5) * 240) + 7]) for i in range(8)]
    assert bars == [(255, 255, 255), (255, 255, 0), (0, 255, 255), (0, 255, 0), (255, 0, 255), (255, 0, 0),
                    (0, 0, 255), (0, 0, 0)]
    caption = shown[345:735, 170:1750]  # the black box in the middle, white text on it
    text = text_of(read_cells(Image.fromarray(caption))).replace("\n", "")
    assert "HDMI1080plandscape" in text and "1920x1080landscape" in text and "32bpp" in text, text


def test_a_board_without_an_output_or_of_an_impossible_size_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError) as exc:
        board("generic-hdmi-board-landscape")
    assert exc.value.key == "options.framebuffer"
    with pytest.raises(ConfigError) as exc:
        board("generic-hdmi-board-landscape", png_dir=str(tmp_path), width=40, height=10)
    assert exc.value.key.startswith("options.")
    assert not any(tmp_path.iterdir())  # the constructor did no I/O


async def test_a_board_larger_than_the_framebuffer_does_not_start(tmp_path):
    fb, sysfs = fake_framebuffer(tmp_path, 1280, 720, 16)
    drv = board("generic-hdmi-board-landscape", framebuffer=str(fb), fb_sysfs=str(sysfs))
    with pytest.raises(ConfigError) as exc:
        await drv.start()
    assert "does not fit" in exc.value.message and "1280x720" in exc.value.message
