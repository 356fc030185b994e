"""Issue 8: the contract's JSON Schemas (hallctl/contract/schemas/) checked against the code's
message definitions: the lists they enumerate are the code's, every payload the code builds fits
them (strict: with no field they do not list), and payloads off the contract are refused."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib
import typing
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import jsonschema
import pytest
from conftest import ROOT
from hypothesis import given, settings
from hypothesis import strategies as st
from referencing import Registry
from referencing.jsonschema import DRAFT202012

import hallctl
from hallctl import errors
from hallctl.bus import messages, topics
from hallctl.bus.topics import Topics
from hallctl.central import args
from hallctl.central.catalogue import catalogue_document
from hallctl.central.core import Central
from hallctl.central.health import HallHealth
from hallctl.central.hours import OpeningHours
from hallctl.central.model import (
    PRIORITIES, DepartmentSpec, HallSpec, MatterSpec, QueueSpec, TicketStatus, WindowSpec, WindowState,
)
from hallctl.central.service import CentralService, MqttSettings
from hallctl.config import parse_node_config
from hallctl.contract import validate
from hallctl.contract.traffic import Message, check
from hallctl.contract.validate import BASE, SCHEMA_OF_KIND, central_actions, event_types, problems, schema, schema_names
from hallctl.node.daemon import FEATURES
from hallctl.node.plan import plan_node
from hallctl.profiles import load_profiles
from hallctl_drivers.base import Health

HALL = "h1"
T = Topics(HALL)
TZ = ZoneInfo("Asia/Shanghai")
MONDAY = datetime(2026, 11, 16, 10, 0, tzinfo=TZ)
TS = "2026-11-23T10:00:00.000+08:00"


def _defs(name: str) -> dict:
    return schema(name)["$defs"]


# -- the schema files themselves ----------------------------------------------------------------------

@pytest.mark.parametrize("name", schema_names())
def test_each_schema_is_valid_draft_2020_12_with_its_id(name):
    doc = schema(name)
    jsonschema.Draft202012Validator.check_schema(doc)
    assert doc["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert doc["$id"] == BASE + name and doc["title"] and doc["description"]


def test_every_ref_resolves():
    registry = Registry().with_resources((BASE + n, DRAFT202012.create_resource(schema(n))) for n in schema_names())
    for name in schema_names():
        resolver = registry.resolver(base_uri=BASE + name)
        for ref in _refs(schema(name)):
            if ref.startswith("https://json-schema.org/"):
                continue  # the metaschema: jsonschema knows it
            resolver.lookup(ref)  # raises if it does not resolve


def _refs(node):
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "$ref":
                yield v
            else:
                yield from _refs(v)
    elif isinstance(node, list):
        for v in node:
            yield from _refs(v)


def test_every_topic_kind_has_a_schema_and_every_schema_a_topic():
    assert set(SCHEMA_OF_KIND) == set(topics._PATTERNS)
    assert set(SCHEMA_OF_KIND.values()) | {"common.json"} == set(schema_names())


# -- the lists the schemas enumerate are the code's ---------------------------------------------------

def test_request_actions_are_centrals():
    actions = set(Central.ACTIONS) | CentralService.VIEWS
    assert set(central_actions()) == actions
    assert set(_defs("central-request.json")["data"]) == actions
    assert set(_defs("central-response.json")["data"]) == actions


def test_error_codes_are_the_codes_table():
    assert _defs("common.json")["error_code"]["enum"] == list(errors.CODES)
    assert "forbidden" in _defs("common.json")["error_code"]["enum"]


def test_event_types_are_the_cores_fold_table():
    core = Central(HallSpec(HALL, {"a": QueueSpec("a", "A", "a")}, {}), lambda: MONDAY)
    assert set(event_types()) == set(core._folders)  # what the core folds is what it emits
    assert set(_defs("queue-event.json")["data"]) == set(core._folders)


def test_enumerations_and_patterns_are_the_codes():
    common = _defs("common.json")
    assert common["channel"]["enum"] == list(args.CHANNELS)
    assert common["priority"]["enum"] == list(PRIORITIES)
    assert common["ticket_status"]["enum"] == list(typing.get_args(TicketStatus))
    assert common["window_state_name"]["enum"] == list(typing.get_args(WindowState))
    assert schema("node-status.json")["properties"]["state"]["enum"] == list(messages.NODE_STATES)
    assert schema("central-status.json")["properties"]["state"]["enum"] == list(messages.CENTRAL_STATES)
    assert schema("device-state.json")["properties"]["health"]["enum"] == [h.value for h in Health]
    assert common["id"]["pattern"] == hallctl.ids.ID_RE.pattern
    assert common["name"]["pattern"] == topics.NAME_RE.pattern
    assert common["request_id"]["pattern"] == messages.REQUEST_ID_RE.pattern
    assert common["phone"]["pattern"] == hallctl.central.model.PHONE_RE.pattern
    assert common["ticket_id"]["pattern"] == args.TICKET_ID_RE.pattern
    assert common["ticket_number"]["pattern"] == args.TICKET_NUMBER_RE.pattern
    birth = _defs("central-request.json")["data"]["ticket.issue"]["properties"]["birth_date"]
    assert birth["pattern"] == args.BIRTH_DATE_RE.pattern
    assert set(_defs("common.json")["request"]["properties"]) == {"v", "request_id", "data", "expires_at"}


# -- every payload the code builds fits, strictly ------------------------------------------------------

class Clock:
    def __init__(self) -> None:
        self.now = MONDAY

    def __call__(self) -> datetime:
        return self.now


def _hall() -> HallSpec:
    return HallSpec(
        HALL, {"a": QueueSpec("a", "A", "综合受理"), "b": QueueSpec("b", "B", "不动产")},
        {"1": WindowSpec("1", "1号窗口"), "2": WindowSpec("2", "2号窗口", ("b",))},
        recall_limit=1, auto_no_show=True, departments={"tax": DepartmentSpec("tax", "税务")},
        matters={"deed": MatterSpec("deed", "不动产登记", "b", "tax")},
        hours=OpeningHours.parse(["08:00-12:00", "13:30-17:00"]), name="萧山区行政服务中心",
        ticket_link="https://hall.example/t/{token}")


class Samples:
    """Payloads as the code builds them, each with its topic (and the action an answer answers)."""

    def __init__(self, tmp: Path) -> None:
        self.items: list[tuple[str, bytes, str | None]] = []
        self.clock = Clock()
        self.svc = CentralService(_hall(), str(tmp / "c.db"), MqttSettings(), clock=self.clock)
        self.n = 0

    def add(self, topic: str, doc: dict | bytes, action: str | None = None) -> None:
        self.items.append((topic, doc if isinstance(doc, bytes) else messages.encode(doc), action))

    def ask(self, action: str, data: dict | None = None, *, payload: bytes | None = None, valid: bool = True) -> dict:
        """``valid=False``: a request off the contract on purpose (its answer is a sample, it is not)."""
        self.n += 1
        body = payload if payload is not None else messages.encode(messages.request(f"r{self.n}", data or {}))
        if valid:
            self.add(T.central_req("c1", action), body)
        answer = self.svc.respond("c1", action, body)
        self.add(T.central_res("c1"), answer, action)
        return answer

    def day(self) -> None:
        """Last Monday's morning, so that this Monday's staffing advice has slots."""
        svc, ask = self.svc, self.ask
        ask("window.open", {"window": "1", "clerk": "s1024"})
        for i in range(6):
            ask("ticket.issue", {"queue": "a"})
            ask("window.call_next", {"window": "1"})
            self.clock.now += timedelta(minutes=5)
            ask("window.complete", {"window": "1"})
        self.clock.now = MONDAY + timedelta(days=7)
        slot = self.clock.now + timedelta(minutes=20)
        ask("window.open", {"window": "2"})
        ask("ticket.issue", {"queue": "a", "phone": "13800138000", "channel": "app"})
        ask("ticket.issue", {"matter": "deed"})
        ask("ticket.issue", {"queue": "a", "priority": "appointment", "slot": slot.isoformat()})
        ask("ticket.issue", {"queue": "a", "priority": "appointment", "slot": (slot - timedelta(hours=1)).isoformat()})
        ask("ticket.issue", {"queue": "b", "birth_date": "19400101", "priority": "online"})
        # a booking used by its ticket, one cancelled; an online application's code
        ask("appointment.book", {"code": "YY2026A1", "matter": "deed", "slot": slot.isoformat(), "phone": "13900139000"})
        ask("ticket.issue", {"appointment": "YY2026A1"})
        ask("appointment.book", {"code": "YY2026B2", "queue": "a", "slot": slot.isoformat()})
        ask("appointment.cancel", {"code": "YY2026B2"})
        ask("ticket.issue", {"queue": "a", "online_code": "WSB2026001"})
        # printed: confirmed; the printer failed: voided; a kiosk that died: voided by central
        printed = ask("ticket.issue", {"queue": "a", "confirm": "print"})["data"]
        ask("ticket.status", {"token": printed["token"]})
        ask("ticket.confirm", {"ticket": printed["ticket"]["number"]})
        failed = ask("ticket.issue", {"queue": "b", "confirm": "print"})["data"]["ticket"]["id"]
        ask("ticket.void", {"ticket": failed, "reason": "paper_out"})
        ask("ticket.issue", {"queue": "a", "confirm": "print"})
        self.add(T.central_catalogue, catalogue_document(svc.core, self.clock.now))  # pending: not waiting
        self.clock.now += timedelta(seconds=svc.hall.print_confirm_s)
        svc.tick()
        for action in ("window.call_next", "window.recall", "window.start"):
            ask(action, {"window": "1"})
        ask("window.transfer", {"window": "1", "matter": "deed"})
        ask("window.call_next", {"window": "1"})
        ask("window.transfer", {"window": "1", "queue": "a"})
        ask("window.call_next", {"window": "1"})
        ask("window.no_show", {"window": "1"})
        ask("window.call_next", {"window": "2"})
        ask("window.recall", {"window": "2"})
        ask("window.call_next", {"window": "2"})  # the limit: passed as no_show, the next called
        ask("window.pause", {"window": "2"})
        ask("window.complete", {"window": "2"})
        ask("window.close", {"window": "2"})
        ask("ticket.status", {"ticket": "A001"})
        ask("queue.status")
        ask("kpi.summary")
        ask("kpi.summary", {"day": "2026-11-16"})
        ask("kpi.summary", {"day": "2020-01-01"})
        assert ask("staffing.advice")["data"]["slots"]
        for action, data in (("ticket.issue", {"queue": "zz"}), ("window.complete", {"window": "9"}),
                             ("window.recall", {"window": "1"}), ("ticket.explode", {}),
                             ("ticket.issue", {"queue": "a", "extra": 1})):
            assert ask(action, data, valid=action != "ticket.explode" and "extra" not in data)["status"] == "error"
        ask("ticket.issue", payload=b"{not json", valid=False)
        ask("ticket.issue", payload=messages.encode({**messages.request("old", {"queue": "a"}),
                                                    "expires_at": "2020-01-01T00:00:00Z"}))
        self.clock.now = self.clock.now.replace(hour=12, minute=30)  # the lunch break
        assert ask("ticket.issue", {"queue": "a"})["error"]["code"] == "hall_closed"
        self.add(T.central_catalogue, catalogue_document(svc.core, self.clock.now))
        always = Central(HallSpec(HALL, {"a": QueueSpec("a", "A", "综合受理")}, {}, classes=("green",)), self.clock)
        self.add(T.central_catalogue, catalogue_document(always, self.clock.now))  # no hours, no name
        # what central publishes
        for event in svc.store.load_events():
            self.add(T.event(event.type), Central.event_public(event))
        for w in svc.hall.windows:
            self.add(T.window_state(w), svc.core.window_state(w))
        self.add(T.board_state, svc.core.board_state())
        self.add(T.central_kpi, svc.kpi_document())
        self.add(T.central_staffing, svc.staffing_advice())
        for state, extra in (("online", {"unanswerable": 3}), ("offline", {}),
                             ("online", {"unanswerable": 0, "reload": {"ok": False, "at": TS, "message": "x: bad"}})):
            self.add(T.central_status, messages.central_status(state, "central-1", extra.get("reload"),
                                                              unanswerable=extra.get("unanswerable")))
        for code, cls in _error_classes().items():  # hall_closed, with its detail, came above
            if code != "hall_closed":
                self.add(T.central_res("c1"), messages.response_error("r", cls("what went wrong", field="x")))

    def nodes(self, tmp: Path) -> None:
        """A node's birth (a working display and one whose profile is broken), statuses, device
        states, commands, answers and an event; the hall's health folded from them."""
        broken = tmp / "profiles"
        broken.mkdir()
        (broken / "broken-one.toml").write_text('schema = 1\nvendor = "x"\nname = "y"\nkind = "window_display"\n'
                                                'driver = "no_such_driver"\n', encoding="utf-8")
        cfg = parse_node_config({
            "node": {"id": "window-1", "hall": HALL, "profile_dirs": [str(broken)]},
            "device": [{"id": "display", "profile": "onbon-bx-6k", "app": "window_display",
                        "options": {"port": "/dev/ttyUSB0", "window": "1"}},
                       {"id": "spare", "profile": "broken-one"}]})
        profiles = load_profiles(cfg.profile_dirs)
        devices = [p.birth_entry() for p in plan_node(cfg, profiles)]
        assert "disabled" in devices[1]
        models = {d["profile"]: {"vendor": p.vendor, "name": p.name}
                  for d in devices if (p := profiles.profiles.get(d["profile"]))}
        birth = messages.node_birth("window-1", 4, hallctl.__version__, devices, models, FEATURES, started=TS)
        self.add(T.node_birth("window-1"), birth)
        for state in messages.NODE_STATES:
            self.add(T.node_status("window-1"), messages.node_status(state, 4))
        state = {"device": "display", "available": True, "health": "ok", "reason": "", "since": TS}
        self.add(T.dev_state("window-1", "display"), messages.device_state(state))
        self.add(T.dev_cmd("window-1", "display", "show"), messages.request("d1", {"lines": ["请A001号"]}))
        self.add(T.dev_res("window-1", "display", "show"), messages.response_ok("d1", {}))
        self.add(T.dev_res("window-1", "display", "probe"), messages.response_ok("d2", state))
        self.add(T.dev_event("window-1", "keypad", "pressed"), messages.device_event("keypad", "pressed", {"button": 2}))
        health = HallHealth(lambda: MONDAY)
        health.node_status("window-1", messages.node_status("ready", 4), live=True)
        health.node_birth("window-1", birth)
        health.node_status("window-2", messages.node_status("lost", 1), live=True)
        health.device_state("window-1", "display", {**state, "available": False, "health": "fault", "reason": "probe: no reply"})
        self.add(T.central_health, HallHealth(lambda: MONDAY).document())  # nothing known yet: ts null
        self.add(T.central_health, health.document())


