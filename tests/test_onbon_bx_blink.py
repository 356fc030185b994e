"""Blinking on the Onbon BX: the protocol has no blink mode (§9.1), so the driver sends the area
dark and lit again; what the emulated bar shows, in order, is what a citizen would see."""

from __future__ import annotations

import asyncio
from typing import Any, AsyncIterator, Iterator

import pytest
from hallkit import HALL, Observer, central, window_node

from hallctl.bus.topics import Topics
from hallctl.errors import BadRequest
from hallctl.profiles import load_profiles
from hallctl_drivers import Health
from hallctl_drivers.onbon_bx import OnbonBxDisplay
from hallctl_drivers.onbon_bx.emulator import BxEmulator

LINES = ["请A012号", "到5号窗口办理"]
LIT = "\n".join(LINES)


def settings(**over: Any) -> dict[str, Any]:
    return {**load_profiles().get("onbon-bx-6k").settings, "reply_timeout_s": 0.3, **over}


@pytest.fixture
def emu() -> Iterator[BxEmulator]:
    with BxEmulator() as e:
        yield e
        assert not e.errors, e.errors


@pytest.fixture
async def display(emu: BxEmulator) -> AsyncIterator[OnbonBxDisplay]:
    d = OnbonBxDisplay(settings(blink_period_s=0.05), {"port": emu.port, "address": 1})
    await d.start()
    yield d
    await d.stop()


def history(emu: BxEmulator) -> list[str]:
    with emu.cond:
        return list(emu.screens[1].history)


async def test_show_with_blink_goes_dark_and_lit_n_times_and_ends_lit(emu, display):
    assert await display.execute("show", {"lines": LINES, "blink": 2}) == {
        "acked": True, "bytes": len(display.build(0xA3, 0x06, display.show_payload(LINES))), "blink": 2}
    assert history(emu)[0] == LIT  # the number is up at once, before any blinking
    assert await asyncio.to_thread(emu.wait_for, lambda: len(emu.screens[1].history) == 5, 5)
    assert history(emu) == [LIT, "", LIT, "", LIT] and emu.screens[1].lines == LINES
    await asyncio.sleep(0.2)
    assert len(history(emu)) == 5  # and then it stays lit


async def test_a_new_show_or_clear_ends_a_blink_at_once(emu, display):
    await display.execute("show", {"lines": LINES, "blink": -1})  # until the next show
    assert await asyncio.to_thread(emu.wait_for, lambda: len(emu.screens[1].history) >= 4, 5)
    await display.execute("show", {"lines": ["正在办理A012"]})
    n = len(history(emu))
    await asyncio.sleep(0.2)
    assert history(emu)[n - 1:] == ["正在办理A012"]  # no stale dark or lit frame after it
    await display.execute("show", {"lines": LINES, "blink": -1})
    await display.execute("clear", {})
    n = len(emu.screens[1].frames)
    await asyncio.sleep(0.2)
    assert len(emu.screens[1].frames) == n and emu.screens[1].lines == []


async def test_without_blink_the_frames_are_unchanged(emu, display):
    await display.execute("show", {"lines": LINES, "blink": 0})
    await display.execute("show", {"lines": LINES})
    await asyncio.sleep(0.2)
    assert history(emu) == [LIT, LIT]
    with pytest.raises(BadRequest):
        await display.execute("show", {"lines": LINES, "blink": 95})


async def test_a_blink_cut_off_in_the_dark_is_lit_again_by_the_next_probe(emu):
    d = OnbonBxDisplay(settings(blink_period_s=0.3, retries=0), {"port": emu.port, "address": 1})
    await d.start()
    try:
        await d.execute("show", {"lines": LINES, "blink": -1})
        assert await asyncio.to_thread(emu.wait_for, lambda: emu.screens[1].history[-1:] == [""], 5)
        emu.faults.silent = True  # the cable is pulled while the bar is dark: the blink stops
        assert d._blinker is not None
        done, _ = await asyncio.wait([d._blinker], timeout=5)
        assert done and d._left_dark
        emu.faults.silent = False
        result = await d.probe()
        assert result.health is Health.OK
        assert history(emu)[-1] == LIT and emu.screens[1].lines == LINES
    finally:
        await d.stop()


async def test_a_call_blinks_on_a_bx_window_display(mosquitto, tmp_path):
    """The node's app asks for 3 blinks on a new call; the BX (1 s per phase, §2.1) goes dark and
    lit again after showing the number."""
    t = Topics(HALL)
    with BxEmulator() as emu:
        async with central(mosquitto.host, mosquitto.port, tmp_path), \
                window_node(mosquitto.host, mosquitto.port, tmp_path, "1", emu):
            async with Observer(mosquitto.host, mosquitto.port, [t.central_res("clerk")]) as obs:
                for action, data in (("window.open", {"window": "1"}), ("ticket.issue", {"queue": "a"}),
                                     ("window.call_next", {"window": "1"})):
                    rid = action
                    await obs.publish(t.central_req("clerk", action), {"v": 1, "request_id": rid, "data": data})
                    res = (await obs.wait_for(t.central_res("clerk"), lambda d, rid=rid: d["request_id"] == rid))[0]
                    assert res["status"] == "ok", res
                called = "请A001号\n到1号窗口办理"
                assert await asyncio.to_thread(
                    emu.wait_for, lambda: emu.screens[1].history[-3:] == [called, "", called], 10), history(emu)
