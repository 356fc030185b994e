"""Onbon BX-5K/6K codec: published vectors, CRC, escaping, and garbage on the line."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hallctl.errors import BadRequest, DeviceError
from hallctl_drivers.onbon_bx import (
    CRC_ONLY,
    Frame,
    FrameError,
    FrameReader,
    build_frame,
    crc16_arc,
    decode_text,
    dynamic_area_payload,
    encode_status,
    encode_text,
    escape,
    parse_dynamic_area_payload,
    parse_frame,
    parse_status,
    unescape,
)

A5x8 = "A5 A5 A5 A5 A5 A5 A5 A5 "

# shared/reference/protocols.md §3.3 (doc §7, §8.5, §8.7; LuckyKoala BX4K.c)
GOLDEN = {
    "PING": (A5x8 + "01 00 00 80 00 00 00 00 00 00 FE 02 05 00 A2 00 01 00 00 68 F8 5A",
             dict(cmd_group=0xA2, cmd=0x00)),
    "STATUS?": (A5x8 + "01 00 00 80 00 00 00 00 00 00 FE 02 05 00 A1 02 01 00 00 2D 40 5A",
                dict(cmd_group=0xA1, cmd=0x02)),
    "CLEAR": (A5x8 + "01 00 00 80 00 00 00 00 00 00 FE 02 05 00 A3 10 01 00 00 51 F8 5A",
              dict(cmd_group=0xA3, cmd=0x10)),
    "FORMAT": (A5x8 + "01 00 00 80 00 00 00 00 00 00 FE 02 05 00 A1 00 01 00 00 2C F8 5A",
               dict(cmd_group=0xA1, cmd=0x00)),
    "ACK": (A5x8 + "00 80 FE FF 00 00 00 00 00 00 FE 02 05 00 A0 00 00 00 00 14 AC 5A",
            dict(cmd_group=0xA0, cmd=0x00, dst=0x8000, src=0xFFFE, response=0)),
    "NACK CRC": (A5x8 + "00 80 FE FF 00 00 00 00 00 00 FE 02 05 00 A0 01 05 00 00 05 51 5A",
                 dict(cmd_group=0xA0, cmd=0x01, dst=0x8000, src=0xFFFE, response=5)),
}

# doc §8.2.1 example 8: "欢迎光临" on 128x32, to the FFFE broadcast address
DOC_DYNAMIC_AREA = bytes.fromhex(
    "a5a5a5a5a5a5a5a5 feff 0080 000000 00 00 00 fe 02 2c00"
    " a3 06 01 00 00 00 01 2300 00 0080 0000 8080 2000 00 00 00 0a00 00 00 00 02 01 01 00 02 0a"
    " 08000000 bbb6d3adb9e2c1d9 3c49 5a"
)
# LuckyKoala display() example: width in 8-pixel units, ProcessMode 0x2D, CRC A8 7D
LUCKYKOALA_DISPLAY = bytes.fromhex(
    "a5a5a5a5a5a5a5a5 0100 0080 000000 00 00 00 fe 02 3200"
    " a3 06 01 2d 00 00 01 2900 00 0000 0000 1800 2000 00 00 00 0200 00 00 00 02 02 03 00 04 05"
    " 0e000000 303132333435 5152535454562742 a87d 5a"
)


@pytest.mark.parametrize("name", list(GOLDEN))
def test_golden_frames_are_byte_identical(name: str) -> None:
    hexstr, kwargs = GOLDEN[name]
    kwargs = dict(kwargs)
    cmd_group, cmd = kwargs.pop("cmd_group"), kwargs.pop("cmd")
    assert build_frame(cmd_group, cmd, **kwargs) == bytes.fromhex(hexstr)


@pytest.mark.parametrize("name", list(GOLDEN))
def test_golden_frames_parse(name: str) -> None:
    expected = bytes.fromhex(GOLDEN[name][0])
    f = parse_frame(expected)
    assert (f.cmd_group, f.cmd) == (GOLDEN[name][1]["cmd_group"], GOLDEN[name][1]["cmd"])
    assert f.raw == expected
    # the doc's own ACK/NACK text shows 9 x A5: a receiver must not care
    assert parse_frame(b"\xa5" + expected) == f


def test_nack_names_the_error() -> None:
    f = parse_frame(bytes.fromhex(GOLDEN["NACK CRC"][0]))
    assert f.is_nack and f.error == 5 and f.error_name == "ERR_CHECKSUM"


def test_doc_dynamic_area_example_is_byte_identical() -> None:
    payload = dynamic_area_payload(["欢迎光临"], width=128, height=32, font=None, run_mode=0)
    assert build_frame(0xA3, 0x06, payload, dst=0xFFFE) == DOC_DYNAMIC_AREA


def test_luckykoala_display_example_is_byte_identical() -> None:
    payload = dynamic_area_payload(
        ["012345QRSTTV'B"], width=192, height=32, font=None, run_mode=0, timeout_s=2,
        auto_newline=True, display_mode=3, speed=4, stay_time=5, pixel_units=False,
    )
    assert build_frame(0xA3, 0x06, payload, reserved=b"\x2d\x00") == LUCKYKOALA_DISPLAY


def test_crc16_arc_check_value() -> None:
    assert crc16_arc(b"123456789") == 0xBB3D
    assert crc16_arc(b"") == 0


def test_escape_rules() -> None:
    assert escape(bytes([0xA5, 0xA6, 0x5A, 0x5B, 0x00])) == bytes.fromhex("a602 a601 5b02 5b01 00")
    assert unescape(bytes.fromhex("a602 a601 5b02 5b01 00")) == bytes([0xA5, 0xA6, 0x5A, 0x5B, 0])


@given(st.binary(max_size=300))
def test_escape_round_trip(data: bytes) -> None:
    e = escape(data)
    assert 0xA5 not in e and 0x5A not in e
    assert unescape(e) == data


@pytest.mark.parametrize("bad", [b"\xa6", b"\x5b", b"\xa6\x03", b"\x5b\x00", b"\x01\xa5"])
def test_unescape_rejects_bad_escapes(bad: bytes) -> None:
    with pytest.raises(FrameError, match="escape"):
        unescape(bad)


def test_gb2312_text_and_escapes() -> None:
    text = encode_text(["A012", "请到3号窗口"], font="O000", color=1)
    assert text == b"\\FO000\\C1A012\\n" + "请到3号窗口".encode("gb2312")
    assert decode_text(text) == ["A012", "请到3号窗口"]


def test_ascii_font_switches_per_run() -> None:
    text = encode_text(["请A012号"], font="O000", ascii_font="E000")
    assert text == b"\\FO000" + "请".encode("gb2312") + b"\\FE000A012\\FO000" + "号".encode(
        "gb2312"
    )
    assert decode_text(text) == ["请A012号"]


@pytest.mark.parametrize("ch", ["😀", "€", "喆", "镕"])  # 喆, 镕: GBK-only, common in names
def test_character_outside_gb2312_is_refused_by_name(ch: str) -> None:
    with pytest.raises(BadRequest) as exc:
        dynamic_area_payload([f"请到{ch}号窗口"], width=128, height=32)
    assert repr(ch) in exc.value.message and exc.value.code == "bad_request"


@pytest.mark.parametrize("line", ["a\\b", "tab\there", "\x7f"])
def test_escape_and_control_characters_are_refused(line: str) -> None:
    with pytest.raises(BadRequest):
        encode_text([line])


def test_text_longer_than_the_area_is_refused() -> None:
    with pytest.raises(BadRequest, match="holds 512"):
        dynamic_area_payload(["号" * 300], width=128, height=32, max_text_bytes=512)


def test_dynamic_area_round_trip() -> None:
    payload = dynamic_area_payload(
        ["A012", "请到3号窗口"], width=128, height=32, area_id=2, x=8, y=16, delete_areas=[1]
    )
    deletes, areas = parse_dynamic_area_payload(payload)
    assert deletes == [1]
    (a,) = areas
    assert (a.area_id, a.x, a.y, a.width, a.height) == (2, 8, 16, 128, 32)
    assert decode_text(a.text) == ["A012", "请到3号窗口"]


def test_status_round_trip() -> None:
    import datetime as dt

    data = encode_status(brightness=7, clock=dt.datetime(2026, 5, 19, 9, 30, 5), dynamic_areas=[0])
    assert parse_status(data) == {
        "power": "on", "brightness": 7, "clock": "2026-05-19T09:30:05",
        "program_count": 0, "program": "", "dynamic_areas": [0],
    }


def test_status_too_short_is_a_frame_error() -> None:
    with pytest.raises(FrameError):
        parse_status(b"\x01\x0f")


# -- parse_frame errors --------------------------------------------------------------------


def test_bad_crc_is_reported_clearly() -> None:
    good = bytearray(bytes.fromhex(GOLDEN["PING"][0]))
    good[-3] ^= 0x01
    with pytest.raises(FrameError, match="CRC16 mismatch") as exc:
        parse_frame(bytes(good))
    assert exc.value.reason == "checksum" and exc.value.dst == 1
    assert isinstance(exc.value, DeviceError) and exc.value.code == "device_error"


@pytest.mark.parametrize(
    "raw, reason",
    [
        (b"", "truncated"),
        (b"\x01\x02", "header"),
        (b"\xa5\xa5\xa5", "truncated"),
        (b"\xa5\x5a", "truncated"),
        (bytes.fromhex(GOLDEN["PING"][0])[:-1], "truncated"),
        (bytes.fromhex(GOLDEN["PING"][0])[:-6] + b"\x5a", "truncated"),
        (bytes.fromhex(A5x8 + "01 00 a6 03 5a"), "escape"),
    ],
)
def test_parse_frame_rejects(raw: bytes, reason: str) -> None:
    with pytest.raises(FrameError) as exc:
        parse_frame(raw)
    assert exc.value.reason == reason


def test_length_mismatch() -> None:
    # DataLen 5 but 6 data bytes (CRC recomputed so only the length is wrong)
    from hallctl_drivers.onbon_bx import encode_phy0

    body = bytes.fromhex("01 00 00 80 00 00 00 00 00 00 FE 02 05 00 A2 00 01 00 00 99")
    phy1 = body + crc16_arc(body).to_bytes(2, "little")
    with pytest.raises(FrameError) as exc:
        parse_frame(encode_phy0(phy1))
    assert exc.value.reason == "length"


# -- FrameReader -----------------------------------------------------------------------------


def test_reader_skips_garbage_and_splits_frames() -> None:
    ping, ack = (bytes.fromhex(GOLDEN[k][0]) for k in ("PING", "ACK"))
    stream = b"\x00\xffgarbage\x5a" + ping + b"\x13\x37" + ack + b"\x5a\x5a"
    r = FrameReader()
    out = []
    for i in range(0, len(stream), 3):  # arbitrary chunking
        out += r.feed(stream[i : i + 3])
    assert [type(x) for x in out] == [Frame, Frame]
    assert out[0].command == (0xA2, 0x00) and out[1].is_ack
    assert out[0].raw == ping and out[1].raw == ack


def test_reader_reports_a_cut_frame_and_recovers() -> None:
    ping = bytes.fromhex(GOLDEN["PING"][0])
    out = FrameReader().feed(ping[:15] + ping)
    assert isinstance(out[0], FrameError) and out[0].reason == "truncated"
    assert isinstance(out[1], Frame) and out[1].raw == ping


def test_frame_with_a5_and_5a_in_its_data_survives() -> None:
    data = bytes([0xA5, 0x5A, 0xA6, 0x5B, 0xA5, 0xA5, 0x5A, 0x01, 0x02])
    raw = build_frame(0xA3, 0x06, data, dst=0x5AA5, src=0xA55A)
    assert raw.count(b"\x5a") == 1 and raw[8:].count(b"\xa5") == 0
    (f,) = FrameReader().feed(raw)
    assert isinstance(f, Frame)
    assert f.data == data and f.dst == 0x5AA5 and f.src == 0xA55A
    assert parse_frame(raw) == f


# -- properties ------------------------------------------------------------------------------

frames = st.builds(
    lambda g, c, d, dst, src, dt, resp, res, cm: (
        dict(cmd_group=g, cmd=c, data=d, dst=dst, src=src, device_type=dt, response=resp,
             reserved=res, check_mode=cm)
    ),
    st.integers(0, 255), st.integers(0, 255), st.binary(max_size=200),
    st.integers(0, 0xFFFF), st.integers(0, 0xFFFF), st.integers(0, 255), st.integers(0, 255),
    st.binary(min_size=2, max_size=2), st.sampled_from([0, 1, 2]),
)


@given(frames)
def test_build_parse_round_trip(kw: dict) -> None:
    raw = build_frame(kw["cmd_group"], kw["cmd"], kw["data"], dst=kw["dst"], src=kw["src"],
                      device_type=kw["device_type"], response=kw["response"],
                      reserved=kw["reserved"], check_mode=kw["check_mode"])
    f = parse_frame(raw)
    assert (f.cmd_group, f.cmd, f.data, f.dst, f.src, f.device_type, f.status, f.reserved,
            f.check_mode) == (kw["cmd_group"], kw["cmd"], kw["data"], kw["dst"], kw["src"],
                              kw["device_type"], kw["response"], kw["reserved"], kw["check_mode"])
    assert FrameReader().feed(raw) == [f]


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=600))
def test_garbage_never_raises_anything_but_frame_errors(junk: bytes) -> None:
    r = FrameReader()
    for item in r.feed(junk):  # the reader returns errors, never raises
        assert isinstance(item, (Frame, FrameError))
    try:
        parse_frame(junk)
    except FrameError:
        pass


@given(st.data())
def test_bit_flips_and_truncation_are_caught(data: st.DataObject) -> None:
    raw = bytearray(build_frame(0xA3, 0x06, data.draw(st.binary(max_size=80)), dst=1))
    if data.draw(st.booleans()):
        pos = data.draw(st.integers(8, len(raw) - 2))  # inside the escaped PHY1
        raw[pos] ^= 1 << data.draw(st.integers(0, 7))
    else:
        raw = raw[: data.draw(st.integers(0, len(raw) - 1))]
    # a flip or a cut must never yield a frame (a host accepts only CRC-checked frames, see below)
    out = FrameReader(check_modes=CRC_ONLY).feed(bytes(raw))
    assert all(isinstance(x, FrameError) for x in out)
    with pytest.raises(FrameError):
        parse_frame(bytes(raw), check_modes=CRC_ONLY)


def test_flipped_checkmode_disables_the_check_unless_refused() -> None:
    # Found by hypothesis: CheckMode 00 -> 02 ("no check", §4) is one bit, and the frame passes.
    raw = bytearray(build_frame(0xA2, 0x00, dst=1))
    raw[8 + 8] ^= 0x02  # PHY1 byte 8 = CheckMode
    assert parse_frame(bytes(raw)).check_mode == 2  # legal for a 6K, so a controller accepts it
    with pytest.raises(FrameError, match="CheckMode 2 not accepted"):
        parse_frame(bytes(raw), check_modes=CRC_ONLY)


@given(st.lists(st.binary(max_size=40), max_size=30))
def test_chunking_does_not_matter(chunks: list[bytes]) -> None:
    stream = b"".join(chunks)
    whole = FrameReader().feed(stream)
    r = FrameReader()
    parts = [x for c in chunks for x in r.feed(c)]
    summary = lambda xs: [(type(x).__name__, x.raw, getattr(x, "reason", None)) for x in xs]  # noqa: E731
    assert summary(parts) == summary(whole)