def _error_classes() -> dict[str, type]:
    out = {}
    for cls in vars(errors).values():
        if isinstance(cls, type) and issubclass(cls, errors.HallctlError) and cls is not errors.ConfigError:
            out.setdefault(cls.code, cls)
    out["config_error"] = lambda message, **detail: errors.ConfigError(message, key="settings")
    return out


@pytest.fixture(scope="module")
def samples(tmp_path_factory) -> Samples:
    tmp = tmp_path_factory.mktemp("contract")
    s = Samples(tmp)
    s.day()
    s.nodes(tmp)
    return s


def test_payloads_the_code_builds_fit_their_schemas_strictly(samples):
    found = [(topic, payload[:200], problems(topic, payload, action=action, strict=True))
             for topic, payload, action in samples.items]
    assert [f for f in found if f[2]] == []


def test_the_samples_reach_every_schema(samples):
    """So that the test above is not vacuous: every kind, action, event type and error code."""
    docs = [(topics.parse(t), json.loads(p), a) for t, p, a in samples.items if p.startswith(b"{")]
    assert {p.kind for p, _, _ in docs} == set(SCHEMA_OF_KIND)
    assert {a for p, d, a in docs if p.kind == "central_res" and d["status"] == "ok"} == set(central_actions())
    assert {d["type"] for p, d, _ in docs if p.kind == "event"} == set(event_types())
    assert {d["error"]["code"] for p, d, _ in docs if p.kind == "central_res" and d["status"] == "error"} == set(errors.CODES)


