"""Check a payload of topic contract v1 against its JSON Schema.

:func:`problems` maps a topic to its schema (``schemas/*.json``; :data:`SCHEMA_OF_KIND`) and says
what is wrong with the payload, each problem a JSON path and a message (``$.data.queue: 'A' does
not match ...``); an empty list means it fits. A topic of the contract's root that no schema covers
is itself a problem. Beyond the schema it checks what only the topic can tell: the ids and names in
the topic, and that a document names the window, device or event type its topic names.

Schemas are open as the contract is (v1 may add fields; a reader ignores the ones it does not
know); ``strict=True`` also refuses a field no schema lists, which is how the test suite keeps the
schemas and the code in step. ``jsonschema`` (>= 4.18, the ``conformance`` extra) is imported on
first use, so importing this module costs nothing and the daemons never load it.
"""

from __future__ import annotations

import functools
import json
import re
from importlib import resources
from typing import Any, Iterable, Mapping
from urllib.parse import urljoin

from hallctl.bus.messages import MAX_PAYLOAD, decode_object
from hallctl.bus.topics import NAME_RE, RETAINED_KINDS, ROOT, Parsed, parse
from hallctl.errors import BadRequest
from hallctl.ids import ID_RE, ID_RULE
from hallctl.privacy import scrub

#: the base of every schema's ``$id`` (a name, not a place to download from: the files ship here)
BASE = "https://hallctl.invalid/schemas/v1/"
#: topic kind (hallctl.bus.topics.parse) -> its schema file
SCHEMA_OF_KIND: dict[str, str] = {
    "central_status": "central-status.json",
    "central_staffing": "central-staffing.json",
    "central_kpi": "central-kpi.json",
    "central_health": "central-health.json",
    "central_catalogue": "central-catalogue.json",
    "central_req": "central-request.json",
    "central_res": "central-response.json",
    "event": "queue-event.json",
    "window_state": "window-state.json",
    "board_state": "board-state.json",
    "node_status": "node-status.json",
    "node_birth": "node-birth.json",
    "dev_state": "device-state.json",
    "dev_cmd": "device-command.json",
    "dev_res": "device-response.json",
    "dev_event": "device-event.json",
}
#: topics on which an empty payload is a retained-message clear (docs/topics.md)
CLEARABLE_KINDS = frozenset(RETAINED_KINDS | {"central_req", "dev_cmd"})
#: topics whose payloads a client sends to a receiver (central or a node), which may refuse them
REQUEST_KINDS = frozenset({"central_req", "dev_cmd"})
#: the topic levels of each kind that are ids (the rest of Parsed's fields, ``name``, are names)
_ID_FIELDS = ("hall", "node", "device", "window", "client")
_NON_ASCII_ESCAPE = re.compile(rb"\\u([0-9a-fA-F]{4})")
#: a message longer than this is cut in a problem (a birth's whole device list is no help)
_MESSAGE_MAX = 240

__all__ = ["BASE", "SCHEMA_OF_KIND", "CLEARABLE_KINDS", "REQUEST_KINDS", "problems", "schema_file_for",
           "schema", "schema_names", "central_actions", "event_types"]


def problems(topic: str, payload: bytes | bytearray | str | None, *, action: str | None = None,
             data_schema: Mapping[str, Any] | None = None, strict: bool = False) -> list[str]:
    """What is wrong with ``payload`` on ``topic`` under topic contract v1 (empty: nothing).

    ``action``: on ``central/res/<client>``, the action answered, when the caller knows it (it
    matched the request_id): ``data`` is then checked against that action's answer instead of
    against any action's. ``data_schema``: the JSON Schema of ``data`` when the caller knows it (a
    device command's ``args`` from its node's birth, a device event's from its kind).
    ``strict``: also refuse fields no schema lists.
    """
    if not topic.startswith(ROOT + "/"):
        return [f"topic {topic}: not a topic of contract v1 (they start with {ROOT}/)"]
    parsed = parse(topic)
    if parsed is None:
        if _reserved(topic):
            return []
        return [f"no schema for topic {topic}"]
    if payload is None or len(payload) == 0:  # a clear removes what the topic retained, whatever it was
        if parsed.kind in CLEARABLE_KINDS:
            return []
        return _topic_problems(parsed) + ["empty payload: only retained documents, requests and commands are cleared with one"]
    found = _topic_problems(parsed)
    raw = payload.encode("utf-8") if isinstance(payload, str) else bytes(payload)
    if len(raw) > MAX_PAYLOAD:
        return found + [f"payload of {len(raw)} bytes exceeds {MAX_PAYLOAD}"]
    try:
        doc = decode_object(raw)
    except BadRequest as exc:
        return found + [exc.message]
    if parsed.kind not in REQUEST_KINDS and any(int(m.group(1), 16) >= 0x80 for m in _NON_ASCII_ESCAPE.finditer(raw)):
        found.append("non-ASCII text sent as \\u escapes, not as UTF-8")
    name = SCHEMA_OF_KIND[parsed.kind]
    key: tuple[str, str] = (name, "")
    if parsed.kind == "central_req":
        if parsed.name in central_actions():
            key = (name, f"#/$defs/data/{parsed.name}")
        else:
            found.append(f"no schema for action {parsed.name!r} of central (its actions: {', '.join(central_actions())})")
    elif parsed.kind == "central_res" and action in central_actions():
        key = (name, f"#/$defs/data/{action}")
    found += _schema_problems(_validator(key, _schema_key(data_schema), strict), doc)
    found += _agreement(parsed, doc)
    return found


