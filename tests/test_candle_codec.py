"""The Candle board codec against the vendor manual: every worked example of
shared/reference/protocols.md §3.7 byte for byte, the glyph table, the board layouts, and a
receiver that survives any garbage."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hallctl.errors import BadRequest
from hallctl_drivers.candle.codec import (
    MAX_FRAME,
    FrameError,
    FrameParser,
    GlyphError,
    SetAddress,
    SetBrightness,
    SetData,
    address_frame,
    blink_code,
    blink_times,
    brightness_code,
    brightness_frame,
    encode_glyphs,
    glyph_of,
    parse_frame,
    set_data_frame,
)
from hallctl_drivers.candle.layout import Layout

A24 = 0x24  # window 5 in QSystem's sample config (address 31 + n)


def hx(text: str) -> bytes:
    return bytes.fromhex(text)


# -- the worked examples (window 5 -> address 24, position 5, arrow '-') -----------------------

GOLDEN = [
    ("A012 invited (blinking), window 5",
     lambda: set_data_frame(A24, Layout(4, True).encode(Layout(4, True).call_text("A012", "5", "-")), blink_code(-1)),
     "01 24 21 41 30 31 32 2D 35 20 07"),
    ("A12 as QSystem sends it, invited",
     lambda: set_data_frame(A24, Layout(4, True).encode("A12 -5"), 0x21),
     "01 24 21 41 31 32 20 2D 35 20 07"),
    ("service started (steady)",
     lambda: set_data_frame(A24, Layout(4, True).encode(Layout(4, True).call_text("A12", "5", "-")), blink_code(0)),
     "01 24 20 41 31 32 20 2D 35 20 07"),
    ("finished: ticket blanked, window lit",
     lambda: set_data_frame(A24, Layout(4, True).encode(Layout(4, True).call_text("", "5", "-")), blink_code(0)),
     "01 24 20 20 20 20 20 2D 35 20 07"),
    ("shortest valid show A012, rest unchanged",
     lambda: set_data_frame(A24, encode_glyphs("A012"), 0x20),
     "01 24 20 41 30 31 32 07"),
    ("brightness max", lambda: brightness_frame(A24, 0x20), "02 24 20 07"),
    ("brightness min", lambda: brightness_frame(A24, 0x23), "02 24 23 07"),
    ("renumber 24 -> 30", lambda: address_frame(A24, 0x30), "03 24 30 07"),
    ("renumber any board -> 30", lambda: address_frame(0xFF, 0x30), "03 FF 30 07"),
]


@pytest.mark.parametrize("case, build, expected", GOLDEN, ids=[g[0] for g in GOLDEN])
def test_every_worked_example_byte_for_byte(case, build, expected):
    frame = build()
    assert frame == hx(expected), case
    # and the receiver reads back what was built
    parsed = FrameParser().feed(frame)
    assert len(parsed) == 1 and not isinstance(parsed[0], FrameError) and parsed[0].raw == frame


def test_parsed_examples_say_what_the_manual_says():
    data = parse_frame(hx("01 24 21 41 30 31 32 2D 35 20 07"))
    assert isinstance(data, SetData) and (data.address, blink_times(data.blink)) == (A24, -1)
    assert data.data.decode("ascii") == "A012-5 "
    assert parse_frame(hx("02 24 23 07")) == SetBrightness(A24, 0x23, hx("02 24 23 07"))
    assert parse_frame(hx("03 FF 30 07")) == SetAddress(0xFF, 0x30, hx("03 FF 30 07"))


def test_blink_byte_is_the_manuals_count():
    """[CANDLE] p.5: 20 steady, 21 continuous, 22..7F blink (value - 0x21) times."""
    assert [blink_code(n) for n in (0, -1, 1, 3, 94)] == [0x20, 0x21, 0x22, 0x24, 0x7F]
    assert [blink_times(b) for b in (0x20, 0x21, 0x22, 0x24, 0x7F)] == [0, -1, 1, 3, 94]
    for bad in (95, -2, True, 1.5):
        with pytest.raises(BadRequest):
            blink_code(bad)


def test_brightness_levels_map_onto_four_steps():
    steps = [brightness_code(level) for level in range(16)]
    assert steps == [0x23] * 4 + [0x22] * 4 + [0x21] * 4 + [0x20] * 4
    with pytest.raises(BadRequest):
        brightness_code(16)


def test_frame_builders_refuse_what_the_manual_forbids():
    for call in (lambda: set_data_frame(0x1F, b"1"), lambda: set_data_frame(0x80, b"1"),
                 lambda: set_data_frame(0xFF, b"1"),  # FF is defined only for renumbering
                 lambda: set_data_frame(A24, b"\x07"),  # control bytes only mark start and end
                 lambda: brightness_frame(A24, 0x24), lambda: address_frame(A24, 0xFF),
                 lambda: address_frame(0x10, 0x30)):
        with pytest.raises(BadRequest):
            call()


# -- glyphs ------------------------------------------------------------------------------------


def test_glyph_table_is_the_manuals():
    """[CANDLE] p.7: digits, 17 Latin and 15 cp1251 Cyrillic glyphs (plus space)."""
    assert encode_glyphs("0123456789") == b"0123456789"
    assert encode_glyphs("ABCEFHILOPSUbcdlo") == b"ABCEFHILOPSUbcdlo"
    assert encode_glyphs("АБВГЕЗНОПРСУЧос") == "АБВГЕЗНОПРСУЧос".encode("cp1251")
    assert encode_glyphs("ЧП") == hx("D7 CF")
    assert glyph_of(0xD7) == "Ч" and glyph_of(0x47) is None  # 'G' is not in the table


def test_a_letter_in_the_other_case_is_shown_as_the_board_writes_it():
    assert encode_glyphs("D") == b"d" and encode_glyphs("a") == b"A" and encode_glyphs("h") == b"H"


@pytest.mark.parametrize("text, bad", [("G12", "G"), ("K7", "K"), ("请", "请"), ("5号", "号"), ("A-1", "-")])
def test_characters_without_a_glyph_are_refused_by_name(text, bad):
    with pytest.raises(GlyphError) as err:
        encode_glyphs(text)
    assert err.value.detail["character"] == bad and repr(bad) in err.value.message


# -- layouts -----------------------------------------------------------------------------------


def test_calls_on_each_board_variant():
    assert Layout(4, True).call_text("A012", "5", "-") == "A012-5 "
    assert Layout(4, True).call_text("B7", "12", "<") == "B7  <12"
    assert Layout(3, True).call_text("A012", "5", ">") == "A12>5 "  # zeros after the prefix go first
    assert Layout(4, False).call_text("A012", "5", "-") == "A012"
    assert Layout(3, False).call_text("A007", "", "-") == "A7 "
    assert Layout(4, True).call_text("A012", "", "-") == "A012   "  # no window known: no arrow


def test_numbers_and_window_labels_that_cannot_fit_are_refused_not_cut():
    with pytest.raises(BadRequest, match="does not fit") as number:
        Layout(3, True).call_text("A123", "5", "-")  # cutting it would show another number
    with pytest.raises(BadRequest, match="window_label") as window:
        Layout(4, True).call_text("A012", "w12", "-")
    # what a client reads in the error (docs/topics.md, "Device commands")
    assert number.value.detail["field"] == "data.number" and window.value.detail["field"] == "data.window"


def test_the_arrow_module_shows_only_arrows_and_digits_only_glyphs():
    layout = Layout(4, True)
    assert layout.encode("A012>5") == b"A012>5 "
    with pytest.raises(GlyphError):
        layout.encode("A0125")  # a digit where the arrow is
    with pytest.raises(GlyphError):
        layout.encode("A-12")  # a dash on a digit module
    with pytest.raises(BadRequest, match="shows 7"):
        layout.encode("A012-5 X")


# -- the receiver ------------------------------------------------------------------------------


def test_receiver_resyncs_on_a_start_byte_and_drops_noise():
    show = hx("01 24 20 41 30 31 32 07")
    items = FrameParser().feed(b"\xff\x41noise" + hx("01 24 20 41") + show + hx("02 24 07") + hx("02 24 22 07"))
    kinds = [type(i).__name__ if not isinstance(i, FrameError) else i.reason for i in items]
    assert kinds == ["cut", "SetData", "invalid", "SetBrightness"]
    assert items[1].raw == show


def test_receiver_breaks_a_frame_on_a_control_byte_and_on_length():
    p = FrameParser()
    assert [i.reason for i in p.feed(hx("01 24 20 41 0A 30 07"))] == ["control"]
    assert [i.reason for i in p.feed(b"\x01\x24\x20" + b"1" * MAX_FRAME)] == ["too_long"]
    assert p.feed(hx("01 24 20 31 07"))[0].data == b"1"  # and goes on reading


def test_receiver_handles_frames_split_anywhere():
    stream = hx("01 24 21 41 30 31 32 2D 35 20 07 02 24 21 07 03 24 30 07")
    for cut in range(len(stream)):
        p = FrameParser()
        items = p.feed(stream[:cut]) + p.feed(stream[cut:])
        assert [type(i) for i in items] == [SetData, SetBrightness, SetAddress]


@settings(max_examples=400, deadline=None)
@given(st.lists(st.binary(max_size=80) | st.sampled_from([hx("01 24 20 41 07"), b"\x01", b"\x07", b"\x03\xff"]),
                max_size=20))
def test_garbage_never_crashes_or_hangs_the_receiver(chunks):
    p = FrameParser()
    for chunk in chunks:
        for item in p.feed(chunk):
            assert isinstance(item, (SetData, SetBrightness, SetAddress, FrameError))
            if isinstance(item, FrameError):
                assert item.reason in ("cut", "control", "too_long", "invalid") and str(item)
            else:
                assert parse_frame(item.raw) == item  # only whole, valid frames come out
        assert p._buf is None or len(p._buf) <= MAX_FRAME  # bounded memory


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=80))
def test_parse_frame_raises_only_frame_errors(raw):
    try:
        parse_frame(raw)
    except FrameError:
        pass
