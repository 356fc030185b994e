"""Issue 8: every payload seen on the broker during the test suite fits its JSON Schema.

conftest.py records every Mosquitto the suite starts (tests/traffic_recorder.py) and runs
:func:`test_every_payload_of_the_run_fits_its_schema` last. It first makes traffic of its own, a
small hall on Mosquitto driven through every central action, every error code and device
commands and events, so that run alone it still checks every topic kind; then it checks all the
run's traffic, broker by broker, with :func:`hallctl.contract.traffic.check` in strict mode (a field
no schema lists is a finding too, so the schemas follow the code). A request the schema refuses is
fine when its receiver refused it as well; anything else off the contract fails the test, unless
a test below puts it on the bus on purpose (:data:`OFF_CONTRACT`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import defaultdict
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Mapping
from zoneinfo import ZoneInfo

import traffic_recorder
from hallkit import Observer, Running

from hallctl.access.roles import Client
from hallctl.bus.topics import Topics, parse
from hallctl.central.hours import OpeningHours
from hallctl.central.model import DepartmentSpec, HallSpec, MatterSpec, QueueSpec, WindowSpec
from hallctl.central.service import CentralService, MqttSettings
from hallctl.config import parse_node_config
from hallctl.contract.traffic import Finding, Message, check
from hallctl.contract.validate import SCHEMA_OF_KIND, central_actions, event_types
from hallctl.errors import CODES, ConfigError, DeviceError, DeviceTimeout
from hallctl.node.daemon import Node
from hallctl.sim.mosquitto import MosquittoProcess
from hallctl_drivers import Driver, Health, ProbeResult, register_driver, register_kind
from hallctl_drivers.kinds import Action, Kind
from hallctl_drivers.onbon_bx.emulator import BxEmulator

#: test (node id prefix) -> (the topic kinds it puts off-contract payloads on, None: any; why)
OFF_CONTRACT: dict[str, tuple[frozenset[str | None] | None, str]] = {
    "tests/test_brokers.py::": (None, "probes the brokers themselves with marker payloads"),
    "tests/test_broker_restart.py::": (frozenset({"dev_event"}),
                                       "counts the outbox's deliveries with numbered test payloads"),
    "tests/test_contract_defects.py::test_an_old_store_is_migrated_and_still_answers_its_duplicates": (
        frozenset({"central_res"}), "plants an answer stored by an older hallctl: central replays it byte for byte"),
    "tests/test_conformance.py::test_a_central_that_publishes_the_token_is_named_broken": (
        frozenset({"event"}), "its double of central publishes the ticket's token, on purpose"),
    "tests/test_conformance.py::test_a_central_silent_to_unreadable_requests_is_named_broken": (
        frozenset({"central_req"}), "its double of central leaves unreadable requests unanswered, on purpose"),
}
#: how many findings the failure lists (the count says how many there are)
SHOWN = 20

HALL = "contract-hall"
T = Topics(HALL)
TZ = ZoneInfo("Asia/Shanghai")
#: a Monday at 10:00 in the hall: open (08:00-17:00); the test moves the clock to 20:00 for hall_closed
OPEN_AT = datetime(2026, 11, 23, 10, 0, tzinfo=TZ)

# -- a stand-in device: each outcome a node can answer, on request -------------------------------

PROBE_KIND = Kind(
    name="contract_probe",
    doc="a stand-in device for the contract's traffic test: answers each outcome on request",
    actions={
        "echo": Action("echo", "answer the text", {
            "type": "object", "properties": {"text": {"type": "string", "maxLength": 64}},
            "required": ["text"], "additionalProperties": False}),
        "fail": Action("fail", "fail with this code", {
            "type": "object", "properties": {"code": {"enum": ["device_error", "timeout", "config_error", "internal"]}},
            "required": ["code"], "additionalProperties": False}),
        "press": Action("press", "report a button press (a device event)", {
            "type": "object", "properties": {"button": {"type": "integer", "minimum": 1, "maximum": 9}},
            "required": ["button"], "additionalProperties": False}),
    },
    events={"pressed": {"type": "object", "properties": {"button": {"type": "integer"}},
                        "required": ["button"], "additionalProperties": False}},
)
PROBE_PROFILE = """\
schema = 1
vendor = "hallctl tests"
name = "Contract probe"
source = "tests/test_contract_traffic.py"
kind = "contract_probe"
driver = "contract_probe"
"""


class ProbeDriver(Driver):
    kind = "contract_probe"

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    async def probe(self) -> ProbeResult:
        return ProbeResult(Health.OK)

    async def execute(self, action: str, args: Mapping[str, Any]) -> dict[str, Any]:
        if action == "press":
            self.emit("pressed", {"button": args["button"]})
            return {}
        if action == "fail":
            raise {"device_error": DeviceError("the probe says no"), "timeout": DeviceTimeout("the probe kept quiet"),
                   "config_error": ConfigError("the probe's profile says no", key="settings"),
                   "internal": RuntimeError("a driver bug, on purpose")}[args["code"]]
        return {"text": args["text"]}


# -- the hall this test runs ------------------------------------------------------------------------

def _hall() -> HallSpec:
    return HallSpec(
        HALL,
        {"a": QueueSpec("a", "A", "综合受理"), "b": QueueSpec("b", "B", "不动产")},
        {"1": WindowSpec("1", "1号窗口"), "2": WindowSpec("2", "2号窗口")},
        recall_limit=1, auto_no_show=True,
        departments={"tax": DepartmentSpec("tax", "税务")},
        matters={"deed": MatterSpec("deed", "不动产登记", "b", "tax")},
        hours=OpeningHours.parse(["08:00-17:00"]), name="契约测试大厅", ticket_link="https://hall.example/t/{token}",
    )


CLIENTS = (Client("kiosk-1", "kiosk"), Client("clerk-1", "window", ("1", "2")), Client("boss", "dashboard"))


class Clock:
    def __init__(self) -> None:
        self.now = OPEN_AT

    def __call__(self) -> datetime:
        return self.now


def _node_config(host: str, port: int, tmp: Path, shown: BxEmulator, dark: BxEmulator) -> dict[str, Any]:
    profiles = tmp / "profiles"
    profiles.mkdir(exist_ok=True)
    (profiles / "contract-probe.toml").write_text(PROBE_PROFILE, encoding="utf-8")
    return {
        "node": {"id": "window-1", "hall": HALL, "profile_dirs": [str(profiles)]},
        "mqtt": {"host": host, "port": port, "keepalive": 5},
        "store": {"path": str(tmp / "node.db")},
        "device": [
            {"id": "display", "profile": "onbon-bx-6k", "app": "window_display",
             "options": {"port": shown.port, "address": 1, "window": "1"}},
            # unplugged from the start: never comes up (device_offline, a problem on central/health)
            {"id": "spare", "profile": "onbon-bx-6k", "options": {"port": dark.port, "address": 1}},
            {"id": "probe", "profile": "contract-probe"},
        ],
    }


class HallClient:
    """Requests and commands over an outside client, each answer awaited."""

    def __init__(self, obs: Observer) -> None:
        self.obs = obs
        self.n = 0

    def _rid(self) -> str:
        self.n += 1
        return f"c-{self.n}"

    async def ask(self, client: str, action: str, data: dict[str, Any] | None = None, *, expect: str = "ok",
                  **envelope: Any) -> dict[str, Any]:
        rid = self._rid()
        await self.obs.publish(T.central_req(client, action), {"v": 1, "request_id": rid, "data": data or {}, **envelope})
        answer = (await self.obs.wait_for(T.central_res(client), lambda d: d.get("request_id") == rid))[0]
        assert _outcome(answer) == expect, (action, data, answer)
        return answer.get("data", {})

    async def command(self, device: str, action: str, data: dict[str, Any] | None = None, *, expect: str = "ok",
                      **envelope: Any) -> dict[str, Any]:
        rid = self._rid()
        await self.obs.publish(T.dev_cmd("window-1", device, action), {"v": 1, "request_id": rid, "data": data or {}, **envelope})
        answer = (await self.obs.wait_for(T.dev_res("window-1", device, action), lambda d: d.get("request_id") == rid))[0]
        assert _outcome(answer) == expect, (device, action, data, answer)
        return answer.get("data", {})

    async def restarted(self, device: str, mark: int) -> None:
        """Until the device's state, read from message ``mark`` on, went down and came back up."""
        topic, seen = T.dev_state("window-1", device), []
        async with asyncio.timeout(10):
            while not (False in seen and True in seen[seen.index(False):]):
                await asyncio.sleep(0.02)
                seen = [json.loads(p)["available"] for t, p, _ in self.obs.messages[mark:] if t == topic and p]