def schema_file_for(topic: str) -> str | None:
    """The schema file of ``topic`` (``central-status.json``), None for a topic no schema covers."""
    parsed = parse(topic)
    return None if parsed is None else SCHEMA_OF_KIND[parsed.kind]


def schema_names() -> list[str]:
    """Every schema file, common.json included, sorted."""
    folder = resources.files(__package__) / "schemas"
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".json"))


@functools.cache
def schema(name: str) -> dict[str, Any]:
    """One schema file as a dict (do not modify it)."""
    text = (resources.files(__package__) / "schemas" / name).read_text(encoding="utf-8")
    return json.loads(text)


def central_actions() -> list[str]:
    """The actions central-request.json has a schema for."""
    return list(schema("central-request.json")["$defs"]["action"]["enum"])


def event_types() -> list[str]:
    """The queue event types queue-event.json has a schema for."""
    return list(schema("queue-event.json")["$defs"]["type"]["enum"])


# -- topics ---------------------------------------------------------------------------------------

def _reserved(topic: str) -> bool:
    """``<root>/<hall>/sms/...``: reserved for an SMS gateway's own traffic, not specified by v1."""
    levels = topic[len(ROOT) + 1:].split("/")
    return len(levels) >= 2 and levels[1] == "sms"


def _topic_problems(parsed: Parsed) -> list[str]:
    out = []
    for field in _ID_FIELDS:
        value = getattr(parsed, field)
        if value is not None and not ID_RE.match(value):
            out.append(f"topic: {field} {value!r} is not a valid id ({ID_RULE})")
    if parsed.name is not None and (len(parsed.name) > 64 or not NAME_RE.match(parsed.name)):
        what = "event type" if parsed.kind in ("event", "dev_event") else "action"
        out.append(f"topic: {what} {parsed.name!r} is not a valid name (dotted [a-z0-9_])")
    return out


def _agreement(parsed: Parsed, doc: Mapping[str, Any]) -> list[str]:
    """A document names what its topic names: the event type, the device, the node, the window."""
    pairs = {
        "event": [("type", parsed.name)],
        "dev_event": [("device", parsed.device), ("type", parsed.name)],
        "dev_state": [("device", parsed.device)],
        "node_birth": [("node", parsed.node)],
        "window_state": [("window", parsed.window)],
    }.get(parsed.kind, [])
    return [f"$.{field}: {doc.get(field)!r} on a topic of {field} {expected!r}" for field, expected in pairs
            if isinstance(doc.get(field), str) and doc.get(field) != expected]


# -- schemas --------------------------------------------------------------------------------------
#
# The files' $refs are resolved once, here, into one tree per schema (jsonschema resolving them on
# every use took milliseconds a payload). Two of them are done as keywords of our own, with the
# same meaning: common.json's recursive "scrubbed" (a walk with its personal_number patterns) and
# the metaschema a birth's "args" must fit (checked once per distinct schema).

_META = "https://json-schema.org/draft/2020-12/schema"
_SCRUBBED = "/$defs/scrubbed"
_DROPPED = frozenset({"$schema", "$id", "$defs", "$comment", "$ref"})


def _jsonschema() -> Any:
    try:
        import jsonschema
    except ImportError as exc:
        raise ImportError("the contract's schemas need jsonschema>=4.18: pip install 'hallctl[conformance]'",
                          name="jsonschema") from exc
    return jsonschema


@functools.cache
def _target(file: str, pointer: str) -> Any:
    """The schema at ``pointer`` in ``file``, its $refs resolved."""
    node: Any = schema(file)
    for part in filter(None, pointer.split("/")):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return _resolved(node, file)


def _resolved(node: Any, file: str) -> Any:
    if isinstance(node, list):
        return [_resolved(v, file) for v in node]
    if not isinstance(node, dict):
        return node
    out = {k: v if k in ("enum", "const") else _resolved(v, file) for k, v in node.items() if k not in _DROPPED}
    ref = node.get("$ref")
    if ref is None:
        return out
    if ref == _META:
        return {**out, "x-json-schema": True}
    url, _, pointer = urljoin(BASE + file, ref).partition("#")
    if pointer.endswith(_SCRUBBED):
        return {**out, "x-scrubbed": True}
    target = _target(url[len(BASE):], pointer)
    return {**out, "allOf": [*out.get("allOf", []), target]} if out else target


