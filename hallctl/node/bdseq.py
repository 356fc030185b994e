"""The node's birth/death sequence number, kept across restarts.

Sparkplug's rule: the will and the birth of one connection carry the same bd_seq, and it grows
with every connection, so anyone can tell a late will of an old connection from the death of the
current one. It is kept in a small file next to the node's store, written atomically.
"""

from __future__ import annotations

import os
from pathlib import Path


class BdSeq:
    """The file is read on first use, not when this is made (constructors do no I/O)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._value: int | None = None

    @property
    def value(self) -> int:
        if self._value is None:
            try:
                self._value = int(self.path.read_text().strip() or 0)
            except (FileNotFoundError, ValueError):
                self._value = 0
        return self._value

    def next(self) -> int:
        self._value = self.value + 1
        tmp = self.path.with_suffix(self.path.suffix + ".tmp")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "w") as fh:
            fh.write(str(self._value))
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.path)
        return self._value
