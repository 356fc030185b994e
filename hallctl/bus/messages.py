"""Message schemas of topic contract v1: every payload hallctl puts on the bus is built here.

All payloads are JSON objects, UTF-8, with ``"v": 1``. Requests carry a ``request_id`` that makes
them idempotent; every request gets exactly one kind of answer (the same answer again for a
duplicate). The shapes are documented in ``docs/topics.md``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Mapping

from hallctl.errors import BadRequest, HallctlError

VERSION = 1
REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
MAX_PAYLOAD = 64 * 1024
#: deepest nesting of objects and arrays a payload may have (a node's birth, the deepest of
#: hallctl's own, goes 9 deep)
MAX_DEPTH = 32

NODE_STATES = ("ready", "lost", "offline")
CENTRAL_STATES = ("online", "offline")


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def encode(doc: Mapping[str, Any]) -> bytes:
    """JSON, UTF-8, Chinese left readable (no \\u escapes), compact."""
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def decode_object(payload: bytes | bytearray | str | None) -> dict[str, Any]:
    """Decode a JSON object or raise :class:`BadRequest` saying what is wrong."""
    if payload is None or len(payload) == 0:
        raise BadRequest("empty payload")
    if len(payload) > MAX_PAYLOAD:
        raise BadRequest(f"payload of {len(payload)} bytes exceeds {MAX_PAYLOAD}")
    try:
        text = payload.decode("utf-8") if isinstance(payload, (bytes, bytearray)) else payload
        doc = json.loads(text)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadRequest(f"payload is not UTF-8 JSON: {exc}") from None
    except RecursionError:  # thousands of nested brackets: Python's parser gives up
        raise BadRequest(f"payload nests deeper than {MAX_DEPTH} levels") from None
    if not isinstance(doc, dict):
        raise BadRequest(f"payload must be a JSON object, not {type(doc).__name__}")
    if _depth(doc) > MAX_DEPTH:  # every later step (checks, masking) may then recurse safely
        raise BadRequest(f"payload nests deeper than {MAX_DEPTH} levels")
    return doc


def _depth(doc: Any) -> int:
    """How deep lists and objects nest in ``doc`` (iterative: no recursion on hostile input)."""
    deepest, stack = 0, [(doc, 1)]
    while stack:
        value, level = stack.pop()
        if isinstance(value, (dict, list)):
            deepest = max(deepest, level)
            if level > MAX_DEPTH:
                return level
            stack.extend((v, level + 1) for v in (value.values() if isinstance(value, dict) else value))
    return deepest


@dataclass(frozen=True)
class Request:
    request_id: str
    data: dict[str, Any]
    expires_at: datetime | None = None

    def expired(self, now: datetime | None = None) -> bool:
        return self.expires_at is not None and (now or datetime.now(timezone.utc)) > self.expires_at


def request_id_of(payload: bytes | None) -> str | None:
    """Best-effort request_id from a payload that may be malformed, for the error response."""
    try:
        rid = decode_object(payload).get("request_id")
    except BadRequest:
        return None
    return rid if isinstance(rid, str) and REQUEST_ID_RE.match(rid) else None


def parse_request(payload: bytes | None) -> Request:
    """``{"v":1, "request_id":"...", "data":{...}}`` -> :class:`Request`, or BadRequest."""
    doc = decode_object(payload)
    if doc.get("v") != VERSION:
        raise BadRequest(f"unsupported version v={doc.get('v')!r}; this is v{VERSION}")
    rid = doc.get("request_id")
    if not isinstance(rid, str) or not REQUEST_ID_RE.match(rid):
        raise BadRequest("request_id must be 1-64 characters of [A-Za-z0-9._:-]")
    data = doc.get("data", {})
    if not isinstance(data, dict):
        raise BadRequest("data must be a JSON object")
    unknown = set(doc) - {"v", "request_id", "data", "expires_at"}
    if unknown:
        raise BadRequest(f"unknown envelope field(s): {', '.join(sorted(unknown))}")
    expires_at = None
    if "expires_at" in doc:
        try:
            expires_at = datetime.fromisoformat(str(doc["expires_at"]).replace("Z", "+00:00"))
        except ValueError:
            raise BadRequest("expires_at must be an ISO 8601 time with an offset") from None
        if expires_at.tzinfo is None:
            raise BadRequest("expires_at must be an ISO 8601 time with an offset")
    return Request(rid, data, expires_at)


def request(request_id: str, data: Mapping[str, Any] | None = None, *, expires_at: datetime | None = None) -> dict[str, Any]:
    doc: dict[str, Any] = {"v": VERSION, "request_id": request_id, "data": dict(data or {})}
    if expires_at is not None:
        doc["expires_at"] = expires_at.astimezone(timezone.utc).isoformat(timespec="milliseconds")
    return doc


def response_ok(request_id: str | None, data: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """``ts``: when the answer was made (a stored answer replayed keeps its first time)."""
    return {"v": VERSION, "request_id": request_id, "status": "ok", "data": dict(data or {}), "ts": now_iso()}


def response_error(request_id: str | None, error: HallctlError) -> dict[str, Any]:
    return {"v": VERSION, "request_id": request_id, "status": "error", "error": error.to_dict(), "ts": now_iso()}


def node_status(state: str, bd_seq: int) -> dict[str, Any]:
    assert state in NODE_STATES
    return {"v": VERSION, "state": state, "bd_seq": bd_seq, "ts": now_iso()}


def central_status(state: str, instance: str, reload: Mapping[str, Any] | None = None,
                   unanswerable: int | None = None) -> dict[str, Any]:
    """``reload``: the outcome of the last config reload, when there was one; ``unanswerable``: how
    many requests this instance could not answer (no valid reply topic), on the online status."""
    assert state in CENTRAL_STATES
    doc: dict[str, Any] = {"v": VERSION, "state": state, "instance": instance, "ts": now_iso()}
    if reload is not None:
        doc["reload"] = dict(reload)
    if unanswerable is not None:
        doc["unanswerable"] = unanswerable
    return doc


def node_birth(
    node: str,
    bd_seq: int,
    version: str,
    devices: list[dict[str, Any]],
    profiles: Mapping[str, Mapping[str, Any]],
    features: list[str],
    started: str | None = None,
) -> dict[str, Any]:
    doc = {
        "v": VERSION,
        "node": node,
        "bd_seq": bd_seq,
        "version": version,
        "devices": devices,
        "profiles": dict(profiles),
        "features": features,
        "ts": now_iso(),
    }
    if started is not None:
        doc["started"] = started
    return doc


def device_state(state: Mapping[str, Any]) -> dict[str, Any]:
    return {"v": VERSION, **state}


def device_event(device: str, type_: str, data: Mapping[str, Any]) -> dict[str, Any]:
    """What a device reported by itself (a button pressed, a card read), on ``.../event/<type>``."""
    return {"v": VERSION, "device": device, "type": type_, "data": dict(data), "ts": now_iso()}