def test_a_field_no_schema_lists_is_refused_in_strict_mode_only(samples):
    """Schemas are open (v1 may add fields); strict mode keeps them listing all the code sends."""
    for topic, payload, action in samples.items:
        kind = topics.parse(topic).kind
        doc = json.loads(payload) if payload.startswith(b"{") else None
        if doc is None or kind in validate.REQUEST_KINDS:  # requests are closed in any mode
            continue
        doc["zz_unlisted"] = 1
        grown = messages.encode(doc)
        assert problems(topic, grown, action=action) == [], topic
        assert any("zz_unlisted" in p for p in problems(topic, grown, action=action, strict=True)), topic


# -- payloads off the contract are refused ------------------------------------------------------------

REQ = T.central_req("kiosk-1", "ticket.issue")
RES = T.central_res("kiosk-1")
OK = {"v": 1, "request_id": "r1", "status": "ok", "data": {"ticket": None}, "ts": TS}
ERROR = {"v": 1, "request_id": "r1", "status": "error", "error": {"code": "conflict", "message": "no"}, "ts": TS}
VIEW = {"id": "2026-11-23-A001", "number": "A001", "queue": "a", "status": "waiting", "issued_at": TS,
        "called_at": None, "window": None, "recalls": 0, "channel": "kiosk", "phone_masked": "138****8000",
        "priority": "walkin", "slot": None, "first_window": None}
