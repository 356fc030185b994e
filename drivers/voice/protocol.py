"""The speech worker's protocol (:mod:`hallctl_drivers.voice.worker`), both sides: JSON lines,
one request and one answer at a time. Kept apart from the worker so that importing the driver
never imports the worker's module (``python -m`` runs it afresh)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any

#: longest request line the worker reads (a sentence is well under 1 KiB)
MAX_LINE = 16384
MAX_TEXT = 2000


@dataclass(frozen=True)
class Request:
    id: int
    text: str | None = None
    path: str | None = None

    @property
    def ping(self) -> bool:
        return self.text is None


class RequestError(ValueError):
    def __init__(self, message: str, request_id: int | None = None) -> None:
        super().__init__(message)
        self.request_id = request_id


def parse_request(line: bytes) -> Request:
    """One request line; :class:`RequestError` (with the id when one could be read) otherwise."""
    if len(line) > MAX_LINE:
        raise RequestError(f"request longer than {MAX_LINE} bytes")
    try:
        doc = json.loads(line.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise RequestError("not a JSON line") from None
    if not isinstance(doc, dict):
        raise RequestError("not a JSON object")
    rid = doc.get("id")
    if not isinstance(rid, int) or isinstance(rid, bool) or not 0 <= rid < 2**53:
        raise RequestError("id must be a non-negative integer")
    if doc.get("ping") is True and set(doc) == {"id", "ping"}:
        return Request(rid)
    text, path = doc.get("text"), doc.get("path")
    if set(doc) != {"id", "text", "path"}:
        raise RequestError("a request has id and either ping or text and path", rid)
    if not isinstance(text, str) or not text.strip() or len(text) > MAX_TEXT:
        raise RequestError(f"text must be a non-empty string of at most {MAX_TEXT} characters", rid)
    if not isinstance(path, str) or not os.path.isabs(path) or "\x00" in path:
        raise RequestError("path must be an absolute file path", rid)
    return Request(rid, text, path)


def parse_answer(line: bytes) -> dict[str, Any]:
    """One line the worker wrote: a JSON object, else ValueError saying what it was."""
    try:
        doc = json.loads(line.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        doc = None
    if not isinstance(doc, dict):
        raise ValueError(f"the speech worker wrote {line[:60]!r}, not a JSON object")
    return doc