def _outcome(answer: dict[str, Any]) -> str:
    return "ok" if answer.get("status") == "ok" else str((answer.get("error") or {}).get("code"))


async def _drive(hall: HallClient, clock: Clock, svc: CentralService) -> None:
    ask, command = hall.ask, hall.command
    # the windows open, the kiosk issues every kind of ticket
    await ask("clerk-1", "window.open", {"window": "1", "clerk": "s1024"})
    await ask("clerk-1", "window.open", {"window": "2"})
    await ask("kiosk-1", "ticket.issue", {"queue": "a", "phone": "13800138000"})
    await ask("kiosk-1", "ticket.issue", {"matter": "deed", "channel": "online"})
    slot = OPEN_AT + timedelta(minutes=10)
    await ask("kiosk-1", "ticket.issue", {"queue": "a", "priority": "appointment", "slot": slot.isoformat()})
    late = OPEN_AT - timedelta(minutes=90)
    issued = await ask("kiosk-1", "ticket.issue", {"queue": "a", "priority": "appointment", "slot": late.isoformat()})
    assert "missed_slot" in issued
    await ask("kiosk-1", "ticket.issue", {"queue": "b", "birth_date": "19400101"})
    await ask("clerk-1", "ticket.issue", {"queue": "b", "channel": "window"})
    # the booking system books (one booking used by the kiosk, one cancelled); an online application
    svc.set_clients(CLIENTS + (Client("yuyue", "booking"),))
    await ask("yuyue", "appointment.book", {"code": "YY20261123", "matter": "deed", "slot": slot.isoformat(),
                                            "phone": "13900139000"})
    await ask("kiosk-1", "ticket.issue", {"appointment": "YY20261123"})
    await ask("yuyue", "appointment.book", {"code": "YY20261124", "queue": "a", "slot": late.isoformat()})
    await ask("yuyue", "appointment.cancel", {"code": "YY20261124"})
    await ask("kiosk-1", "ticket.issue", {"queue": "a", "online_code": "ZJWB20261123"})
    # window 1: call, recall, start, transfer, call, complete, call, no-show
    await ask("clerk-1", "window.call_next", {"window": "1"})
    await ask("clerk-1", "window.recall", {"window": "1"})
    await ask("clerk-1", "window.start", {"window": "1"})
    await ask("clerk-1", "window.transfer", {"window": "1", "matter": "deed"})
    await ask("clerk-1", "window.call_next", {"window": "1"})
    await ask("clerk-1", "window.complete", {"window": "1"})
    await ask("clerk-1", "window.call_next", {"window": "1"})
    await ask("clerk-1", "window.no_show", {"window": "1"})
    # window 2: a ticket recalled to the limit is passed by the next call (auto no-show)
    await ask("clerk-1", "window.call_next", {"window": "2"})
    await ask("clerk-1", "window.recall", {"window": "2"})
    passed = await ask("clerk-1", "window.call_next", {"window": "2"})
    assert "no_show" in passed
    await ask("clerk-1", "window.pause", {"window": "2"})
    await ask("clerk-1", "window.complete", {"window": "2"})
    await ask("clerk-1", "window.close", {"window": "2"})
    # the views
    await ask("kiosk-1", "queue.status")
    await ask("kiosk-1", "ticket.status", {"ticket": "A001"})
    await ask("boss", "kpi.summary")
    await ask("boss", "staffing.advice")
    # print-confirmed issuance: a ticket printed, one whose print failed, one never confirmed
    printed = await ask("kiosk-1", "ticket.issue", {"matter": "deed", "confirm": "print"})
    await ask("kiosk-1", "ticket.status", {"token": printed["token"]})
    await ask("kiosk-1", "ticket.confirm", {"ticket": printed["ticket"]["id"]})
    failed = await ask("kiosk-1", "ticket.issue", {"queue": "a", "confirm": "print"})
    await ask("kiosk-1", "ticket.void", {"ticket": failed["ticket"]["number"], "reason": "paper_out"})
    await ask("kiosk-1", "ticket.issue", {"queue": "a", "confirm": "print"})
    clock.now += timedelta(seconds=svc.hall.print_confirm_s)
    await hall.obs.wait_for(T.event("ticket.voided"), lambda d: d["data"]["reason"] == "not_confirmed")
    await hall.obs.wait_for(T.central_catalogue)
    # every error central answers
    await hall.obs.publish(T.central_req("kiosk-1", "ticket.issue"), b'{"v": 1, "request_id": ')
    await hall.obs.wait_for(T.central_res("kiosk-1"), lambda d: d.get("request_id") is None)
    await ask("kiosk-1", "ticket.frobnicate", expect="unknown_command")
    await ask("kiosk-1", "ticket.issue", {"queue": "zz"}, expect="not_found")
    await ask("clerk-1", "window.complete", {"window": "2"}, expect="conflict")
    gone = (datetime.now(timezone.utc) - timedelta(minutes=1)).isoformat()
    await ask("kiosk-1", "ticket.issue", {"queue": "a"}, expect="expired", expires_at=gone)
    await ask("kiosk-1", "window.open", {"window": "1"}, expect="forbidden")
    await ask("kiosk-1", "ticket.issue", {"queue": "a", "slot": slot.isoformat()}, expect="bad_request")

    # the node's devices: a real display's commands, then every error a node answers
    await command("display", "show", {"lines": ["请A001号", "到1号窗口办理"]})
    await command("display", "clear")
    await command("display", "ping")
    await command("display", "status")
    await command("display", "brightness", {"level": 9})
    await command("display", "probe")
    await command("display", "explode", expect="unknown_command")
    await command("display", "brightness", {"level": 99}, expect="bad_request")
    await command("display", "ping", expect="expired", expires_at=gone)
    await command("nowhere", "ping", expect="unknown_device")
    await command("spare", "ping", expect="device_offline")
    await command("probe", "echo", {"text": "你好"})
    await command("probe", "press", {"button": 2})
    await hall.obs.wait_for(T.dev_event("window-1", "probe", "pressed"))
    await command("probe", "fail", {"code": "config_error"}, expect="config_error")
    await command("probe", "fail", {"code": "internal"}, expect="internal")
    mark = len(hall.obs.messages)
    await command("probe", "fail", {"code": "timeout"}, expect="timeout")
    await hall.restarted("probe", mark)
    await command("probe", "fail", {"code": "device_error"}, expect="device_error")

    # housekeeping has published the staffing advice and the KPIs by now; then the hall closes
    await hall.obs.wait_for(T.central_staffing)
    await hall.obs.wait_for(T.central_kpi, lambda d: d.get("as_of") is not None)
    clock.now = OPEN_AT.replace(hour=20)
    await ask("kiosk-1", "ticket.issue", {"queue": "a"}, expect="hall_closed")
    assert svc.health.document()["problems"], "the spare display is a problem on central/health"


