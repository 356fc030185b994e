"""The emulated printer answers as the manuals say (shared/reference/protocols.md §2.1, §2.10):
DLE EOT at once and anywhere, GS r only in buffer order and never while out of paper, DLE ENQ
recovery; it prints what a model of its kind would (garbage for Chinese without a Chinese font),
and a job sent by a plain socket client ends when the connection does."""

from __future__ import annotations

import socket

import serial
from escpos_samples import LINK, zbar

from hallctl_drivers.escpos.codec import qr_commands
from hallctl_drivers.escpos.emulator import PrinterMachine, PtyPrinter, TcpPrinter

GS_R = b"\x1dr\x01"


def test_dle_eot_is_answered_at_once_even_inside_image_data() -> None:
    printer = PrinterMachine(dots_per_line=64)
    band = bytes.fromhex("1d763000") + (2).to_bytes(2, "little") + (2).to_bytes(2, "little")
    # the image's second row happens to hold 10 04 01: the printer acts on it (HPRT TP809 p.30)
    assert printer.receive(band + b"\x00\x10\x04\x01") == b"\x12"
    assert printer.receive(b"\x10") == b"" and printer.receive(b"\x04\x04") == b"\x12", "split between reads"
    assert printer.status_queries == [1, 4]


def test_gs_r_waits_for_the_paper() -> None:
    printer = PrinterMachine()
    assert printer.receive(b"\x1b@A012\n" + GS_R) == b"\x00"
    printer.set(paper_out=True)
    assert printer.receive(b"A013\n" + GS_R) == b"", "no GS r reply while stopped for paper end"
    assert printer.receive(b"\x10\x04\x04") == b"\x7e", "DLE EOT still answers"
    assert printer.set(paper_out=False) == b"\x00", "answered once the paper is back"
    printer.finish()
    assert printer.tickets[-1].lines == ["A012", "A013"]


def test_dle_enq_2_drops_what_waited_after_a_cutter_jam() -> None:
    printer = PrinterMachine()
    printer.set(cutter_jam=True)
    assert printer.receive(b"\x1b@A012\n\x1dV\x01A013\n" + GS_R) == b""
    assert printer.receive(b"\x10\x04\x03") == b"\x1a" and printer.tickets == []
    printer.receive(b"\x10\x05\x02")
    assert printer.receive(b"\x10\x04\x03") == b"\x1a", "the blade is still blocked"
    printer.set(cutter_jam=False)
    printer.receive(b"\x10\x05\x02")
    assert printer.receive(b"\x10\x04\x03") == b"\x12"
    printer.finish()
    assert [t.lines for t in printer.tickets] == [["A012"]], "A013 and its GS r were dropped"


def test_chinese_without_fs_and_or_without_a_chinese_font_is_garbage() -> None:
    text = "请到3号窗口".encode("gb18030") + b"\n"
    epson = PrinterMachine(chinese=False)
    epson.receive(b"\x1b@\x1c&" + text + b"\x1dV\x00")
    chinese = PrinterMachine(chinese=True)
    chinese.receive(b"\x1b@" + text + b"\x1dV\x00")  # FS & forgotten
    chinese.receive(b"\x1b@\x1c&" + text + b"\x1dV\x00")
    assert "请到" not in epson.tickets[0].text and "请到" not in chinese.tickets[0].text
    assert chinese.tickets[1].text == "请到3号窗口"


def test_a_model_without_gs_k_prints_no_qr() -> None:
    printer = PrinterMachine(qr_native=False, cutter=False)
    printer.receive(b"\x1b@" + qr_commands(LINK.encode(), 6) + b"X\n\x1b@")
    (ticket,) = printer.tickets
    assert ticket.qr == [] and "no QR command" in ticket.errors[0] and ticket.ended == "init"


def test_a_plain_socket_job_ends_with_its_connection(tmp_path) -> None:
    with TcpPrinter(out_dir=tmp_path) as emu:
        with socket.create_connection((emu.host, emu.port)) as s:
            s.sendall(b"\x1b@\x1c&" + "取号 A012\n".encode("gb18030") + qr_commands(LINK.encode(), 6) + b"no LF at the end")
            s.sendall(b"\x10\x04\x01")
            assert s.recv(1) == b"\x12"
        assert emu.wait_for(lambda: len(emu.tickets) == 1)
        (ticket,) = emu.tickets
        assert ticket.ended == "job end" and ticket.lines == ["取号 A012", "no LF at the end"]
        assert (tmp_path / "ticket-0001.bin").read_bytes() == ticket.raw
        assert zbar(tmp_path / "ticket-0001.png") == [LINK]


def test_pty_printer_answers_pyserial_and_unplugs() -> None:
    with PtyPrinter(dots_per_line=384) as emu:
        with serial.Serial(emu.port, 9600, timeout=1) as port:
            port.write(b"\x10\x04\x02")
            assert port.read(1) == b"\x12"
            emu.set(cover_open=True)
            port.write(b"\x10\x04\x02")
            assert port.read(1) == b"\x16"
        emu.unplug()
        assert emu.unplugged
        emu.replug()
        with serial.Serial(emu.port, 9600, timeout=1) as port:
            port.write(b"\x10\x04\x01")
            assert port.read(1) == b"\x1a"
        assert not emu.errors