EVENT = {"v": 1, "seq": 1, "type": "ticket.issued", "ts": TS,
         "data": {"ticket": "2026-11-23-A001", "number": "A001", "queue": "a", "channel": "kiosk"}}


def _fits(topic: str, doc: dict | bytes, **kw) -> list[str]:
    return problems(topic, doc if isinstance(doc, bytes) else messages.encode(doc), **kw)


def test_the_references_fit():
    assert _fits(RES, OK) == [] and _fits(RES, ERROR) == []
    assert _fits(RES, {**OK, "data": {"ticket": VIEW}}, action="window.start") == []
    assert _fits(T.event("ticket.issued"), EVENT) == []
    assert _fits(REQ, messages.request("r1", {"queue": "a", "phone": "13800138000"})) == []


OFF_CONTRACT_CASES = [
    (RES, {k: v for k, v in OK.items() if k != "v"}, "'v' is a required property"),
    (RES, {**OK, "v": 2}, "$.v: 1 was expected"),
    (RES, {**OK, "status": "fine"}, "$.status: 'fine' is not one of"),
    (RES, {**ERROR, "error": {"code": "oops", "message": "no"}}, "$.error.code: 'oops' is not one of"),
    (RES, {**ERROR, "data": {}}, "no data in an error answer"),
    (RES, {**OK, "ts": "2026-11-23 10:00:00"}, "$.ts: '2026-11-23 10:00:00' does not match"),
    (RES, {**ERROR, "error": {"code": "conflict", "message": "call 13912345678"}}, "no unmasked phone or ID card number in any text (at $.error.message)"),
    (RES, {**ERROR, "error": {"code": "hall_closed", "message": "closed"}}, "$.error: 'detail' is a required property"),
    (RES, {**OK, "data": {"ticket": {**VIEW, "phone_masked": "13800138000"}}}, "$.data.ticket.phone_masked"),
    (T.event("ticket.issued"), {**EVENT, "data": {**EVENT["data"], "phone": "13800138000"}}, "no unmasked phone or ID card number in any text (at $.data.phone)"),
    (T.event("ticket.issued"), {**EVENT, "data": {**EVENT["data"], "priority": "walkin"}}, "$.data.priority: 'walkin' is not one of"),
    (T.event("ticket.called"), EVENT, "$.type: 'ticket.issued' on a topic of type 'ticket.called'"),
    (REQ, {**messages.request("r1", {"queue": "a"}), "reply_to": "x"}, "Additional properties are not allowed ('reply_to'"),
    (REQ, messages.request("r1", {"queue": "a", "colour": "red"}), "$.data: Additional properties are not allowed ('colour'"),
    (REQ, messages.request("r1", {"phone": "13800138000"}), "$.data: 'queue' is a required property"),
    (REQ, messages.request("r1", {"queue": "a", "priority": "appointment"}), "$.data: 'slot' is a required property"),
    (REQ, messages.request("r1", {"queue": "a", "slot": TS}), "$.data: must have no slot"),
    (REQ, messages.request("r1 with spaces", {"queue": "a"}), "$.request_id: 'r1 with spaces' does not match"),
    (T.central_req("kiosk-1", "window.open"), messages.request("r1", {"window": "1", "clerk": "13800138000"}),
     "$.data.clerk: must have no phone or ID card number"),
    (T.central_req("kiosk-1", "ticket.explode"), messages.request("r1"), "no schema for action 'ticket.explode'"),
    (f"{T.base}/central/req/Kiosk_1/ticket.issue", messages.request("r1", {"queue": "a"}), "topic: client 'Kiosk_1' is not a valid id"),
    (T.window_state("3"), {"v": 1, "window": "4", "name": "4号窗口", "state": "open", "ticket": None}, "$.window: '4' on a topic of window '3'"),
    (T.window_state("3"), {"v": 1, "window": "3", "name": "3号窗口", "state": "open", "ticket": {"number": "A001"}}, "$.ticket: 'queue' is a required property"),
    (T.central_kpi, {"v": 1, "schema": 1, "day": None, "as_of": None, "tickets": {"issued": 0}, "by_clerk": {}}, "$: must have no by_clerk"),
    (T.central_status, {"v": 1, "state": "online", "instance": "c", "ts": TS}, "'unanswerable' is a required property"),
    (T.node_status("n1"), {"v": 1, "state": "gone", "bd_seq": 1, "ts": TS}, "$.state: 'gone' is not one of"),
    (T.dev_state("n1", "d1"), {"v": 1, "device": "d2", "available": True, "health": "ok", "reason": "", "since": TS}, "$.device: 'd2' on a topic of device 'd1'"),
    (T.event("ticket.issued"), b"", "empty payload"),
    (RES, b"[1, 2]", "payload must be a JSON object, not list"),
    (RES, b"\xff\xfe", "payload is not UTF-8 JSON"),
    (RES, b'{"a": ' + b"[" * 40 + b"]" * 40 + b"}", "nests deeper than 32 levels"),
    (RES, b'{"x": "' + b"y" * 70000 + b'"}', "exceeds 65536"),
    (T.board_state, b'{"v":1,"calls":[],"waiting":{},"predicted_wait_min":{},"note":"\\u53f7"}', "\\u escapes"),
    ("hallctl/v1/h1/nonsense/x", {"v": 1}, "no schema for topic hallctl/v1/h1/nonsense/x"),
    ("hallctl/v2/h1/central/status", {"v": 1}, "not a topic of contract v1"),
]


