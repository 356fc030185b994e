"""PNG files of a board: the demo's ``--out`` and a hall's record of what its board showed.

``frames``: one file per frame that changed what the board shows (``frame-000001.png``, ...;
the newest ``keep`` are kept). ``latest``: one ``board.png``, replaced whole on every change
(written beside it and renamed, so a reader never sees half a file). The flashing of a new call
and a scrolling notice are not frames here: a file shows the board as it settles.

Blocking (file I/O): the driver calls it in a thread.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import TYPE_CHECKING

from hallctl.errors import DeviceError

if TYPE_CHECKING:
    from PIL import Image as PILImage

_FRAME = re.compile(r"^frame-(\d{6,})\.png$")
LATEST = "board.png"


class PngOutput:
    def __init__(self, directory: str, mode: str = "latest", keep: int = 1000) -> None:
        self.directory = Path(directory)
        self.mode, self.keep = mode, keep
        self.count = 0
        self.last: Path | None = None

    def describe(self) -> str:
        return f"PNG {self.mode} in {self.directory}"

    def open(self) -> None:
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DeviceError(f"cannot create {self.directory}: {exc}") from None
        # after a restart the numbering goes on: a frame is never overwritten
        numbers = [int(m[1]) for p in self.directory.iterdir() if (m := _FRAME.match(p.name))]
        self.count = max(numbers, default=0)

    def write(self, image: "PILImage.Image") -> Path:
        self.count += 1
        name = f"frame-{self.count:06d}.png" if self.mode == "frames" else LATEST
        path = self.directory / name
        tmp = path.with_name(f".{name}.tmp")
        try:
            image.save(tmp, "PNG", compress_level=3)
            os.replace(tmp, path)
        except OSError as exc:
            raise DeviceError(f"writing {path} failed: {exc}") from None
        self.last = path
        if self.mode == "frames" and self.count > self.keep:
            (self.directory / f"frame-{self.count - self.keep:06d}.png").unlink(missing_ok=True)
        return path

    def writable(self) -> bool:
        return os.access(self.directory, os.W_OK)
