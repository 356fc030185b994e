"""A call at central reaches the LED bar over the window: kiosk request -> central -> retained
window state -> node -> BX frame on a pty -> emulated controller (real Mosquitto throughout)."""

from __future__ import annotations

import asyncio

from hallkit import HALL, Observer, central, window_node

from hallctl.bus.topics import Topics
from hallctl.profiles import load_profiles
from hallctl_drivers.onbon_bx.emulator import BxEmulator
from hallctl_drivers.onbon_bx import OnbonBxDisplay

T = Topics(HALL)


def crc16_arc_bitwise(data: bytes) -> int:
    """CRC-16/ARC computed bit by bit, independent of the driver's table."""
    crc = 0
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc


def unescape_bx(body: bytes) -> bytes:
    """Onbon §3.3: A6 02 -> A5, A6 01 -> A6, 5B 02 -> 5A, 5B 01 -> 5B."""
    out, i = bytearray(), 0
    while i < len(body):
        b = body[i]
        if b in (0xA6, 0x5B):
            nxt = body[i + 1]
            out.append({(0xA6, 2): 0xA5, (0xA6, 1): 0xA6, (0x5B, 2): 0x5A, (0x5B, 1): 0x5B}[(b, nxt)])
            i += 2
        else:
            out.append(b)
            i += 1
    return bytes(out)


async def _call(obs: Observer, client: str, action: str, data: dict, rid: str) -> dict:
    await obs.publish(T.central_req(client, action), {"v": 1, "request_id": rid, "data": data})
    return (await obs.wait_for(T.central_res(client), lambda d: d["request_id"] == rid))[0]


async def test_each_call_puts_a_byte_correct_bx_frame_on_the_wire(mosquitto, tmp_path):
    with BxEmulator() as emu:
        async with central(mosquitto.host, mosquitto.port, tmp_path), \
                window_node(mosquitto.host, mosquitto.port, tmp_path, "1", emu):
            async with Observer(mosquitto.host, mosquitto.port, [T.central_res("clerk")]) as obs:
                await _call(obs, "clerk", "window.open", {"window": "1"}, "o1")
                for i in (1, 2):
                    await _call(obs, "clerk", "ticket.issue", {"queue": "a"}, f"t{i}")
                for i, number in ((1, "A001"), (2, "A002")):
                    if i == 2:
                        await _call(obs, "clerk", "window.complete", {"window": "1"}, "c1")
                    res = await _call(obs, "clerk", "window.call_next", {"window": "1"}, f"n{i}")
                    assert res["data"]["ticket"]["number"] == number
                    expected = [f"请{number}号", "到1号窗口办理"]
                    assert await asyncio.to_thread(emu.wait_for, lambda: emu.screens[1].lines == expected, 10)

                    frame = emu.screens[1].frames[-1]
                    # PHY0: 8 x A5, escaped PHY1, 5A
                    assert frame[:8] == b"\xa5" * 8 and frame[-1] == 0x5A
                    phy1 = unescape_bx(frame[8:-1])
                    body, crc = phy1[:-2], phy1[-2:]
                    assert int.from_bytes(crc, "little") == crc16_arc_bitwise(body)
                    assert body[0:2] == b"\x01\x00" and body[2:4] == b"\x00\x80"  # dst 1, src 0x8000 (LE)
                    assert int.from_bytes(body[12:14], "little") == len(body) - 14  # DataLen
                    assert body[14:16] == b"\xa3\x06"  # real-time dynamic area
                    for line in expected:
                        assert line.encode("gb2312") in body
                    # and it is exactly the frame the profile's driver builds for these lines
                    profile = load_profiles().get("onbon-bx-6k")
                    driver = OnbonBxDisplay(profile.settings, {"port": emu.port, "address": 1})
                    assert frame == driver.build(0xA3, 0x06, driver.show_payload(expected))


async def test_rebooted_display_node_shows_current_number_from_retained_state(mosquitto, tmp_path):
    with BxEmulator() as emu:
        async with central(mosquitto.host, mosquitto.port, tmp_path):
            async with Observer(mosquitto.host, mosquitto.port, [T.central_res("clerk")]) as obs:
                await _call(obs, "clerk", "window.open", {"window": "2"}, "o2")
                await _call(obs, "clerk", "ticket.issue", {"queue": "b"}, "t1")
                # the node is down (power cut) while the call is made, and the display loses power too
                emu.power_cycle(1)
                await _call(obs, "clerk", "window.call_next", {"window": "2"}, "n1")
                assert emu.screens[1].lines == []
                async with window_node(mosquitto.host, mosquitto.port, tmp_path, "2", emu):
                    ok = await asyncio.to_thread(
                        emu.wait_for, lambda: emu.screens[1].lines == ["请B001号", "到2号窗口办理"], 10)
                    assert ok, emu.screens[1].lines


async def test_display_that_comes_back_is_brought_up_to_date(mosquitto, tmp_path):
    """A display whose USB adapter is pulled misses a call; when the adapter is back the node
    reopens the port and the display shows the current number."""
    with BxEmulator() as emu:
        async with central(mosquitto.host, mosquitto.port, tmp_path), \
                window_node(mosquitto.host, mosquitto.port, tmp_path, "3", emu) as node:
            state = T.dev_state(node.id, "display")
            async with Observer(mosquitto.host, mosquitto.port, [T.central_res("clerk"), state]) as obs:
                await _call(obs, "clerk", "window.open", {"window": "3"}, "o3")
                await _call(obs, "clerk", "ticket.issue", {"queue": "a"}, "t1")
                emu.unplug()
                await _call(obs, "clerk", "window.call_next", {"window": "3"}, "n1")
                down = (await obs.wait_for(state, lambda d: not d["available"], timeout=30))[0]
                assert down["health"] == "fault" and down["reason"]
                emu.power_cycle(1)
                emu.replug()
                await obs.wait_for(state, lambda d: d["available"], timeout=60)
                ok = await asyncio.to_thread(
                    emu.wait_for, lambda: emu.screens[1].lines == ["请A001号", "到3号窗口办理"], 10)
                assert ok, emu.screens[1].lines


async def test_a_node_with_no_devices_yet_comes_up_and_says_so(mosquitto, tmp_path):
    """A node installed before its devices are wired (config with no [[device]]): it used to crash
    at start (an empty set of workers); it is ready, with an empty device list in its birth."""
    from hallctl.config import parse_node_config
    from hallctl.node.daemon import Node
    from hallkit import Running

    host, port = mosquitto.host, mosquitto.port
    async with Observer(host, port, [T.node_birth("window-9")]) as obs:
        node = Node(parse_node_config({"node": {"id": "window-9", "hall": HALL},
                                       "mqtt": {"host": host, "port": port, "keepalive": 5},
                                       "store": {"path": str(tmp_path / "n.db")}}))
        run = Running(node)
        try:
            birth = (await obs.wait_for(T.node_birth("window-9")))[0]
            assert birth["devices"] == [] and not run.task.done()
        finally:
            await run.stop()