@pytest.mark.parametrize("topic, doc, expected", OFF_CONTRACT_CASES)
def test_payloads_off_the_contract_are_refused(topic, doc, expected):
    found = _fits(topic, doc)
    assert any(expected in p for p in found), found


def _plain_verdict(topic: str, payload: bytes, action: str | None = None) -> bool:
    """Whether the files, as they are, with jsonschema resolving their $refs, refuse the payload."""
    registry = Registry().with_resources((BASE + n, DRAFT202012.create_resource(schema(n))) for n in schema_names())
    parsed = topics.parse(topic)
    root: dict = {"$ref": BASE + SCHEMA_OF_KIND[parsed.kind]}
    name = parsed.name if parsed.kind == "central_req" else action if parsed.kind == "central_res" else None
    if name in central_actions():
        root["properties"] = {"data": {"$ref": f"{root['$ref']}#/$defs/data/{name}"}}
    return not jsonschema.Draft202012Validator(root, registry=registry).is_valid(json.loads(payload))


def test_the_validator_says_what_the_files_say(samples):
    """problems() resolves the files' $refs once, into trees of its own: it must refuse exactly
    what the files refuse, read by jsonschema as any integrator reads them."""
    cases = [(t, p, a) for t, p, a in samples.items if p.startswith(b"{")]
    cases += [(t, messages.encode(d), None) for t, d, _ in OFF_CONTRACT_CASES
              if isinstance(d, dict) and topics.parse(t) is not None]
    for topic, payload, action in cases:
        said = [p for p in problems(topic, payload, action=action)
                if not p.startswith(("topic:", "no schema for action")) and " on a topic of " not in p]
        assert bool(said) == _plain_verdict(topic, payload, action), (topic, payload, said)


