"""The call_board app end to end: a real Mosquitto, central and a node whose board draws to a
stand-in framebuffer (a regular file: /dev/fb0 cannot exist here) and to PNG files. A clerk's
window.call_next puts the call at the top of the board; central or the broker going away shows
plainly on it; it redraws only what changed and draws again by itself when the device is back."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any, AsyncIterator

import numpy as np
import pytest
from boardkit import as_565, call_rows, decode_framebuffer, fake_framebuffer, read_cells, text_of
from hallkit import HALL, Observer, Running, central
from PIL import Image

from hallctl.apps.call_board import app as board_app
from hallctl.apps.call_board.content import DEFAULT_TEMPLATES, HallView, build, check_templates
from hallctl.bus.topics import Topics
from hallctl.config import parse_node_config
from hallctl.errors import ConfigError
from hallctl.node.daemon import Node

T = Topics(HALL)
NODE = "board-1"


def board_config(host: str, port: int, tmp: Path, **options: Any) -> dict[str, Any]:
    fb, sysfs = fake_framebuffer(tmp, 1920, 1080, 16)
    return {
        "node": {"id": NODE, "hall": HALL},
        "mqtt": {"host": host, "port": port, "keepalive": 5},
        "store": {"path": str(tmp / f"{NODE}.db")},
        "device": [{"id": "board", "profile": "generic-hdmi-board-landscape", "app": "call_board", "probe_interval_s": 0.5,
                    "options": {"framebuffer": str(fb), "fb_sysfs": str(sysfs), "png_dir": str(tmp / "png"),
                                "png_mode": "frames", "flash_s": 0, **options}}],
    }


@contextlib.asynccontextmanager
async def board_node(host: str, port: int, tmp: Path, **options: Any) -> AsyncIterator[Node]:
    node = Node(parse_node_config(board_config(host, port, tmp, **options)))
    run = Running(node)
    try:
        async with asyncio.timeout(10):
            await node.ready.wait()
        yield node
    finally:
        await run.stop()


def latest_png(tmp: Path) -> Path:
    return sorted((tmp / "png").glob("frame-*.png"))[-1]


async def until(predicate, timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.02)


async def _call(obs: Observer, client: str, action: str, data: dict, rid: str) -> dict:
    await obs.publish(T.central_req(client, action), {"v": 1, "request_id": rid, "data": data})
    return (await obs.wait_for(T.central_res(client), lambda d: d["request_id"] == rid))[0]


async def test_a_call_at_a_window_goes_to_the_top_of_the_board_and_central_gone_shows(mosquitto, tmp_path):
    host, port = mosquitto.host, mosquitto.port
    async with board_node(host, port, tmp_path) as node:
        app = node.apps["board"]
        async with central(host, port, tmp_path), Observer(host, port, [T.central_res("clerk")]) as obs:
            for w in ("1", "2"):
                await _call(obs, "clerk", "window.open", {"window": w}, f"o{w}")
            for i in range(3):
                await _call(obs, "clerk", "ticket.issue", {"queue": "a" if i != 1 else "b"}, f"t{i}")
            called = []
            for w in ("1", "2"):
                res = await _call(obs, "clerk", "window.call_next", {"window": w}, f"n{w}")
                number = res["data"]["ticket"]["number"]
                called.append((number, f"{w}号窗口"))
                # the benchmark's hook: which calls each frame showed, and when it finished rendering
                await until(lambda: app.renders and app.renders[-1].calls[:1] == (number,))
            cells = read_cells(Image.open(latest_png(tmp_path)))
            assert call_rows(cells) == called[::-1], text_of(cells)  # newest at the top
            shown = decode_framebuffer((tmp_path / "fb0").read_bytes(), 1920, 1080, 16)
            assert np.array_equal(shown, as_565(Image.open(latest_png(tmp_path))))
            assert app.renders[-1].rendered_at > app.renders[0].rendered_at
        # central stopped (its status says offline): the board says so, over the calls it had
        await until(lambda: app.shown["banner"] == DEFAULT_TEMPLATES["central_offline"])
        assert app.shown["calls"][0]["number"] == called[-1][0]


async def test_the_board_says_so_when_central_or_the_broker_is_gone(mosquitto, tmp_path):
    host, port = mosquitto.host, mosquitto.port
    async with board_node(host, port, tmp_path) as node, Observer(host, port, [T.board_state]) as obs:
        app = node.apps["board"]
        await obs.publish(T.central_status, {"v": 1, "state": "online", "instance": "central-1",
                                             "ts": "2026-11-23T09:00:00+08:00", "unanswerable": 0}, retain=True)
        await obs.publish(T.board_state, {"v": 1, "calls": [{"number": "A017", "window": "4", "window_name": "4号窗口",
                                                             "at": "2026-11-23T09:00:00+08:00"}],
                                          "waiting": {}, "predicted_wait_min": {}}, retain=True)
        await until(lambda: app.shown is not None and app.shown["calls"] and app.shown["banner"] == "")

        await obs.publish(T.central_status, {"v": 1, "state": "offline", "instance": "central-1",
                                             "ts": "2026-11-23T09:01:00+08:00", "unanswerable": 0}, retain=True)
        await until(lambda: app.shown["banner"] == DEFAULT_TEMPLATES["central_offline"])
        text = text_of(read_cells(Image.open(latest_png(tmp_path))))
        assert "暂停服务:与中心的连接中断" in text.replace("：", ":") and "A017" in text.replace("O", "0"), text

        links: list[bool] = []  # what the node tells its apps of its broker connection (App.on_link)
        told = app.on_link
        app.on_link = lambda up: (links.append(up), told(up))
        mosquitto.stop()  # the broker is gone: nothing from the hall reaches the board any more
        await until(lambda: app.shown["banner"] == DEFAULT_TEMPLATES["link_lost"])
        text = text_of(read_cells(Image.open(latest_png(tmp_path))))
        assert "网络连接中断" in text, text
        mosquitto.start()
        await obs.publish(T.central_status, {"v": 1, "state": "online", "instance": "central-2",
                                             "ts": "2026-11-23T09:02:00+08:00", "unanswerable": 0}, retain=True)
        await until(lambda: app.shown["banner"] == "", timeout=20)
        assert links == [False, True]
        await obs.publish(T.central_status, b"", retain=True)
        await obs.publish(T.board_state, b"", retain=True)


async def test_the_board_redraws_only_what_changed_and_draws_again_when_its_device_is_back(mosquitto, tmp_path):
    host, port = mosquitto.host, mosquitto.port
    state = {"v": 1, "calls": [{"number": "B021", "window": "2", "window_name": "2号窗口",
                                "at": "2026-11-23T10:00:00+08:00"}],
             "waiting": {"b": 3}, "predicted_wait_min": {"b": 4.0}}
    async with board_node(host, port, tmp_path) as node, Observer(host, port, [T.board_state]) as obs:
        app = node.apps["board"]
        await obs.publish(T.board_state, state, retain=True)
        await until(lambda: app.shown is not None and app.shown["calls"])
        frames = len(list((tmp_path / "png").glob("*.png")))
        shows = len(app.renders)
        for _ in range(3):  # central re-publishes the same board (a reconnection, another field's change)
            await obs.publish(T.board_state, state, retain=True)
        await obs.publish(T.board_state, {**state, "waiting": {"b": 4}}, retain=True)
        await until(lambda: app.shown["waiting"] and app.shown["waiting"][0]["count"] == 4)
        await asyncio.sleep(0.2)
        assert len(app.renders) == shows + 1  # one frame for the one change
        assert len(list((tmp_path / "png").glob("*.png"))) == frames + 1

        # the HDMI mode changes (another TV plugged in): the board is restarted; while the mode
        # does not fit it stays down, and when it fits again it is drawn again, unasked
        fb, sysfs = tmp_path / "fb0", tmp_path / "sys-fb0"
        (sysfs / "virtual_size").write_text("1280,720\n")
        worker = node.supervisor.get("board")
        await until(lambda: not worker.state.available)
        drawn = len(app.renders)
        fb.write_bytes(b"\0" * 1920 * 1080 * 2)
        (sysfs / "virtual_size").write_text("1920,1080\n")
        await until(lambda: worker.state.available and len(app.renders) > drawn, timeout=30)
        assert app.renders[-1].calls == ("B021",)
        assert np.array_equal(decode_framebuffer(fb.read_bytes(), 1920, 1080, 16), as_565(Image.open(latest_png(tmp_path))))
        await obs.publish(T.board_state, b"", retain=True)


async def test_a_technicians_test_pattern_stays_a_while_then_the_hall_is_back(mosquitto, tmp_path, monkeypatch):
    monkeypatch.setattr(board_app, "HOLD_S", 0.5)
    host, port = mosquitto.host, mosquitto.port
    res = T.dev_res(NODE, "board", "test_pattern")
    async with board_node(host, port, tmp_path) as node, Observer(host, port, [res]) as obs:
        app = node.apps["board"]
        await until(lambda: app.shown is not None)
        await obs.publish(T.dev_cmd(NODE, "board", "test_pattern"), {"v": 1, "request_id": "tp1", "data": {}})
        answer = (await obs.wait_for(res, lambda d: d["request_id"] == "tp1"))[0]
        assert answer["status"] == "ok"
        bars = np.asarray(Image.open(latest_png(tmp_path)).convert("RGB"))
        assert tuple(bars[60, 367]) == (255, 255, 0)  # the yellow bar
        await until(lambda: app.shown is not None, timeout=5)  # held, then the hall's board again
        assert tuple(np.asarray(Image.open(latest_png(tmp_path)).convert("RGB"))[60, 367]) != (255, 255, 0)


def test_templates_come_from_the_hall_and_a_bad_one_stops_the_node_at_start(tmp_path):
    templates = {"call": "请{number}号前往{window_name}", "title": "{hall_name}"}
    content = build(HallView({"calls": [{"number": "A001", "window": "1", "window_name": "1号窗口", "at": "t"}]},
                             {"hall": {"name": "滨江区市民中心"}}, True, True), check_templates(templates))
    assert content["announce"] == "请A001号前往1号窗口" and content["title"] == "滨江区市民中心"
    bad = board_config("127.0.0.1", 1883, tmp_path, templates={"call": "请{ticket}号"})
    with pytest.raises(ConfigError) as exc:
        Node(parse_node_config(bad))
    assert "templates.call" in str(exc.value) and "{number}" in str(exc.value)


def test_a_name_on_the_board_is_always_masked():
    """board/state carries no names today; one that does (a later central) is shown masked."""
    board = {"calls": [{"number": "A001", "window": "1", "window_name": "1号窗口", "at": "t", "name": "张三丰"}]}
    content = build(HallView(board, None, True, True), DEFAULT_TEMPLATES)
    assert content["calls"][0]["name"] == "张**"
