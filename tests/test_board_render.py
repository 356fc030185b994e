"""Issue 10's board, read back by an independent reader: after a sequence of calls the rendered
board (landscape and portrait 1080p) is read with tesseract (chi_sim + eng) and shows the right
numbers at the right windows, newest at the top, in call order (by the OCR'd lines' positions).
Also the LED matrix, the banner, and any content within the kind's schema drawn without a crash."""

from __future__ import annotations

import re

import pytest
from boardkit import call_rows, read_cells, text_of
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hallctl.apps.call_board.content import DEFAULT_TEMPLATES, HallView, build
from hallctl_drivers.board.layout import Layout
from hallctl_drivers.board.render import render_board
from hallctl_drivers.kinds import get_kind
from hallctl_drivers.schema import check

CATALOGUE = {"v": 1, "hall": {"id": "xs", "name": "萧山区行政服务中心"},
             "hours": {"open": True, "periods": ["08:30-12:00", "13:30-17:00"]},
             "queues": [{"id": "a", "prefix": "A", "name": "综合受理"},
                        {"id": "b", "prefix": "B", "name": "不动产登记"},
                        {"id": "c", "prefix": "C", "name": "社保医保"}]}
#: (number, window id, window name) in the order central called them; every number distinct
SEQUENCE = [("A003", "1", "1号窗口"), ("B015", "3", "3号窗口"), ("A004", "2", "2号窗口"),
            ("C021", "5", "5号窗口"), ("B016", "12", "12号窗口"), ("C022", "8", "8号窗口")]


def board_after(calls: list[tuple[str, str, str]], board_size: int = 8) -> dict:
    """board/state as central publishes it after these calls: newest last, at most board_size."""
    doc = {"v": 1, "calls": [], "waiting": {"a": 4, "b": 0, "c": 11}, "predicted_wait_min": {"a": 6.5, "b": 0.0, "c": None}}
    for i, (number, window, name) in enumerate(calls):
        doc = {**doc, "calls": (doc["calls"] + [{"number": number, "window": window, "window_name": name,
                                                  "at": f"2026-11-23T09:{i:02d}:00+08:00"}])[-board_size:]}
    return doc


def content_after(calls: list[tuple[str, str, str]], **view: object) -> dict:
    view = {"central_online": True, "link_up": True, **view}
    return build(HallView(board_after(calls), CATALOGUE, **view), DEFAULT_TEMPLATES)


@pytest.mark.parametrize("size", [(1920, 1080), (1080, 1920)], ids=["landscape", "portrait"])
def test_the_board_after_a_sequence_of_calls_reads_back_newest_first(size):
    content = content_after(SEQUENCE)
    check(get_kind("call_board").actions["show"].args, content)  # what the app sends fits the kind
    rendered = render_board(content, Layout(*size))
    cells = read_cells(rendered.image)

    newest_first = [(number, name) for number, _, name in reversed(SEQUENCE)]
    assert call_rows(cells) == newest_first, text_of(cells)
    assert rendered.calls_shown == [n for n, _ in newest_first]
    text = text_of(cells)
    # the newest call as a sentence above the list (its number compared as letter and value: OCR
    # sometimes doubles a zero inside a sentence), and the rest of the board
    said = re.search(r"请([A-Z])([0-9ODQ]+)号到(.+?)办理", text)
    assert said and (said[1], int(said[2].translate(str.maketrans("ODQ", "000"))), said[3]) == ("C", 22, "8号窗口"), text
    assert "萧山区行政服务中心叫号信息" in text and "办理时间" in text and "13:30-17:00" in text
    assert "综合受理" in text and "约7分钟" in text


def test_an_led_matrix_shows_the_newest_calls_that_fit():
    """256x128 (4 x 4 P4 modules): four rows of 32 pixels, the newest call lit on the top row."""
    content = content_after(SEQUENCE)
    layout = Layout(256, 128)
    assert layout.style == "led"
    rendered = render_board(content, layout)
    assert rendered.calls_shown == ["C022", "B016", "C021", "A004"]
    big = rendered.image.resize((1024, 512), 0)  # each LED as a 4x4 block, as a camera would see it
    rows = call_rows(read_cells(big))
    # numbers compared as letter and value: OCR reads the pixel font's zeros twice now and then
    assert [(n[0], int(n[1:])) for n, _ in rows] == [("C", 22), ("B", 16), ("C", 21), ("A", 4)], rows
    assert [w for _, w in rows] == ["8号窗口", "12号窗口", "5号窗口", "2号窗口"]
    # lit: the top row's ground is the highlight red, the others' are dark
    px = rendered.image.load()
    assert px[128, 2] == layout.theme.highlight_ground and px[128, 34] == layout.theme.led_ground
    dark = render_board(content, layout, lit=False).image.load()
    assert dark[128, 2] == layout.theme.led_ground  # the flash's dark phase


def test_the_banner_says_plainly_that_central_is_gone():
    content = content_after(SEQUENCE, central_online=False)
    assert content["banner"] == "暂停服务：与中心的连接中断"
    cells = read_cells(render_board(content, Layout(1920, 1080)).image)
    assert any("暂停服务" in c.text and "中断" in c.text for c in cells), text_of(cells)
    # the calls it had stay on the board under the banner
    assert [n for n, _ in call_rows(cells)][:2] == ["C022", "B016"]


_line = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=40)
_content = st.fixed_dictionaries({}, optional={
    "title": _line, "banner": _line, "announce": _line, "hours": _line, "notice": st.text(max_size=120),
    "calls": st.lists(st.fixed_dictionaries({"number": st.text(min_size=1, max_size=16), "window_name": _line},
                                            optional={"name": st.text(max_size=16), "highlight": st.booleans()}),
                      max_size=20),
    "waiting": st.lists(st.fixed_dictionaries({"section": st.text(min_size=1, max_size=32),
                                               "count": st.integers(0, 99999)}, optional={"wait": _line}), max_size=16),
    "labels": st.fixed_dictionaries({}, optional={k: st.text(max_size=16) for k in ("number", "window", "name", "lost")}),
})


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(content=_content, style=st.sampled_from(["landscape", "portrait", "led"]))
def test_any_content_is_drawn_without_a_crash_and_shows_a_prefix_of_the_calls(content, style):
    size = {"landscape": (640, 400), "portrait": (400, 640), "led": (192, 64)}[style]
    rendered = render_board(content, Layout(*size, style=style))
    assert rendered.image.size == size
    drawable = [c["number"] for c in content.get("calls", []) if re.sub(r"[\x00-\x1f\x7f]", " ", c["number"]).strip()]
    assert len(rendered.calls_shown) <= len(drawable)