def test_a_problem_never_shows_a_phone_number():
    found = _fits(RES, {**OK, "data": {"ticket": {**VIEW, "phone_masked": "13800138000"}}}, action="window.start")
    assert found and not any(re.search(r"1[3-9]\d{9}", p) for p in found), found


def test_clears_are_allowed_where_the_contract_clears():
    for topic in (REQ, T.dev_cmd("n1", "d1", "show"), T.window_state("1"), T.node_status("n1"), T.central_kpi):
        assert problems(topic, b"") == [], topic
    assert problems("hallctl/v1/h1/sms/gateway-1/out", b"anything") == []  # reserved: the gateway's own format


def test_a_device_command_is_checked_against_its_birth_and_an_event_against_its_kind():
    spec = {"type": "object", "properties": {"level": {"type": "integer", "maximum": 15}},
            "required": ["level"], "additionalProperties": False}
    birth = {"v": 1, "node": "n1", "bd_seq": 1, "version": "0", "started": TS, "profiles": {}, "features": [], "ts": TS,
             "devices": [{"id": "d1", "profile": "p", "app": None, "kind": "window_display", "driver": "x",
                          "actions": ["brightness"], "model": {"vendor": "v", "name": "n"}, "features": [],
                          "action_specs": {"brightness": {"doc": "set it", "args": spec}}}]}
    log = [Message(T.node_birth("n1"), messages.encode(birth)),
           Message(T.dev_cmd("n1", "d1", "brightness"), messages.encode(messages.request("b1", {"level": 99}))),
           Message(T.dev_cmd("n1", "d1", "reboot"), messages.encode(messages.request("b2"))),
           Message(T.dev_cmd("n1", "d9", "brightness"), messages.encode(messages.request("b3", {"level": 1}))),
           Message(T.dev_res("n1", "d1", "brightness"), messages.encode(messages.response_error("b1", errors.BadRequest("data.level")))),
           Message(T.dev_event("n1", "d1", "pressed"), messages.encode(messages.device_event("d1", "pressed", {})))]
    found = {f.index: f for f in check(log)}
    assert "$.data.level: 99 is greater than the maximum of 15" in found[1].problems and found[1].refused == "answered bad_request"
    assert found[2].problems == ("the node's birth lists no action 'reboot' for device d1",) and found[2].refused is None
    assert found[3].problems == ("the node's birth lists no device 'd9'",)
    assert found[5].problems == ("device kind window_display declares no event 'pressed'",)
    assert set(found) == {1, 2, 3, 5}


