"""A broker's traffic checked as a whole, with what one payload alone cannot tell.

:func:`check` takes the messages of one broker in the order they arrived and checks each with
:func:`hallctl.contract.validate.problems`, told what the traffic around it says:

* the action a central answer answers (its request, matched by client and request_id), so an ok
  answer's ``data`` is checked against that action's answer;
* a device command's ``data`` against the ``args`` its node's birth announces, and a command for
  a device or action the birth does not list is a problem;
* a device event's ``data`` against its kind's schema (:data:`hallctl_drivers.kinds.KINDS`), and
  a type the kind does not declare is a problem.

A request or command that does not fit its schema is still one the contract covers when its
receiver refused it: it was answered with an error on its reply topic, or, having no reply
address (``central/req/Kiosk_1/...``), was counted on ``central/status`` as unanswerable. Such a
finding carries ``refused`` (how); a finding without it is a payload off the contract.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping

from hallctl.bus.messages import request_id_of
from hallctl.bus.topics import NAME_RE, ROOT, Parsed, parse
from hallctl.contract.validate import REQUEST_KINDS, problems
from hallctl.ids import ID_RE

#: device kind -> its events (type -> JSON Schema of the data); None for a kind not known here
EventSchemas = Callable[[str], "Mapping[str, Mapping[str, Any]] | None"]


@dataclass(frozen=True)
class Message:
    topic: str
    payload: bytes
    retain: bool = False


@dataclass(frozen=True)
class Finding:
    """What is wrong with message ``index``; ``refused``: how its receiver refused it, when it is a
    request or command the receiver refused (then the contract was kept)."""

    index: int
    topic: str
    problems: tuple[str, ...]
    refused: str | None = None


def registered_events(kind: str) -> Mapping[str, Mapping[str, Any]] | None:
    """The events of a device kind registered in this process (hallctl_drivers.kinds)."""
    from hallctl_drivers.kinds import KINDS

    known = KINDS.get(kind)
    return None if known is None else known.events


def check(messages: Iterable[Message], *, strict: bool = False,
          events: EventSchemas = registered_events) -> list[Finding]:
    """Every message of one broker, in arrival order, that is off the contract or was refused."""
    log = list(messages)
    answers = _Answers(log)
    context = _Context(strict, events)
    out: list[Finding] = []
    for i, m in enumerate(log):
        if not m.topic.startswith(ROOT + "/"):
            continue
        p = parse(m.topic)
        kw, found = context.read(m, p)
        found = problems(m.topic, m.payload, strict=strict, **kw) + found
        if found:
            refused = answers.refusal(i, m, p) if _is_request(m.topic, p) else None
            out.append(Finding(i, m.topic, tuple(found), refused))
    return out


class _Context:
    """What the traffic so far says about the next message: the nodes' births (their devices,
    actions and kinds) and the actions asked of central (by client and request_id)."""

    def __init__(self, strict: bool, events: EventSchemas) -> None:
        self.strict, self.events = strict, events
        self.births: dict[tuple[str, str], dict[Any, Any]] = {}  # (hall, node) -> device id -> birth entry
        self.asked: dict[tuple[str, str, str], list[str]] = {}  # (hall, client, request_id) -> actions

    def read(self, m: Message, p: Parsed | None) -> tuple[dict[str, Any], list[str]]:
        """Keyword arguments for :func:`problems` on ``m``, and problems only the traffic shows."""
        doc = _json(m.payload) if p is not None and m.payload else None
        if not isinstance(doc, dict):
            return {}, []
        assert p is not None
        node = (p.hall, p.node or "")
        if p.kind == "node_birth" and isinstance(doc.get("devices"), list):
            self.births[node] = {d.get("id"): d for d in doc["devices"] if isinstance(d, dict)}
        elif p.kind == "central_req" and isinstance(doc.get("request_id"), str):
            actions = self.asked.setdefault((p.hall, p.client or "", doc["request_id"]), [])
            if p.name not in actions:
                actions.append(p.name or "")
        elif p.kind == "central_res" and isinstance(doc.get("request_id"), str):
            return {"action": self._answered(m, (p.hall, p.client or "", doc["request_id"]))}, []
        elif p.kind == "dev_cmd" and node in self.births:
            return _command(p, self.births[node].get(p.device))
        elif p.kind == "dev_event" and node in self.births:
            return self._event(p, self.births[node].get(p.device))
        return {}, []

    def _answered(self, m: Message, key: tuple[str, str, str]) -> str | None:
        """The action an answer answers: the one asked with its request_id, or of several (a
        request_id reused for another action, answered bad_request) the one its data fits best."""
        actions = self.asked.get(key, [])
        if len(actions) <= 1:
            return actions[0] if actions else None
        return min(actions, key=lambda a: len(problems(m.topic, m.payload, action=a, strict=self.strict)))

    def _event(self, p: Parsed, device: Mapping[str, Any] | None) -> tuple[dict[str, Any], list[str]]:
        """A device event against its kind: the type must be one the kind declares."""
        if device is None:
            return {}, [f"the node's birth lists no device {p.device!r}"]
        kind = device.get("kind")
        declared = self.events(kind) if isinstance(kind, str) else None
        if declared is None:  # a kind not known here: the envelope is all that can be checked
            return {}, []
        if p.name not in declared:
            return {}, [f"device kind {kind} declares no event {p.name!r}"]
        return {"data_schema": declared[p.name]}, []


def _command(p: Parsed, device: Mapping[str, Any] | None) -> tuple[dict[str, Any], list[str]]:
    """A command against its node's birth: the device and the action must be there."""
    if device is None:
        return {}, [f"the node's birth lists no device {p.device!r}"]
    spec = (device.get("action_specs") or {}).get(p.name)
    if spec is None:
        return {}, [f"the node's birth lists no action {p.name!r} for device {p.device}"]
    return ({"data_schema": spec["args"]} if isinstance(spec.get("args"), dict) else {}), []


