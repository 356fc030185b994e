"""The ESC/POS codec without I/O: vectors from the manuals (shared/reference/protocols.md §2),
the same bytes python-escpos 3.1 produces where it does the same thing, status tables both ways,
the document's refusals, and garbage that can neither crash nor stall the decoder."""

from __future__ import annotations

import os
import time

import pytest
from escpos_samples import SAMPLE, model
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hallctl.errors import BadRequest
from hallctl_drivers.escpos.codec import (
    PrinterModel, encode_ticket, ending, native_problem, qr_commands, raster_commands, size_command,
)
from hallctl_drivers.escpos.decoder import MAX_BODY, Decoder
from hallctl_drivers.escpos.document import Feed, Qr, Rule, Text, parse_blocks
from hallctl_drivers.escpos.emulator import PrinterMachine
from hallctl_drivers.escpos.status import PrinterStatus, StatusReplyError, check_reply, gs_r_paper, gs_r_reply


@pytest.fixture(scope="module")
def dummy(tmp_path_factory):
    """python-escpos 3.1's Dummy printer; its capabilities cache goes to a test folder, not to a
    fresh temporary folder per import (protocols.md §2.2)."""
    os.environ.setdefault("ESCPOS_CAPABILITIES_PICKLE_DIR", str(tmp_path_factory.mktemp("escpos-cache")))
    from escpos.printer import Dummy

    return Dummy


# -- vectors from the manuals --------------------------------------------------------------------


def test_size_alignment_cut_vectors() -> None:
    assert size_command(2) == bytes.fromhex("1d2111")  # §2.4: GS ! 0x11 = double width and height
    assert size_command(1) == bytes.fromhex("1d2100") and size_command(8) == bytes.fromhex("1d2177")
    m = PrinterModel(cutter=True)
    assert ending(m, cut=True) == bytes.fromhex("1d564200")  # GS V 66 0
    assert ending(PrinterModel(cut="full", cut_feed_lines=6), cut=True) == bytes.fromhex("1b6406 1d5600")
    assert ending(PrinterModel(tear_feed_lines=4), cut=False) == bytes.fromhex("1b6404 1b40")


def test_qr_sequence_is_the_documented_one() -> None:
    data = b"https://hall.example.cn/t/Zx8Kq2"
    expected = (bytes.fromhex("1D 28 6B 04 00 31 41 32 00") + bytes.fromhex("1D 28 6B 03 00 31 43 06")
                + bytes.fromhex("1D 28 6B 03 00 31 45 31")
                + bytes.fromhex("1D 28 6B") + bytes([len(data) + 3, 0]) + bytes.fromhex("31 50 30") + data
                + bytes.fromhex("1D 28 6B 03 00 31 51 30"))
    assert qr_commands(data, 6, "M") == expected  # §2.6
    with pytest.raises(BadRequest):
        qr_commands(b"x" * 7090, 6)


def test_chinese_text_is_fs_and_plus_gb18030() -> None:
    job = encode_ticket(parse_blocks([{"text": "请到3号窗口 A012"}]), model("hprt-tp809"), "native", cut=False)
    # §2.4: p.text("请到3号窗口 A012\n") in python-escpos = these bytes, here after ESC @ FS &
    assert job.data.startswith(bytes.fromhex("1b40 1c26") + bytes.fromhex("c7 eb b5 bd 33 ba c5 b4 b0 bf da 20 41 30 31 32 0a"))


def test_our_bytes_equal_python_escpos_where_it_does_the_same(dummy) -> None:
    p = dummy()
    p.text("请到3号窗口 A012\n")
    p.set(custom_size=True, width=2, height=2)
    p.qr("https://hall.example.cn/t/Zx8Kq2", size=6, ec=1, native=True)  # ec 1 = QR_ECLEVEL_M
    p.cut(feed=False)
    ours = ("请到3号窗口 A012\n".encode("gb18030") + size_command(2)
            + qr_commands(b"https://hall.example.cn/t/Zx8Kq2", 6, "M") + bytes.fromhex("1d564200"))
    assert p.output == ours