@contextlib.asynccontextmanager
async def _small_hall(tmp: Path):
    """Mosquitto, central and one node (a window display, a display that never comes up and the
    stand-in probe device), all running; yields the broker and the hall's driver."""
    register_kind(PROBE_KIND)
    register_driver("contract_probe", ProbeDriver)
    clock = Clock()
    with MosquittoProcess() as broker, BxEmulator() as shown, BxEmulator() as dark:
        dark.unplug()
        host, port = broker.host, broker.port
        svc = CentralService(_hall(), str(tmp / "central.db"), MqttSettings(host, port, keepalive=5), clock=clock,
                             housekeeping_every_s=0.1, clients=CLIENTS)
        node = Node(parse_node_config(_node_config(host, port, tmp, shown, dark)))
        async with Observer(host, port, [f"{T.base}/#"]) as obs:
            daemons = [Running(svc), Running(node)]
            try:
                async with asyncio.timeout(10):
                    await asyncio.gather(svc.ready.wait(), node.ready.wait())
                yield broker, HallClient(obs), clock, svc
            finally:
                for d in reversed(daemons):
                    await d.stop()


# -- the test -------------------------------------------------------------------------------------

async def test_every_payload_of_the_run_fits_its_schema(tmp_path):
    async with _small_hall(tmp_path) as (broker, hall, clock, svc):
        await _drive(hall, clock, svc)
    own = traffic_recorder.number_of(broker)
    assert own is not None, "the recorder must see this test's own broker"

    by_broker: dict[int, list[traffic_recorder.Recorded]] = defaultdict(list)
    for r in list(traffic_recorder.TRAFFIC):
        by_broker[r.broker].append(r)
    _covers_every_schema(by_broker[own])

    off, refused, excused = [], 0, defaultdict(int)
    for records in by_broker.values():
        for f in check([Message(r.topic, r.payload, r.retain) for r in records], strict=True):
            record = records[f.index]
            why = _off_contract_on_purpose(record, f)
            if f.refused:
                refused += 1
            elif why:
                excused[why] += 1
            else:
                off.append((record, f))
    # an entry for one test that ran and excused nothing is out of date (a whole file's may not
    # have run whole)
    ran = {r.test for r in traffic_recorder.TRAFFIC}
    stale = [key for key in OFF_CONTRACT if not key.endswith("::") and key in ran and key not in excused]
    print(f"{len(traffic_recorder.TRAFFIC)} messages on {len(by_broker)} brokers: {refused} requests refused "
          f"by their receivers, {sum(excused.values())} off the contract on purpose, {len(off)} off it")
    assert not off, _report(off)
    assert not stale, f"OFF_CONTRACT entries that excused nothing (their tests ran): {stale}"


