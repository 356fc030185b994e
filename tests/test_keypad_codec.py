"""The QSystem keypad codec against the bytes QSystem's ub485 puts on the wire (shared/reference/
protocols.md §3.8: the worked example, the LED table, the display frames of 1.4.1), and both stream
readers against garbage: never a crash, never a hang, every frame found whatever the chunking."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hallctl_drivers.keypad.qsys_codec import (
    CodecError, DisplayCommand, Garbage, HostFrameReader, KeyPress, LedCommand, Poll, PressFramer, Renumber,
    display_frame, key_frame, led_frame, parse_led_code, poll_frame, renumber_frame,
)

# -- golden vectors ----------------------------------------------------------------------------


def test_the_worked_example_of_key_1_at_address_22() -> None:
    assert key_frame(0x22, "1") == bytes.fromhex("01 22 31 07")
    # A-12 invited: 1.4.1 answers with the blinking number, 1.3.4 with the green LED blinking 500 ms
    assert display_frame(0x22, "A12", blink=True) == bytes.fromhex("01 22 21 41 31 32 07")
    assert led_frame(0x22, "green_blink_slow") == bytes.fromhex("01 22 36 07")


@pytest.mark.parametrize(("state", "plain", "beep"), [
    ("off", 0x30, 0x37), ("red", 0x31, 0x38), ("green", 0x32, 0x39), ("red_blink", 0x33, 0x3A),
    ("green_blink", 0x34, 0x3B), ("red_blink_slow", 0x35, 0x3C), ("green_blink_slow", 0x36, 0x3D),
])
def test_the_led_table(state: str, plain: int, beep: int) -> None:
    assert led_frame(0x20, state) == bytes([0x01, 0x20, plain, 0x07])
    assert led_frame(0x20, state, beep=True) == bytes([0x01, 0x20, beep, 0x07])
    assert parse_led_code(plain) == (state, False) and parse_led_code(beep) == (state, True)


def test_the_display_frames_of_qsystem_1_4_1() -> None:
    # start service: the number, steady; idle with tickets waiting: CAL, steady or blinking
    assert display_frame(0x2A, "A12") == bytes.fromhex("01 2A 20 41 31 32 07")
    assert display_frame(0x2A, "CAL") == bytes.fromhex("01 2A 20 43 41 4C 07")
    assert display_frame(0x2A, "CAL", blink=True) == bytes.fromhex("01 2A 21 43 41 4C 07")
    # a blank display is four spaces (an 8-byte frame), a short text is padded to three
    assert display_frame(0x2A, "") == bytes.fromhex("01 2A 20 20 20 20 20 07")
    assert display_frame(0x2A, "7") == bytes.fromhex("01 2A 20 37 20 20 07")
    # a longer text is cut to the first three, as QSystem cuts prefix + number
    assert display_frame(0x2A, "A012") == bytes.fromhex("01 2A 20 41 30 31 07")
    # cp1251: the Cyrillic a QSystem hall may have
    assert display_frame(0x2A, "Ж1") == bytes([0x01, 0x2A, 0x20, 0xC6, 0x31, 0x20, 0x07])


def test_maintenance_frames() -> None:
    assert renumber_frame(0x22, 0x30) == bytes.fromhex("03 22 30 07")
    assert poll_frame(0x22) == bytes.fromhex("04 22 07")


def test_what_cannot_go_on_the_wire_is_refused() -> None:
    for bad in (0x03, 0x1F, 0x80, 300, True):
        with pytest.raises(CodecError, match="address"):
            led_frame(bad, "off")
    with pytest.raises(CodecError, match="'叫'"):
        display_frame(0x22, "叫1")
    with pytest.raises(CodecError, match="control"):
        display_frame(0x22, "A\x07")
    with pytest.raises(CodecError):
        led_frame(0x22, "blue")


# -- the host's reader ----------------------------------------------------------------------------


def test_presses_are_found_between_noise_and_across_chunks() -> None:
    framer = PressFramer()
    assert framer.feed(b"\x00\xff\x01\x22") == []
    assert framer.feed(b"\x31\x07\x55\x01\x01\x23\x34\x07") == [KeyPress(0x22, "1"), KeyPress(0x23, "4")]
    # a frame cut short, then a whole one: only the whole one
    assert framer.feed(b"\x01\x22\x31\x01\x22\x32\x07") == [KeyPress(0x22, "2")]
    # QSystem's host takes only 4-byte frames: a display frame or a 7 in the wrong place is noise
    assert framer.feed(bytes.fromhex("01 22 21 41 31 32 07")) == []
    assert framer.skipped > 0


def test_a_half_frame_is_dropped_when_the_line_goes_quiet() -> None:
    framer = PressFramer()
    assert framer.feed(b"\x01\x22\x31") == []
    framer.reset()
    assert framer.feed(b"\x07") == []


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200), st.lists(st.tuples(st.integers(0x20, 0x7F), st.sampled_from("1234")), max_size=5),
       st.lists(st.integers(1, 16), min_size=1, max_size=20))
def test_press_framer_on_garbage_finds_every_press_after_it(noise: bytes, presses, cuts) -> None:
    """Whatever noise came before, presses written whole after a quiet line are all found, in
    order, however the stream is cut into reads."""
    framer = PressFramer()
    framer.feed(noise)  # anything: no exception, bounded state
    assert len(framer._buf) <= 3
    framer.reset()  # the line went quiet
    stream = b"".join(key_frame(a, k) for a, k in presses)
    got, i, j = [], 0, 0
    while i < len(stream):
        n = cuts[j % len(cuts)]
        got += framer.feed(stream[i:i + n])
        i, j = i + n, j + 1
    assert got == [KeyPress(a, k) for a, k in presses]


# -- the keypad's reader (the emulator's) ------------------------------------------------------------


def test_host_frames_are_told_apart_by_length_and_opcode() -> None:
    reader = HostFrameReader()
    items = reader.feed(
        led_frame(0x22, "green", beep=True) + display_frame(0x22, "A12", blink=True) + display_frame(0x23, "")
        + renumber_frame(0x22, 0x30) + poll_frame(0x30) + b"\xff\xfe" + bytes.fromhex("01 22 4F 07"))
    assert items == [
        LedCommand(0x22, "green", True), DisplayCommand(0x22, "A12", 1), DisplayCommand(0x23, "    ", 0),
        Renumber(0x22, 0x30), Poll(0x30), Garbage(b"\xff\xfe"), Garbage(bytes.fromhex("01 22 4F 07")),
    ]
    assert items[0].raw == bytes.fromhex("01 22 39 07")


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300), st.lists(st.integers(1, 32), min_size=1, max_size=20))
def test_host_reader_on_garbage_never_crashes_and_stays_bounded(data: bytes, cuts) -> None:
    reader = HostFrameReader()
    i, j, seen = 0, 0, 0
    while i < len(data):
        n = cuts[j % len(cuts)]
        for item in reader.feed(data[i:i + n]):
            seen += len(item.data) if isinstance(item, Garbage) else 1
        assert len(reader._buf) <= 65
        i, j = i + n, j + 1
    # a frame written after the garbage and a 07 that ends any half frame is read as it was sent
    reader.feed(b"\x07")
    assert reader.feed(display_frame(0x22, "B7", blink=True)) == [DisplayCommand(0x22, "B7 ", 1)]