def test_raster_rows_equal_python_escpos_image(dummy) -> None:
    from hallctl_drivers.escpos.render import qr_image

    img = qr_image(b"A012", 4)
    p = dummy()
    p.image(img, impl="bitImageRaster")
    assert p.output == raster_commands(img, band_rows=960)
    bands = raster_commands(img, band_rows=24)
    width = (img.width + 7) // 8
    assert bands.startswith(bytes.fromhex("1d763000") + width.to_bytes(2, "little") + (24).to_bytes(2, "little"))
    assert bands.count(bytes.fromhex("1d763000")) == -(-img.height // 24)


# -- status tables -------------------------------------------------------------------------------


@pytest.mark.parametrize("raw,problems,warnings", [
    ("12 12 12 12", [], []),
    ("12 12 12 1e", [], ["paper near end"]),
    ("1a 32 12 7e", ["paper out"], []),  # §2.1: a paper-out printer answers 1A 32 .. 7E
    ("1a 16 12 12", ["cover open"], []),
    ("1a 52 1a 12", ["cutter error"], []),
    ("1a 52 32 12", ["unrecoverable error"], []),
    ("1a 52 52 12", ["recoverable error (print head hot or lifted)"], []),
    ("1a 12 12 12", ["printer offline"], []),
])
def test_dle_eot_replies_decode(raw: str, problems: list[str], warnings: list[str]) -> None:
    status = PrinterStatus.decode(bytes.fromhex(raw))
    assert status.problems == problems and status.warnings == warnings
    assert status.ready == (not problems) and status.to_dict()["raw"] == raw


def test_status_encodes_as_it_decodes() -> None:
    for flags in ({}, {"paper_near_end": True}, {"paper_end": True, "online": False},
                  {"cover_open": True, "online": False}, {"cutter_error": True, "online": False}):
        status = PrinterStatus(**flags)
        again = PrinterStatus.decode(status.encode())
        assert again.problems == status.problems and again.paper_near_end == (status.paper_near_end or status.paper_end)
    assert PrinterStatus(paper_end=True, online=False).encode() == bytes.fromhex("1a 32 12 7e")


@pytest.mark.parametrize("b", [0x00, 0xFF, 0x13, 0x92, 0x10, 0x02])
def test_a_byte_outside_the_pattern_is_no_status(b: int) -> None:
    with pytest.raises(StatusReplyError, match=f"0x{b:02x} to DLE EOT 2"):
        check_reply(2, b)


def test_gs_r_reply_is_never_mistaken_for_dle_eot() -> None:
    assert gs_r_paper(0x00) == {"paper_near_end": False, "paper_end": False}
    assert gs_r_paper(0x0F) == {"paper_near_end": True, "paper_end": True}
    assert gs_r_reply(PrinterStatus(paper_near_end=True)) == 0x03
    with pytest.raises(StatusReplyError):
        gs_r_paper(0x12)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=8))
def test_garbage_status_bytes_are_a_clear_error_or_a_status(raw: bytes) -> None:
    try:
        status = PrinterStatus.decode(raw)
    except StatusReplyError as exc:
        assert exc.code == "device_error" and exc.message
    else:
        assert len(raw) == 4 and all(b & 0x93 == 0x12 for b in raw) and status.raw == raw


# -- the document --------------------------------------------------------------------------------


def test_blocks_parse_with_defaults() -> None:
    blocks = parse_blocks([{"text": "A012", "size": 3.0}, {"qr": "x"}, {"feed": 2}, {"rule": True}])
    assert blocks == [Text("A012", 3), Qr("x", None, "center"), Feed(2), Rule()]


@pytest.mark.parametrize("blocks,message", [
    ([], "non-empty list"),
    ([{"text": "A", "qr": "x"}], "exactly one of"),
    ([{"size": 2}], "got none"),
    ([{"text": "A\x1b@"}], "control character U\\+001B"),
    ([{"text": "A", "size": 9}], "size"),
    ([{"qr": "x", "module": 0}], "module"),
    ([{"rule": False}], "must be true"),
    ([{"text": "A", "align": "middle"}], "align"),
])
def test_bad_blocks_are_refused_by_name(blocks: list, message: str) -> None:
    with pytest.raises(BadRequest, match=message):
        parse_blocks(blocks)