def test_an_answer_is_checked_against_the_action_asked_and_unanswerable_requests_must_be_counted():
    view = {**OK, "data": {"ticket": VIEW}}
    log = [Message(REQ, messages.encode(messages.request("r1", {"queue": "a"}))),
           Message(RES, messages.encode(view)),  # window.start's shape, not ticket.issue's
           Message(f"{T.base}/central/req/Kiosk_1/queue.status", messages.encode(messages.request("r2"))),
           Message("hallctl/v1/h1/nonsense/x", b"{}")]
    found = {f.index: f for f in check(log)}
    assert "$.data: 'ahead' is a required property" in found[1].problems
    assert found[2].refused is None, "not counted on central/status: not refused"
    counted = log + [Message(T.central_status, messages.encode(messages.central_status("online", "c", unanswerable=1)))]
    assert {f.index: f.refused for f in check(counted)}[2] == "not answered: central counted it unanswerable"
    assert found[3].problems == ("no schema for topic hallctl/v1/h1/nonsense/x",) and found[3].refused is None


@settings(max_examples=60, deadline=None)
@given(kind=st.sampled_from(sorted(SCHEMA_OF_KIND)),
       doc=st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=12),
                        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
                        max_leaves=12))
def test_any_json_gets_a_list_of_problems_never_an_exception(kind, doc):
    topic = {"central_req": REQ, "central_res": RES, "event": T.event("ticket.issued"),
             "window_state": T.window_state("1"), "node_status": T.node_status("n1"), "node_birth": T.node_birth("n1"),
             "dev_state": T.dev_state("n1", "d1"), "dev_cmd": T.dev_cmd("n1", "d1", "show"),
             "dev_res": T.dev_res("n1", "d1", "show"), "dev_event": T.dev_event("n1", "d1", "pressed")}.get(kind)
    topic = topic or {"central_status": T.central_status, "central_staffing": T.central_staffing,
                      "central_kpi": T.central_kpi, "central_health": T.central_health, "board_state": T.board_state,
                      "central_catalogue": T.central_catalogue}[kind]
    found = problems(topic, json.dumps(doc, ensure_ascii=False).encode(), strict=True)
    assert isinstance(found, list) and all(isinstance(p, str) for p in found)
    assert found or isinstance(doc, dict)