def _closed(node: Any) -> Any:
    """A copy of a schema in which every object schema that lists its properties allows no other
    (``strict``). Every such schema in the files lists all the properties its objects may have."""
    if isinstance(node, list):
        return [_closed(v) for v in node]
    if not isinstance(node, dict):
        return node
    out = {k: v if k in ("enum", "const") else _closed(v) for k, v in node.items()}
    if out.get("type") == "object" and isinstance(out.get("properties"), dict) \
            and "additionalProperties" not in out and "unevaluatedProperties" not in out:
        out["unevaluatedProperties"] = False
    return out


@functools.cache
def _validator_class() -> Any:
    jsonschema = _jsonschema()

    def scrubbed(validator: Any, value: Any, instance: Any, schema_: Any) -> Any:
        where = _personal_paths(instance, [])
        if where:
            yield jsonschema.ValidationError(f"must have no unmasked phone or ID card number in any text "
                                             f"(at {', '.join(where)})")

    def json_schema(validator: Any, value: Any, instance: Any, schema_: Any) -> Any:
        problem = _schema_problem(json.dumps(instance, sort_keys=True))
        if problem:
            yield jsonschema.ValidationError(problem)

    return jsonschema.validators.extend(jsonschema.Draft202012Validator,
                                        {"x-scrubbed": scrubbed, "x-json-schema": json_schema})


@functools.lru_cache(maxsize=1024)
def _schema_problem(text: str) -> str | None:
    jsonschema = _jsonschema()
    try:
        jsonschema.Draft202012Validator.check_schema(json.loads(text))
    except jsonschema.SchemaError as exc:
        return f"not a JSON Schema (Draft 2020-12): {exc.message}"
    return None


def _schema_key(data_schema: Mapping[str, Any] | None) -> str:
    return "" if data_schema is None else json.dumps(data_schema, sort_keys=True)


@functools.lru_cache(maxsize=512)
def _validator(key: tuple[str, str], data_schema: str, strict: bool) -> Any:
    """A validator for a schema file (``key[1]``: a fragment of it that ``data`` must fit
    besides) and, when given, the JSON of ``data``'s own schema."""
    name, data_ref = key
    root = _target(name, "")
    data: list[Any] = []
    if data_ref:
        data.append(_target(name, data_ref.lstrip("#")))
    if data_schema:
        data.append(json.loads(data_schema))
    if data:
        root = {"allOf": [root], "properties": {"data": {"allOf": data}}}
    return _validator_class()(_closed(root) if strict else root)


def _schema_problems(validator: Any, doc: Any) -> list[str]:
    out: list[str] = []
    for error in sorted(validator.iter_errors(doc), key=lambda e: list(map(str, e.absolute_path))):
        text = _describe(error)
        if text not in out:
            out.append(text)
    return out


def _describe(error: Any) -> str:
    """``$.path: message``; for an anyOf/oneOf the branch that came closest says what is wrong.
    A phone or ID card number the message would echo is masked: problems end up in reports."""
    if error.context:
        return _describe(_closest(error.context))
    message = error.message
    if error.validator == "pattern" and isinstance(error.instance, str) and scrub(error.instance) != error.instance:
        message = f"a phone or ID card number (not shown) does not match {error.validator_value!r}"
    elif error.validator == "unevaluatedProperties":
        message = f"field(s) no schema lists: {message}"
    elif error.validator == "not" and isinstance(error.schema, dict) and error.schema.get("description"):
        message = f"must have {error.schema['description']}"
    if len(message) > _MESSAGE_MAX:
        message = message[:_MESSAGE_MAX - 3] + "..."
    return scrub(f"{_path(error.absolute_path)}: {message}")


def _closest(context: list[Any]) -> Any:
    """The error to report of a failed anyOf/oneOf: from the branch the instance came closest to
    (its type matched, fewest errors), the deepest one."""
    branches: dict[Any, list[Any]] = {}
    for e in context:
        branches.setdefault(e.relative_schema_path[0] if e.relative_schema_path else None, []).append(e)

    def distance(errors: list[Any]) -> tuple[bool, int]:
        wrong_type = any(e.validator == "type" and not e.relative_path for e in errors)
        return wrong_type, len(errors)

    errors = min(branches.values(), key=distance)
    return max(errors, key=lambda e: len(e.relative_path))


@functools.cache
def _personal_patterns() -> list[re.Pattern[str]]:
    return [re.compile(p["pattern"]) for p in schema("common.json")["$defs"]["personal_number"]["anyOf"]]


def _personal_paths(value: Any, at: Iterable[Any]) -> list[str]:
    """Where in ``value`` a text holds an unmasked phone or ID card number (common.json's
    personal_number: what its has_personal_number finds, however deep)."""
    patterns = _personal_patterns()
    out: list[str] = []
    stack: list[tuple[Any, list[Any]]] = [(value, list(at))]
    while stack and len(out) < 5:
        node, path = stack.pop()
        if isinstance(node, str) and any(p.search(node) for p in patterns):
            out.append(_path(path))
        elif isinstance(node, dict):
            stack.extend((v, path + [k]) for k, v in reversed(list(node.items())))
        elif isinstance(node, list):
            stack.extend((v, path + [i]) for i, v in reversed(list(enumerate(node))))
    return out


def _path(parts: Iterable[Any]) -> str:
    out = "$"
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else f".{p}"
    return out
