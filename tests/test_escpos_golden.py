"""Every shipped printer profile prints the sample ticket with exactly the bytes of its golden
file, native and raster paths both (tests/fixtures/escpos/<profile>-<path>.bin), and those bytes,
fed to the emulator of that model, make a ticket whose text and QR code are right.

The raster files depend on the font file (fonts-wqy-zenhei) and Pillow's FreeType: after
upgrading either, look at the PNGs, then regenerate with ``HALLCTL_UPDATE_GOLDEN=1``. Without
it a missing or different file fails: the golden files are never written silently.
"""

from __future__ import annotations

import os

import pytest
from escpos_samples import FIXTURES, LINK, PROFILES, SAMPLE, model, profile, sample_for, zbar

from hallctl.errors import BadRequest
from hallctl.profiles import load_profiles
from hallctl_drivers.escpos.codec import encode_ticket
from hallctl_drivers.escpos.document import parse_blocks
from hallctl_drivers.escpos.emulator import PrinterMachine

UPDATE = os.environ.get("HALLCTL_UPDATE_GOLDEN") == "1"
CASES = [(pid, path) for pid in PROFILES for path in ("native", "raster")]


def test_the_golden_cases_cover_every_shipped_printer_profile() -> None:
    shipped = sorted(pid for pid, p in load_profiles().profiles.items() if p.kind == "ticket_printer")
    assert shipped == sorted(PROFILES)


@pytest.mark.parametrize("pid,path", CASES, ids=[f"{p}-{q}" for p, q in CASES])
def test_sample_ticket_bytes_match_the_golden_file(pid: str, path: str) -> None:
    job = encode_ticket(parse_blocks(sample_for(pid, path)), model(pid), path)
    assert job.path == path
    golden = FIXTURES / f"{pid}-{path}.bin"
    if UPDATE:
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_bytes(job.data)
    assert golden.exists(), f"{golden} is missing; generate it with HALLCTL_UPDATE_GOLDEN=1"
    expected = golden.read_bytes()
    if job.data != expected:
        at = next((i for i, (a, b) in enumerate(zip(job.data, expected)) if a != b), min(len(job.data), len(expected)))
        pytest.fail(f"{pid} {path}: {len(job.data)} bytes vs golden {len(expected)}, first difference at byte {at}: "
                    f"{job.data[at:at + 8].hex(' ')} vs {expected[at:at + 8].hex(' ')}")


@pytest.mark.parametrize("pid,path", CASES, ids=[f"{p}-{q}" for p, q in CASES])
def test_golden_bytes_print_the_right_ticket_on_the_emulated_model(pid: str, path: str, tmp_path) -> None:
    raw = (FIXTURES / f"{pid}-{path}.bin").read_bytes()
    printer = PrinterMachine.for_profile(profile(pid))
    printer.receive(raw)
    (ticket,) = printer.tickets
    assert ticket.raw == raw and ticket.errors == []
    assert ticket.cut == profile(pid).supports("cutter")
    if path == "native":
        text = ticket.text
        assert "A012" in text and ("请到3号窗口办理" in text or "window 3" in text)
        assert ("-" * model(pid).columns) in ticket.lines
        assert ticket.rasters == (0 if profile(pid).supports("qr_native") else 1)
    else:
        assert ticket.lines == [] and ticket.rasters >= 2  # all pixels, in bands
    png, _ = ticket.save(tmp_path)
    assert zbar(png) == [LINK]


def test_a_printer_without_a_chinese_font_takes_chinese_as_raster_only() -> None:
    blocks = parse_blocks(SAMPLE)
    with pytest.raises(BadRequest, match="'北' .* no Chinese font"):
        encode_ticket(blocks, model("epson-tm-t88v"), "native")
    assert encode_ticket(blocks, model("epson-tm-t88v"), "auto").path == "raster"
    assert encode_ticket(blocks, model("hprt-tp809"), "auto").path == "native"
