"""EscPosPrinter against the emulated printer over a real pty and over TCP: a ticket is confirmed
only when it printed, every fault ends in a clear error or health, and no call waits past its
timeouts. Byte-level cases on the in-memory fake transport are at the end."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any, AsyncIterator, Iterator

import pytest
from escpos_samples import FIXTURES, LINK, SAMPLE, profile, zbar

from hallctl.errors import BadRequest, ConfigError, DeviceError, DeviceOffline, DeviceTimeout, UnknownCommand
from hallctl_drivers import Health, driver_class
from hallctl_drivers.escpos import EscPosPrinter
from hallctl_drivers.escpos.emulator import PtyPrinter, TcpPrinter
from hallctl_drivers.escpos.status import StatusReplyError
from hallctl_drivers.transports.fake import FakeTransport

#: short waits: these tests make printers fall silent on purpose
FAST = {"status_timeout_s": 0.5, "print_timeout_s": 1.0}
STATUS_QUERIES = [bytes([0x10, 0x04, n]) for n in (1, 2, 3, 4)]


def make(pid: str, options: dict[str, Any], transport: Any = None) -> EscPosPrinter:
    p = profile(pid)
    printer = EscPosPrinter(p.settings, {**FAST, **options}, features=p.features, transport=transport)
    printer.events = []  # type: ignore[attr-defined]
    printer.on_event = lambda type_, data: printer.events.append((type_, data))  # type: ignore[attr-defined]
    return printer


@pytest.fixture
def emu() -> Iterator[PtyPrinter]:
    with PtyPrinter.for_profile(profile("hprt-tp809")) as e:
        yield e
        assert not e.errors, e.errors


@pytest.fixture
async def printer(emu: PtyPrinter) -> AsyncIterator[EscPosPrinter]:
    p = make("hprt-tp809", {"port": emu.port})
    await p.start()
    yield p
    await p.stop()


# -- the happy path --------------------------------------------------------------------------------


async def test_a_ticket_prints_over_serial_and_reads_back(emu: PtyPrinter, printer: EscPosPrinter, tmp_path) -> None:
    result = await printer.execute("print", {"blocks": SAMPLE})
    golden = (FIXTURES / "hprt-tp809-native.bin").read_bytes()
    assert result["confirmed"] is True and result["path"] == "native" and result["cut"] is True
    assert result["bytes"] == len(golden) and result["status"]["raw"] == "12 12 12 12"
    (ticket,) = emu.tickets
    assert ticket.raw == golden and ticket.cut and ticket.qr == [LINK]
    assert "请到3号窗口办理" in ticket.lines and "A012" in ticket.lines
    assert zbar(ticket.save(tmp_path)[0]) == [LINK]
    # start's DLE EOT 1, then the status before and after the ticket
    assert emu.printer.status_queries == [1, 1, 2, 3, 4, 1, 2, 3, 4]
    assert (await printer.probe()).health is Health.OK


@pytest.mark.parametrize("pid,path", [("zijiang-zj-5870", "native"), ("epson-tm-t88v", "raster")])
async def test_a_ticket_prints_over_tcp_9100(pid: str, path: str, tmp_path) -> None:
    with TcpPrinter.for_profile(profile(pid)) as emu:
        p = make(pid, {"host": emu.host, "tcp_port": emu.port})
        async with p:
            result = await p.execute("print", {"blocks": SAMPLE})
        assert result["confirmed"] and result["path"] == path and result["cut"] is profile(pid).supports("cutter")
        (ticket,) = emu.tickets
        assert ticket.raw == (FIXTURES / f"{pid}-{path}.bin").read_bytes()
        assert ticket.ended == ("cut" if result["cut"] else "init")
        assert zbar(ticket.save(tmp_path)[0]) == [LINK]
        assert not emu.errors


async def test_raster_path_on_a_chinese_printer_when_asked(emu: PtyPrinter, printer: EscPosPrinter, tmp_path) -> None:
    result = await printer.execute("print", {"blocks": SAMPLE, "path": "raster"})
    assert result["path"] == "raster" and emu.tickets[-1].raw == (FIXTURES / "hprt-tp809-raster.bin").read_bytes()
    assert zbar(emu.tickets[-1].save(tmp_path)[0]) == [LINK]


async def test_test_ticket_shows_the_model_status_and_a_qr(emu: PtyPrinter, printer: EscPosPrinter, tmp_path) -> None:
    result = await printer.execute("test_ticket", {"qr": "hallctl test"})
    assert result["confirmed"]
    text = emu.tickets[-1].text
    assert "model: HPRT TP809" in text and "status: 12 12 12 12" in text and "paper_end: no" in text
    assert "中文：请A012号到3号窗口办理" in text
    assert zbar(emu.tickets[-1].save(tmp_path)[0]) == ["hallctl test"]


async def test_status_action_and_events(emu: PtyPrinter, printer: EscPosPrinter) -> None:
    assert (await printer.execute("status", {}))["online"] is True
    emu.set(paper_near_end=True)
    status = await printer.execute("status", {})
    assert status["paper_near_end"] is True and status["raw"] == "12 12 12 1e"
    assert [e[1]["reason"] for e in printer.events] == ["ready", "paper near end"]  # type: ignore[attr-defined]
    assert printer.events[-1][1]["health"] == "degraded"  # type: ignore[attr-defined]


# -- faults ----------------------------------------------------------------------------------------


async def test_paper_out_refuses_the_print_and_sends_nothing(emu: PtyPrinter, printer: EscPosPrinter) -> None:
    emu.set(paper_out=True)
    probe = await printer.probe()
    assert probe.health is Health.FAULT and probe.reason == "paper out"
    before = bytes(emu.printer.received)
    with pytest.raises(DeviceError, match="printer not ready: paper out; nothing was sent") as info:
        await printer.execute("print", {"blocks": SAMPLE})
    assert info.value.detail["stage"] == "before" and info.value.detail["sent"] == 0
    assert bytes(emu.printer.received)[len(before):] == b"".join(STATUS_QUERIES), "only the status queries went out"
    assert emu.tickets == []
    emu.set(paper_out=False)  # paper loaded: the next ticket prints
    assert (await printer.execute("print", {"blocks": SAMPLE}))["confirmed"]
    assert len(emu.tickets) == 1 and emu.tickets[0].cut


async def test_paper_running_out_mid_job_is_never_confirmed(emu: PtyPrinter, printer: EscPosPrinter) -> None:
    emu.set(paper_out_after_bytes=120)
    with pytest.raises(DeviceError, match="ticket not confirmed: paper out while printing") as info:
        await printer.execute("print", {"blocks": SAMPLE})
    assert info.value.detail["stage"] == "printing" and info.value.detail["status"]["paper_end"] is True
    assert emu.tickets == [], "no cut happened"
    assert (await printer.probe()).reason == "paper out"


async def test_unplugged_mid_job_is_offline_and_never_confirmed(emu: PtyPrinter, printer: EscPosPrinter) -> None:
    emu.set(unplug_after_bytes=12 + 200)  # the four status queries, then part of the ticket
    with pytest.raises((DeviceOffline, DeviceTimeout)) as info:
        await printer.execute("print", {"blocks": SAMPLE})
    assert info.value.detail["stage"] in ("sending", "printing") and "ticket not confirmed" in info.value.message
    assert not any(t.cut for t in emu.tickets)
    assert (await printer.probe()).health is Health.FAULT
    emu.replug()
    await printer.stop()
    await printer.start()  # what the node's supervisor does: a fresh start once the port is back
    assert (await printer.execute("print", {"blocks": SAMPLE}))["confirmed"]


async def test_unplugged_tcp_printer_mid_job() -> None:
    with TcpPrinter.for_profile(profile("epson-tm-t88v")) as emu:
        p = make("epson-tm-t88v", {"host": emu.host, "tcp_port": emu.port})
        async with p:
            emu.set(unplug_after_bytes=12 + 5000)
            with pytest.raises((DeviceOffline, DeviceTimeout)) as info:
                await p.execute("print", {"blocks": SAMPLE})
            assert info.value.detail["stage"] in ("sending", "printing")
            assert not any(t.cut for t in emu.tickets)
            emu.replug()
            assert (await p.execute("print", {"blocks": SAMPLE}))["confirmed"], "the transport reconnects"


@pytest.mark.parametrize("fault,reason", [
    ({"garbage": True}, "garbled status reply to DLE EOT 1: 3 bytes (a5 5a ff)"),
    ({"silent": True}, "no status reply within 0.5 s (DLE EOT 1)"),
    ({"cover_open": True}, "cover open"),
    ({"offline": True}, "printer offline"),
    ({"head_hot": True}, "recoverable error (print head hot or lifted)"),
])
async def test_faults_are_a_fault_with_a_clear_reason(emu: PtyPrinter, printer: EscPosPrinter, fault: dict, reason: str) -> None:
    emu.set(**fault)
    probe = await printer.probe()
    assert probe.health is Health.FAULT and probe.reason == reason
    with pytest.raises((DeviceError, DeviceTimeout), match="printer not ready") as info:
        await printer.execute("print", {"blocks": SAMPLE})
    assert info.value.detail == {**info.value.detail, "stage": "before", "sent": 0}
    assert emu.tickets == []


async def test_silence_is_never_paper_ok(emu: PtyPrinter, printer: EscPosPrinter) -> None:
    emu.set(silent=True)
    with pytest.raises(DeviceTimeout, match="no status reply"):
        await printer.execute("status", {})
    emu.set(silent=False, garbage=True)
    with pytest.raises(StatusReplyError, match="garbled"):
        await printer.execute("status", {})
    assert printer.events[-1][1]["status"] is None  # type: ignore[attr-defined]


async def test_a_silent_printer_does_not_start(emu: PtyPrinter) -> None:
    emu.set(silent=True)
    p = make("hprt-tp809", {"port": emu.port})
    with pytest.raises(DeviceTimeout, match="no status reply within 0.5 s"):
        await p.start()


async def test_near_end_is_degraded_but_prints(emu: PtyPrinter, printer: EscPosPrinter) -> None:
    emu.set(paper_near_end=True)
    probe = await printer.probe()
    assert probe.health is Health.DEGRADED and probe.reason == "paper near end"
    result = await printer.execute("print", {"blocks": SAMPLE})
    assert result["confirmed"] and result["warnings"] == ["paper near end"] and emu.tickets[-1].cut


async def test_cutter_jam_fails_the_ticket_and_recovers(emu: PtyPrinter, printer: EscPosPrinter) -> None:
    emu.set(cutter_jam=True)
    with pytest.raises(DeviceError, match="ticket not confirmed: cutter error while printing"):
        await printer.execute("print", {"blocks": SAMPLE})
    assert emu.tickets == [] and emu.printer.cutter_error
    probe = await printer.probe()  # still jammed: recovery is tried and does not help
    assert probe.health is Health.FAULT and probe.reason == "cutter error"
    emu.set(cutter_jam=False)  # a technician cleared it; DLE ENQ 2 drops the voided ticket's rest
    probe = await printer.probe()
    assert probe.health is Health.OK and probe.detail["recovered"] is True
    assert emu.tickets == [], "the voided ticket was not finished after the jam"
    assert (await printer.execute("print", {"blocks": SAMPLE}))["confirmed"]
    emu.set(cutter_jam=True)
    with pytest.raises(DeviceError):
        await printer.execute("print", {"blocks": SAMPLE})
    emu.set(cutter_jam=False)
    assert (await printer.execute("recover", {}))["ready"] is True


async def test_bad_requests_send_nothing(emu: PtyPrinter, printer: EscPosPrinter) -> None:
    before = bytes(emu.printer.received)
    with pytest.raises(BadRequest, match="blocks\\[0\\].text: control character"):
        await printer.execute("print", {"blocks": [{"text": "A\x1bi"}]})
    with pytest.raises(UnknownCommand):
        await printer.execute("eject", {})
    with pytest.raises(BadRequest, match="cannot print natively"):
        await printer.execute("print", {"blocks": [{"text": "𠀀"}], "path": "native"})
    assert bytes(emu.printer.received) == before


# -- configuration ---------------------------------------------------------------------------------


def test_options_name_exactly_one_link_and_a_font_that_exists() -> None:
    p = profile("hprt-tp809")
    with pytest.raises(ConfigError, match="exactly one of port"):
        EscPosPrinter(p.settings, {}, features=p.features)
    with pytest.raises(ConfigError, match="not port and host"):
        EscPosPrinter(p.settings, {"port": "/dev/ttyUSB0", "host": "printer"}, features=p.features)
    with pytest.raises(ConfigError, match="/nonexistent.ttf not found") as info:
        EscPosPrinter(p.settings, {"host": "printer", "font_path": "/nonexistent.ttf"}, features=p.features)
    assert info.value.key == "options.font_path"
    usb = EscPosPrinter(p.settings, {"usb": "0416:5011"}, features=p.features)
    assert usb.link == "usb:0416:5011" and driver_class("escpos") is EscPosPrinter


def test_the_driver_imports_no_emulator_and_no_imaging_library() -> None:
    code = ("import json, sys\nfrom hallctl_drivers import driver_class\ndriver_class('escpos')\n"
            "print(json.dumps(sorted(sys.modules)))\n")
    loaded = json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
    assert "hallctl_drivers.escpos.printer" in loaded
    assert [m for m in loaded if "emulator" in m or m.startswith(("PIL", "qrcode", "escpos.printer", "escpos.capabilities"))] == []


# -- on the fake wire: exact bytes -----------------------------------------------------------------


def _answers(stray: bytes = b"", gs_r: bytes = b"\x00") -> Any:
    def respond(data: bytes) -> bytes | None:
        if data[:2] == b"\x10\x04":
            return b"\x12"
        if data == b"\x1dr\x01":
            return gs_r
        return stray or None  # a job chunk: a printer may answer DLE EOT found in image data

    return respond


async def test_the_wire_carries_status_job_gs_r_status() -> None:
    fake = FakeTransport(responder=_answers())
    p = make("zijiang-zj-5870", {}, transport=fake)
    async with p:
        result = await p.execute("print", {"blocks": SAMPLE})
    job = (FIXTURES / "zijiang-zj-5870-native.bin").read_bytes()
    chunks = [job[i:i + 4096] for i in range(0, len(job), 4096)]
    assert fake.written == [STATUS_QUERIES[0], *STATUS_QUERIES, *chunks, b"\x1dr\x01", *STATUS_QUERIES]
    assert result["bytes"] == len(job)


async def test_stray_status_bytes_from_image_data_do_not_spoil_the_confirmation() -> None:
    p = make("epson-tm-t88v", {}, transport=FakeTransport(responder=_answers(stray=b"\x12\x12")))
    async with p:
        assert (await p.execute("print", {"blocks": SAMPLE}))["confirmed"]


async def test_a_garbled_gs_r_reply_is_not_a_confirmation() -> None:
    p = make("epson-tm-t88v", {}, transport=FakeTransport(responder=_answers(gs_r=b"\xff")))
    async with p:
        with pytest.raises(StatusReplyError, match="garbled reply to GS r 1: 0xff") as info:
            await p.execute("print", {"blocks": SAMPLE})
    assert info.value.detail["stage"] == "printing"


async def test_a_model_that_cannot_answer_gs_r_is_confirmed_by_status_alone() -> None:
    p_ = profile("zijiang-zj-5870")
    fake = FakeTransport(responder=_answers(gs_r=b""))
    p = EscPosPrinter({**p_.settings, "confirm_with_gs_r": False}, FAST, features=p_.features, transport=fake)
    async with p:
        assert (await p.execute("print", {"blocks": SAMPLE}))["confirmed"]
    assert b"\x1dr\x01" not in fake.written


def test_a_ticket_on_a_slow_serial_line_is_allowed_its_wire_time() -> None:
    """A raster ticket is ~43 KB: 44 s at 9600 baud, far past the node's 10 s command timeout,
    which voided every such ticket. The printer says how long a print may take on its line (the
    driver bounds each write itself); on TCP or USB, and for anything but a print, the node's own
    timeout stands."""
    serial = make("epson-tm-t88v", {"port": "/dev/ttyUSB0", "baudrate": 9600})
    allowed = serial.time_allowed("print", {"blocks": []})
    assert allowed is not None and allowed > 512 // 8 * 8000 * 10 / 9600
    fast = make("epson-tm-t88v", {"port": "/dev/ttyUSB0", "baudrate": 115200})
    assert fast.time_allowed("print", {}) < allowed
    assert serial.time_allowed("status", {}) is None
    assert make("epson-tm-t88v", {"host": "printer"}).time_allowed("print", {}) is None
