"""Reading a call board back without our code: tesseract OCR (chi_sim + eng) over the text cells
of the picture, found by a recursive XY cut (splitting at empty rows and columns, a classic
layout analysis); decoding framebuffer bytes with numpy; a stand-in framebuffer.

A real ``/dev/fb0`` cannot exist here (no display hardware in CI): the framebuffer tests use a
regular file of the framebuffer's size, and a folder with the files the kernel keeps under
``/sys/class/graphics/fb0`` (``virtual_size``, ``bits_per_pixel``, ``stride``).
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image

#: OCR reads this font's zero as the letter O now and then; a ticket number is a letter and digits
_DIGIT_LOOKALIKES = str.maketrans({"O": "0", "o": "0", "D": "0", "Q": "0", "I": "1", "l": "1", "|": "1"})
#: each text cell is scaled to this height for OCR
LINE_PX = 40
_NUMBER = re.compile(r"^[A-Z][0-9OoDQIl|]{2,4}$")


@dataclass(frozen=True)
class Cell:
    box: tuple[int, int, int, int]  # x0, y0, x1, y1
    text: str

    @property
    def mid_y(self) -> float:
        return (self.box[1] + self.box[3]) / 2


def _runs(profile: np.ndarray, min_gap: int) -> list[tuple[int, int]]:
    idx = np.flatnonzero(profile)
    if idx.size == 0:
        return []
    out = [[int(idx[0]), int(idx[0])]]
    for i in idx[1:]:
        if i - out[-1][1] - 1 < min_gap:
            out[-1][1] = int(i)
        else:
            out.append([int(i), int(i)])
    return [(a, b + 1) for a, b in out]


def _xycut(mask: np.ndarray, x0: int, y0: int, hgap: int, vgap: int, horizontal: bool,
           depth: int = 0) -> list[tuple[int, int, int, int]]:
    parts = _runs(mask.any(axis=1) if horizontal else mask.any(axis=0), hgap if horizontal else vgap)
    if len(parts) <= 1 and depth > 0:
        other = _runs(mask.any(axis=0) if horizontal else mask.any(axis=1), vgap if horizontal else hgap)
        if len(other) <= 1:
            ys, xs = _runs(mask.any(axis=1), 1), _runs(mask.any(axis=0), 1)
            return [(x0 + xs[0][0], y0 + ys[0][0], x0 + xs[-1][1], y0 + ys[-1][1])] if ys else []
        return _xycut(mask, x0, y0, hgap, vgap, not horizontal, depth + 1)
    out: list[tuple[int, int, int, int]] = []
    for a, b in parts:
        if horizontal:
            out += _xycut(mask[a:b, :], x0, y0 + a, hgap, vgap, False, depth + 1)
        else:
            out += _xycut(mask[:, a:b], x0 + a, y0, hgap, vgap, True, depth + 1)
    return out


def read_cells(image: Image.Image, threshold: int = 128) -> list[Cell]:
    """Every text cell of a light-on-dark board with what tesseract reads in it (one line each)."""
    mask = np.asarray(image.convert("L")) > threshold
    s = min(image.size) / 1080
    boxes = [b for b in _xycut(mask, 0, 0, max(3, round(6 * s)), max(8, round(48 * s)), True)
             if b[3] - b[1] >= max(8, 10 * s)]
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for i, (x0, y0, x1, y1) in enumerate(boxes):
            cell = Image.fromarray(np.where(mask[y0:y1, x0:x1], 0, 255).astype(np.uint8))  # dark text on white
            scale = LINE_PX / cell.height  # tesseract reads lines of about this height best
            cell = cell.resize((max(1, round(cell.width * scale)), LINE_PX), Image.LANCZOS)
            page = Image.new("L", (cell.width + 24, cell.height + 24), 255)
            page.paste(cell, (12, 12))
            path = Path(tmp) / f"{i:03d}.png"
            page.save(path)
            paths.append(str(path))
        listing = Path(tmp) / "cells.txt"
        listing.write_text("\n".join(paths) + "\n")
        out = subprocess.run(["tesseract", str(listing), "stdout", "-l", "chi_sim+eng", "--psm", "7"],
                             capture_output=True, text=True, timeout=60, check=True,
                             env={**os.environ, "OMP_THREAD_LIMIT": "1"}).stdout
    pages = out.split("\f")
    return [Cell(box, re.sub(r"\s+", "", text)) for box, text in zip(boxes, pages)]


def ticket_number(text: str) -> str | None:
    """The ticket number a cell reads as, or None."""
    if not _NUMBER.match(text):
        return None
    return text[0] + text[1:].translate(_DIGIT_LOOKALIKES)


def call_rows(cells: Sequence[Cell]) -> list[tuple[str, str]]:
    """(number, the nearest cell to its right on the same line), top to bottom: the board's call
    list as a reader sees it."""
    rows = []
    for cell in sorted(cells, key=lambda c: c.mid_y):
        number = ticket_number(cell.text)
        if number is None:
            continue
        right = [c for c in cells if c.box[0] >= cell.box[2] and c.box[1] <= cell.mid_y <= c.box[3]]
        rows.append((number, min(right, key=lambda c: c.box[0]).text if right else ""))
    return rows


def text_of(cells: Sequence[Cell]) -> str:
    return "\n".join(c.text for c in sorted(cells, key=lambda c: (c.mid_y, c.box[0])))


# -- framebuffer ------------------------------------------------------------------------------------


def fake_framebuffer(tmp: Path, width: int, height: int, bpp: int, stride: int | None = None,
                     fill: int = 0) -> tuple[Path, Path]:
    """A regular file standing in for /dev/fb0 and a folder standing in for its sysfs entry."""
    stride = stride or width * bpp // 8
    fb = tmp / "fb0"
    fb.write_bytes(bytes([fill]) * stride * height)
    sysfs = tmp / "sys-fb0"
    sysfs.mkdir(exist_ok=True)
    (sysfs / "virtual_size").write_text(f"{width},{height}\n")
    (sysfs / "bits_per_pixel").write_text(f"{bpp}\n")
    (sysfs / "stride").write_text(f"{stride}\n")
    return fb, sysfs


def decode_framebuffer(data: bytes, width: int, height: int, bpp: int, stride: int | None = None) -> np.ndarray:
    """The picture in framebuffer bytes as an (height, width, 3) uint8 array: RGB565 expanded to
    8 bits per channel the usual way (v << 3 | v >> 2), XRGB8888 as it is."""
    stride = stride or width * bpp // 8
    rows = np.frombuffer(data, dtype=np.uint8)[: stride * height].reshape(height, stride)
    if bpp == 32:
        px = rows[:, : width * 4].reshape(height, width, 4)
        return px[:, :, [2, 1, 0]].copy()
    v = rows[:, : width * 2].copy().view("<u2").reshape(height, width).astype(np.uint16)
    r, g, b = (v >> 11) & 0x1F, (v >> 5) & 0x3F, v & 0x1F
    return np.stack([(r << 3) | (r >> 2), (g << 2) | (g >> 4), (b << 3) | (b >> 2)], axis=-1).astype(np.uint8)


def as_565(image: Image.Image) -> np.ndarray:
    """What a 16 bpp framebuffer can show of ``image``, expanded back as decode_framebuffer does."""
    a = np.asarray(image.convert("RGB")).astype(np.uint16)
    r, g, b = a[..., 0] >> 3, a[..., 1] >> 2, a[..., 2] >> 3
    return np.stack([(r << 3) | (r >> 2), (g << 2) | (g >> 4), (b << 3) | (b >> 2)], axis=-1).astype(np.uint8)
