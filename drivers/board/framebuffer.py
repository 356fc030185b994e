"""The Linux framebuffer (``/dev/fb0``: a Raspberry Pi's HDMI picture) as a board's output.

The geometry comes from sysfs (``/sys/class/graphics/fb0/virtual_size``, ``bits_per_pixel``,
``stride``), else from the device options. Pixels are RGB565 at 16 bpp and XRGB8888 at 32 bpp,
little-endian, as the Pi's firmware and the vc4 DRM fbdev emulation lay them out.

Only what changed is written: each frame is compared with the last one written, and only the
rows of the rectangle that differs go out (``os.pwrite`` per row, or one write when the
rectangle spans whole framebuffer lines). A scrolling notice line therefore costs its own strip,
and a flashing call its row. :meth:`FramebufferOutput.check` reads the picture back and draws
it again when something else wrote over it (a console, a getty, another program).

Every method here blocks (file I/O): the driver calls them in a thread.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

from hallctl.errors import ConfigError, DeviceError, DeviceOffline

if TYPE_CHECKING:
    from PIL import Image as PILImage

Box = tuple[int, int, int, int]  # x0, y0, x1, y1 (exclusive)


@dataclass(frozen=True)
class FbGeometry:
    width: int
    height: int
    bpp: int
    stride: int  # bytes per framebuffer line (may exceed width * bytes per pixel)

    @property
    def bytes_per_pixel(self) -> int:
        return self.bpp // 8

    def describe(self) -> str:
        return f"{self.width}x{self.height} {self.bpp} bpp"


def sysfs_dir_for(path: str) -> Path:
    """``/dev/fb0`` -> ``/sys/class/graphics/fb0``."""
    return Path("/sys/class/graphics") / Path(path).name


def read_geometry(sysfs: Path, overrides: Mapping[str, Any]) -> FbGeometry:
    """The framebuffer's geometry: sysfs where it has the file, the options (``fb_width``,
    ``fb_height``, ``fb_bpp``, ``fb_stride``) otherwise. An option contradicting sysfs is an
    error: the picture would be sheared."""

    def sys_text(name: str) -> str | None:
        try:
            return (sysfs / name).read_text().strip()
        except OSError:
            return None

    found: dict[str, int] = {}
    size = sys_text("virtual_size")
    if size:
        w, _, h = size.partition(",")
        found["fb_width"], found["fb_height"] = int(w), int(h)
    bpp = sys_text("bits_per_pixel")
    if bpp:
        found["fb_bpp"] = int(bpp)
    stride = sys_text("stride")
    if stride:
        found["fb_stride"] = int(stride)
    for key, value in found.items():
        if overrides.get(key) not in (None, value):
            raise ConfigError(f"is {overrides[key]}, but {sysfs} says {value}", key=f"options.{key}")
    merged = {**{k: v for k, v in overrides.items() if v is not None}, **found}
    missing = [k for k in ("fb_width", "fb_height", "fb_bpp") if k not in merged]
    if missing:
        raise ConfigError(f"{sysfs} is not there; set {', '.join(missing)} in the device options",
                          key=f"options.{missing[0]}")
    if merged["fb_bpp"] not in (16, 32):
        raise DeviceError(f"the framebuffer has {merged['fb_bpp']} bits per pixel; "
                          "the board draws 16 (RGB565) or 32 (XRGB8888)")
    stride = merged.get("fb_stride") or merged["fb_width"] * merged["fb_bpp"] // 8
    return FbGeometry(merged["fb_width"], merged["fb_height"], merged["fb_bpp"], stride)


def pack(image: "PILImage.Image", bpp: int) -> bytes:
    """``image`` (RGB) as framebuffer pixels, row after row without padding: XRGB8888 (bytes
    B, G, R, 0) or RGB565 (little-endian: GGGBBBBB RRRRRGGG)."""
    from PIL import Image, ImageChops

    if bpp == 32:
        return image.tobytes("raw", "BGRX")
    r, g, b = image.convert("RGB").split()
    high = ImageChops.add(r.point(lambda v: v & 0xF8), g.point(lambda v: v >> 5))
    low = ImageChops.add(g.point(lambda v: (v << 3) & 0xE0), b.point(lambda v: v >> 3))
    return Image.merge("LA", (low, high)).tobytes()


_TRANSPOSE = {90: "ROTATE_270", 180: "ROTATE_180", 270: "ROTATE_90"}  # PIL turns counter-clockwise


class FramebufferOutput:
    """One board's place on one framebuffer: at (``x``, ``y``), turned ``rotate`` degrees clockwise
    (a TV hung in portrait on a landscape HDMI signal; an LED sending card that shows one window
    of the HDMI picture)."""

    def __init__(self, path: str, *, sysfs: str | None = None, x: int = 0, y: int = 0, rotate: int = 0,
                 overrides: Mapping[str, Any] | None = None) -> None:
        self.path = path
        self.sysfs = Path(sysfs) if sysfs else sysfs_dir_for(path)
        self.x, self.y, self.rotate = x, y, rotate
        self.overrides = dict(overrides or {})
        self.geometry: FbGeometry | None = None
        self._fd: int | None = None
        self._last: "PILImage.Image | None" = None  # what we wrote, turned as on the framebuffer
        #: counters a test or the diagnostics read: bytes and pwrite calls since open, frames
        #: that changed something, and pictures drawn again after someone else wrote over them
        self.bytes_written = 0
        self.writes = 0
        self.frames = 0
        self.repaired = 0

    def describe(self) -> str:
        geo = f" {self.geometry.describe()}" if self.geometry else ""
        return f"framebuffer {self.path}{geo}"

    def open(self, board_size: tuple[int, int]) -> None:
        self.geometry = geo = read_geometry(self.sysfs, self.overrides)
        w, h = board_size if self.rotate in (0, 180) else board_size[::-1]
        if self.x + w > geo.width or self.y + h > geo.height:
            raise ConfigError(f"the board ({w}x{h} at {self.x},{self.y}) does not fit {self.path} ({geo.describe()}); "
                              "set width/height (or fb_x/fb_y, rotate) in the device options", key="options.width")
        try:
            self._fd = os.open(self.path, os.O_RDWR | getattr(os, "O_CLOEXEC", 0))
        except FileNotFoundError:
            raise DeviceOffline(f"{self.path} is not there (no framebuffer: HDMI driver not loaded?)") from None
        except PermissionError:
            raise DeviceOffline(f"{self.path}: permission denied (the node's user must be in the video group)") from None
        self._last = None

    def close(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)

    def turned(self, image: "PILImage.Image") -> "PILImage.Image":
        from PIL import Image

        if not self.rotate:
            return image
        return image.transpose(getattr(Image.Transpose, _TRANSPOSE[self.rotate]))

    def turned_box(self, box: Box, size: tuple[int, int]) -> Box:
        """``box`` of a ``size`` board, on the board as it is turned on the framebuffer."""
        x0, y0, x1, y1 = box
        w, h = size
        if self.rotate == 90:
            return (h - y1, x0, h - y0, x1)
        if self.rotate == 180:
            return (w - x1, h - y1, w - x0, h - y0)
        if self.rotate == 270:
            return (y0, w - x1, y1, w - x0)
        return box

    def write(self, image: "PILImage.Image") -> int:
        """Show ``image`` (the board, upright); only the rows of the rectangle that changed since
        the last frame are written. Returns the bytes written."""
        from PIL import ImageChops

        new = self.turned(image)
        old = self._last
        if old is None or old.size != new.size:
            box: Box | None = (0, 0, *new.size)
        else:
            box = ImageChops.difference(old, new).getbbox()
        self._last = new if self.rotate else new.copy()  # ours: paste() draws into it
        if box is None:
            return 0
        self.frames += 1
        return self._write_box(new, box)

    def paste(self, part: "PILImage.Image", at: tuple[int, int], board_size: tuple[int, int]) -> int:
        """Draw ``part`` of the board (upright, its top left corner at ``at``) over the last frame:
        only its rows are written (a scrolling notice's strip)."""
        if self._last is None:
            return 0
        x, y = at
        box = self.turned_box((x, y, x + part.width, y + part.height), board_size)
        self._last.paste(self.turned(part), box[:2])
        return self._write_box(self._last, box)

    def _write_box(self, image: "PILImage.Image", box: Box) -> int:
        geo, fd = self.geometry, self._fd
        if geo is None or fd is None:
            raise DeviceOffline(f"{self.path} is not open")
        x0, y0, x1, y1 = box
        data = pack(image.crop(box), geo.bpp)
        row = (x1 - x0) * geo.bytes_per_pixel
        start = (self.y + y0) * geo.stride + (self.x + x0) * geo.bytes_per_pixel
        try:
            if row == geo.stride:  # whole framebuffer lines: one write
                written = os.pwrite(fd, data, start)
                self.writes += 1
            else:
                written = 0
                for i in range(y1 - y0):
                    written += os.pwrite(fd, data[i * row:(i + 1) * row], start + i * geo.stride)
                self.writes += y1 - y0
        except OSError as exc:
            raise DeviceError(f"writing {self.path} failed: {exc}") from None
        self.bytes_written += written
        return written

    def check(self) -> str:
        """Read the picture back; draw it again if something else wrote over it, and say so.
        Raises when the framebuffer went away or changed its mode (the driver restarts)."""
        geo, fd, last = self.geometry, self._fd, self._last
        if geo is None or fd is None:
            raise DeviceOffline(f"{self.path} is not open")
        now = read_geometry(self.sysfs, self.overrides)
        if now != geo:
            raise DeviceError(f"{self.path} changed from {geo.describe()} to {now.describe()}")
        if last is None:
            return ""
        w, h = last.size
        want = pack(last, geo.bpp)
        row = w * geo.bytes_per_pixel
        try:
            if row == geo.stride:
                have = os.pread(fd, row * h, self.y * geo.stride)
            else:
                start = self.y * geo.stride + self.x * geo.bytes_per_pixel
                have = b"".join(os.pread(fd, row, start + i * geo.stride) for i in range(h))
        except OSError as exc:
            raise DeviceError(f"reading {self.path} failed: {exc}") from None
        if have == want:
            return ""
        self.repaired += 1
        self._write_box(last, (0, 0, w, h))
        return f"{self.path} had been drawn over by something else; board drawn again"