def test_characters_the_font_lacks_take_the_raster_path() -> None:
    rare = parse_blocks([{"text": "请王𠀀到3号窗口"}])  # U+20000 needs a 4-byte GB18030 code
    assert "4-byte GB18030" in native_problem(rare, model("hprt-tp809"))
    assert encode_ticket(rare, model("hprt-tp809")).path == "raster"
    assert native_problem(parse_blocks([{"text": "喆 A012"}]), model("hprt-tp809")) is None  # GBK, 2 bytes
    assert native_problem(parse_blocks(SAMPLE), model("snbc-bt-t080")) is None


def test_a_ticket_too_long_to_draw_is_refused() -> None:
    blocks = parse_blocks([{"text": "请" * 500, "size": 8}] * 8)
    with pytest.raises(BadRequest, match="longer than 8000 dots"):
        encode_ticket(blocks, model("hprt-tp809"), "raster")


def test_a_model_without_qr_gets_the_qr_as_an_image() -> None:
    job = encode_ticket(parse_blocks([{"qr": "https://x.cn/t/1"}]), model("zijiang-zj-5870"), "native")
    assert b"\x1d(k" not in job.data and job.data.count(bytes.fromhex("1d763000")) >= 1
    assert not job.cut and job.data.endswith(bytes.fromhex("1b6404 1b40"))


# -- the decoder: total, incremental ----------------------------------------------------------


def test_decoder_splits_a_ticket_into_ops() -> None:
    job = encode_ticket(parse_blocks(SAMPLE), model("hprt-tp809"), "native")
    names = [op.name for op in Decoder().feed(job.data)]
    assert names[:3] == ["init", "chinese", "align"] and names[-2:] == ["feed_lines", "cut"]
    assert names.count("qr") == 5 and "other" not in names and "error" not in names


def test_an_oversized_image_is_skipped_without_being_held() -> None:
    d = Decoder()
    head = bytes.fromhex("1d763000") + (0xFFFF).to_bytes(2, "little") + (0xFFFF).to_bytes(2, "little")
    ops = d.feed(head + b"\x00" * 1000)
    assert [op.name for op in ops] == ["error"] and "too large" in ops[0].arg
    assert d.feed(b"\x00" * 1000) == []  # still inside the skipped body
    assert 0xFFFF * 0xFFFF > MAX_BODY


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=2048), st.lists(st.integers(1, 64), max_size=8))
def test_chunking_does_not_change_what_is_decoded(data: bytes, cuts: list[int]) -> None:
    whole = [(op.name, op.raw) for op in Decoder().feed(data)]
    d, parts, i = Decoder(), [], 0
    for n in cuts:
        parts += [(op.name, op.raw) for op in d.feed(data[i:i + n])]
        i += n
    parts += [(op.name, op.raw) for op in d.feed(data[i:])]
    assert parts == whole


_COMMANDS = st.sampled_from([b"\x1b@", b"\x1c&", b"\x1c.", b"\x1d!\x11", b"\x1ba\x01", b"\n", b"\x10\x04\x01",
                             b"\x10\x05\x02", b"\x1dr\x01", b"\x1dV\x00", b"\x1dVB\x00", b"\x1d(k\x03\x001Q0",
                             b"\x1dv0\x00\x02\x00\x02\x00\xff\x00\x0f\xf0", "请到3号窗口".encode("gb18030")])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(_COMMANDS, st.binary(max_size=64)), max_size=40),
       st.sampled_from([{}, {"paper_out": True}, {"garbage": True}, {"cutter_jam": True}, {"cover_open": True}]))
def test_garbage_to_the_printer_never_crashes_or_stalls_it(pieces: list[bytes], faults: dict) -> None:
    printer = PrinterMachine(dots_per_line=384)
    printer.set(**faults)
    started = time.monotonic()
    for piece in pieces:
        reply = printer.receive(piece)
        assert isinstance(reply, bytes)
    printer.set(paper_out=False, cutter_jam=False, cover_open=False)
    printer.finish()
    for ticket in printer.tickets:
        assert ticket.image.width == 384
    assert time.monotonic() - started < 60  # a stall, not a speed check: the loop must end