def _is_request(topic: str, p: Parsed | None) -> bool:
    if p is not None:
        return p.kind in REQUEST_KINDS
    return _central_req_level(topic) is not None


def _central_req_level(topic: str) -> str | None:
    """``<root>/<hall>/central/req...`` of a shape central cannot answer: the hall, else None."""
    levels = topic[len(ROOT) + 1:].split("/")
    return levels[0] if levels[1:3] == ["central", "req"] else None


def _json(payload: bytes) -> Any:
    try:
        return json.loads(payload)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None


class _Answers:
    """The answers and central statuses of a log, to tell whether a request was refused."""

    def __init__(self, log: list[Message]) -> None:
        self.replies: dict[str, list[tuple[int, str | None, str, str]]] = {}  # topic -> (index, rid, status, code)
        self.statuses: dict[str, list[tuple[int, int]]] = {}  # hall -> (index, unanswerable)
        for i, m in enumerate(log):
            p = parse(m.topic)
            if p is None or not m.payload or p.kind not in ("central_res", "dev_res", "central_status"):
                continue
            doc = _json(m.payload)
            if not isinstance(doc, dict):
                continue
            if p.kind == "central_status":
                if isinstance(doc.get("unanswerable"), int):
                    self.statuses.setdefault(p.hall, []).append((i, doc["unanswerable"]))
                continue
            error = doc.get("error") if isinstance(doc.get("error"), dict) else {}
            rid = doc.get("request_id")
            self.replies.setdefault(m.topic, []).append(
                (i, rid if isinstance(rid, str) else None, str(doc.get("status")), str(error.get("code"))))

    def refusal(self, index: int, m: Message, p: Parsed | None) -> str | None:
        """How the receiver refused the request at ``index``, or None when it did not."""
        reply = _reply_topic(p) if p is not None else None
        if reply is None:  # no reply address: central must count it
            if p is not None and p.kind != "central_req":
                return None
            return self._counted(index, p.hall if p is not None else _central_req_level(m.topic) or "")
        rid = request_id_of(m.payload)
        for i, got, status, code in self.replies.get(reply, []):
            if i > index and got == rid and status == "error":
                return f"answered {code}"
        return None

    def _counted(self, index: int, hall: str) -> str | None:
        before = 0
        for i, count in self.statuses.get(hall, []):
            if i < index:
                before = count
            elif count > before:
                return "not answered: central counted it unanswerable"
        return None


def _reply_topic(p: Parsed) -> str | None:
    """Where the receiver answers a request on ``p``'s topic; None when the topic gives no valid
    reply address."""
    base = f"{ROOT}/{p.hall}"
    if p.kind == "central_req":
        return f"{base}/central/res/{p.client}" if ID_RE.match(p.client or "") else None
    if p.kind == "dev_cmd" and ID_RE.match(p.node or "") and ID_RE.match(p.device or "") and NAME_RE.match(p.name or ""):
        return f"{base}/node/{p.node}/dev/{p.device}/res/{p.name}"
    return None