# -- packaging: an extra of its own, never loaded by the daemons ---------------------------------------

def test_jsonschema_is_an_extra_the_daemons_never_import():
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["optional-dependencies"]
    assert extras["conformance"] == ["jsonschema>=4.18,<5"] and "jsonschema>=4.18,<5" in extras["test"]
    code = ("import sys, hallctl.cli, hallctl.node.daemon, hallctl.central.service, hallctl.contract; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('jsonschema', 'referencing')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_without_jsonschema_the_validator_names_the_extra(monkeypatch):
    caches = (validate._validator, validate._validator_class, validate._schema_problem)
    for cache in caches:
        cache.cache_clear()
    monkeypatch.setitem(sys.modules, "jsonschema", None)
    try:
        with pytest.raises(ImportError, match=r"hallctl\[conformance\]") as err:
            problems(RES, messages.encode(OK))
        assert err.value.name == "jsonschema"
    finally:
        monkeypatch.undo()
        for cache in caches:
            cache.cache_clear()


def test_the_command_line_checks_a_payload(tmp_path):
    payload = tmp_path / "status.json"
    payload.write_text(json.dumps({"v": 1, "state": "online", "instance": "c", "ts": TS}), encoding="utf-8")
    run = subprocess.run([sys.executable, "-m", "hallctl.contract", T.central_status, str(payload)],
                         capture_output=True, text=True)
    assert run.returncode == 1 and "'unanswerable' is a required property" in run.stdout
    run = subprocess.run([sys.executable, "-m", "hallctl.contract", T.node_status("n1")], capture_output=True, text=True,
                         input=json.dumps({"v": 1, "state": "ready", "bd_seq": 1, "ts": TS}))
    assert run.returncode == 0 and run.stdout.strip() == "ok"
    run = subprocess.run([sys.executable, "-m", "hallctl.contract", "--schema", T.board_state],
                         capture_output=True, text=True)
    assert run.returncode == 0 and Path(run.stdout.strip()).name == "board-state.json"


def test_docs_name_every_schema_and_its_topic():
    text = (ROOT / "docs" / "schemas.md").read_text(encoding="utf-8")
    for kind, name in SCHEMA_OF_KIND.items():
        assert f"`{name}`" in text, name
    rows = dict(re.findall(r"^\| `([a-z/<>{}+.#-]+)` \| `([a-z-]+\.json)`", text, re.M))
    for topic, name in rows.items():
        sample = topic.replace("<hall>", "h1").replace("<node>", "n1").replace("<dev>", "d1") \
            .replace("<window>", "1").replace("<client>", "c1").replace("<action>", "ticket.issue") \
            .replace("<type>", "ticket.issued")
        assert validate.schema_file_for(f"hallctl/v1/h1/{sample}") == name, topic
    assert set(rows.values()) == set(SCHEMA_OF_KIND.values())
