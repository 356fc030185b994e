"""A ticket as a layout-neutral document: what to print, not how this model prints it.

A document is a list of blocks, each one of::

    {"text": "请到3号窗口", "size": 1..8, "align": "left|center|right", "bold": false}
    {"qr": "https://...", "module": 1..16, "align": "center"}
    {"feed": 2}          # blank lines
    {"rule": true}       # a horizontal line

The JSON Schema is the ``print`` action's (:data:`hallctl_drivers.kinds.TICKET_PRINTER`); this
module turns checked arguments into typed blocks and refuses what a schema cannot say: a block
that is not exactly one kind, and control characters in text (an ESC inside a citizen's text
would be a printer command).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence, Union

from hallctl.errors import BadRequest

ALIGNS = ("left", "center", "right")
_KINDS = ("text", "qr", "feed", "rule")


@dataclass(frozen=True)
class Text:
    text: str
    size: int = 1
    align: str = "left"
    bold: bool = False

    @property
    def lines(self) -> list[str]:
        return self.text.split("\n")


@dataclass(frozen=True)
class Qr:
    data: str
    module: int | None = None  # dots per module; None: the profile's
    align: str = "center"


@dataclass(frozen=True)
class Feed:
    lines: int


@dataclass(frozen=True)
class Rule:
    pass


Block = Union[Text, Qr, Feed, Rule]


def parse_blocks(raw: Any) -> list[Block]:
    """Typed blocks from the ``blocks`` argument; :class:`BadRequest` naming the block otherwise."""
    if not isinstance(raw, Sequence) or isinstance(raw, (str, bytes)) or not raw:
        raise BadRequest('"blocks" must be a non-empty list of blocks')
    return [_parse_block(i, b) for i, b in enumerate(raw)]


def _parse_block(i: int, b: Any) -> Block:
    where = f"blocks[{i}]"
    if not isinstance(b, Mapping):
        raise BadRequest(f"{where}: a block must be an object")
    kinds = [k for k in _KINDS if k in b]
    if len(kinds) != 1:
        raise BadRequest(f"{where}: a block needs exactly one of text, qr, feed, rule (got {', '.join(kinds) or 'none'})")
    align = b.get("align", "center" if kinds[0] == "qr" else "left")
    if align not in ALIGNS:
        raise BadRequest(f"{where}.align: must be one of {', '.join(ALIGNS)}")
    if kinds[0] == "text":
        text, size, bold = b["text"], b.get("size", 1), b.get("bold", False)
        if not isinstance(text, str) or not text:
            raise BadRequest(f"{where}.text: must be a non-empty string")
        bad = next((c for c in text if (ord(c) < 0x20 and c != "\n") or 0x7F <= ord(c) < 0xA0), None)
        if bad is not None:
            raise BadRequest(f"{where}.text: control character U+{ord(bad):04X} cannot be printed")
        if not _int_in(size, 1, 8):
            raise BadRequest(f"{where}.size: must be an integer 1..8")
        return Text(text, int(size), align, bool(bold))
    if kinds[0] == "qr":
        data, module = b["qr"], b.get("module")
        if not isinstance(data, str) or not data:
            raise BadRequest(f"{where}.qr: must be a non-empty string")
        if module is not None and not _int_in(module, 1, 16):
            raise BadRequest(f"{where}.module: must be an integer 1..16")
        return Qr(data, None if module is None else int(module), align)
    if kinds[0] == "feed":
        if not _int_in(b["feed"], 1, 255):
            raise BadRequest(f"{where}.feed: must be an integer 1..255")
        return Feed(int(b["feed"]))
    if b["rule"] is not True:
        raise BadRequest(f"{where}.rule: must be true")
    return Rule()


def _int_in(v: Any, lo: int, hi: int) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and float(v).is_integer() and lo <= v <= hi