def _off_contract_on_purpose(record: traffic_recorder.Recorded, finding: Finding) -> str | None:
    parsed = parse(record.topic)
    kind = parsed.kind if parsed is not None else None
    for key, (kinds, _why) in OFF_CONTRACT.items():
        if record.test.startswith(key) and (kinds is None or kind in kinds):
            return key
    return None


def _report(off: list[tuple[traffic_recorder.Recorded, Finding]]) -> str:
    lines = [f"{len(off)} payloads off the contract (first {min(SHOWN, len(off))}):"]
    for record, f in off[:SHOWN]:
        lines.append(f"  {record.topic} ({record.test})\n    payload {record.payload[:160]!r}\n    "
                     + "\n    ".join(f.problems[:3]))
    return "\n".join(lines)


def _covers_every_schema(records: list[traffic_recorder.Recorded]) -> None:
    """This test's own traffic reaches every schema: each topic kind, central action (answered ok),
    queue event type and error code, so a schema nobody exercises is noticed."""
    kinds, events, codes = set(), set(), set()
    asked: dict[tuple[str, str], str] = {}
    answered = set()
    for r in records:
        p = parse(r.topic)
        if p is None or not r.payload:
            continue
        kinds.add(p.kind)
        try:
            doc = json.loads(r.payload)
        except ValueError:  # the request this test sent unreadable on purpose
            continue
        if p.kind == "central_req" and "data" in doc:
            asked[(p.client or "", doc["request_id"])] = p.name or ""
        elif p.kind in ("central_res", "dev_res"):
            if doc.get("status") == "ok" and p.kind == "central_res":
                answered.add(asked.get((p.client or "", doc.get("request_id")), "?"))
            codes.add((doc.get("error") or {}).get("code"))
        elif p.kind == "event":
            events.add(doc["type"])
    assert kinds == set(SCHEMA_OF_KIND), f"topic kinds never seen: {set(SCHEMA_OF_KIND) - kinds}"
    assert answered >= set(central_actions()), f"actions never answered ok: {set(central_actions()) - answered}"
    assert events == set(event_types()), f"event types never seen: {set(event_types()) - events}"
    assert codes - {None} == set(CODES), f"error codes never answered: {set(CODES) - codes}"
