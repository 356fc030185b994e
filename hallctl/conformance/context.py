"""What a conformance check works with: the run's connection and what central said at the start,
fresh request ids, helpers that send a request and wait for its answer, and the evidence trail
(what the check sent and what came back) a broken promise is reported with.

A check ends by returning (kept, with an optional note) or by raising :class:`Broken` or
:class:`NotChecked`; a request nobody answers in time is :class:`Broken` by itself ("every request
is answered").
"""

from __future__ import annotations

import asyncio
import json
import os
from dataclasses import dataclass, field
from typing import Any, Callable

from hallctl.bus.topics import Topics
from hallctl.conformance.probe import Probe, Seen
from hallctl.privacy import scrub

#: evidence payloads are cut to this many characters (the report shows fewer to a person)
EVIDENCE_CHARS = 4000


class Broken(Exception):
    """The promise is broken; ``reason`` says how (the trail shows what was sent and received)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class NotChecked(Exception):
    """The promise could not be checked here (the hall is closed, no window to use, ...)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Step:
    """One message of a check's trail: ``way`` is ``sent`` or ``got``. Personal data masked."""

    way: str
    topic: str
    payload: str
    retain: bool = False

    @classmethod
    def of(cls, way: str, topic: str, payload: bytes, retain: bool = False, hide: tuple[str, ...] = ()) -> "Step":
        """``hide``: more values to mask (what scrub does not know as personal, a birth date)."""
        text = payload.decode("utf-8", "replace") if payload else "(empty)"
        text = scrub(text)
        for value in hide:
            text = text.replace(value, "*" * len(value))
        if len(text) > EVIDENCE_CHARS:
            text = text[:EVIDENCE_CHARS] + f"... ({len(payload)} bytes)"
        return cls(way, topic, text, retain)

    def to_dict(self) -> dict[str, Any]:
        return {"way": self.way, "topic": self.topic, "payload": self.payload, "retain": self.retain}


@dataclass
class Answer:
    """A response as it came: the document and its raw bytes."""

    doc: dict[str, Any]
    raw: bytes
    seen: Seen

    @property
    def ok(self) -> bool:
        return self.doc.get("status") == "ok"

    @property
    def data(self) -> dict[str, Any]:
        data = self.doc.get("data")
        return data if isinstance(data, dict) else {}

    @property
    def code(self) -> str | None:
        error = self.doc.get("error")
        return error.get("code") if isinstance(error, dict) else None

    @property
    def detail(self) -> dict[str, Any]:
        error = self.doc.get("error")
        detail = error.get("detail") if isinstance(error, dict) else None
        return detail if isinstance(detail, dict) else {}


@dataclass
class Issued:
    """A ticket this run issued: the answer, its ticket view, its event, and the log mark before
    the request was sent."""

    answer: Answer
    ticket: dict[str, Any]
    event: Seen
    mark: int


@dataclass
class Run:
    """What the checks of one run share: the connection, who it is, what central said first."""

    probe: Probe
    topics: Topics
    #: the <client> level of this run's request topics
    client: str
    #: a client id outside the id rule, for the unanswerable-request check
    bad_client: str
    timeout: float
    #: the window the run may open, call at and close; None: the hall lists none
    window: str | None
    #: the queue tickets are issued in; None: the hall lists none
    queue: str | None
    #: central/status as first read (retained)
    status: dict[str, Any] | None = None
    #: how long the run waits after a request for anything it must not cause (a second event)
    settle_s: float = 0.5
    #: request ids of this run start with it: unique per run, however often it runs as one client
    run_id: str = field(default_factory=lambda: os.urandom(3).hex())
    counter: int = 0
    #: what checks found that later ones read (the phone sent, tickets issued)
    notes: dict[str, Any] = field(default_factory=dict)
    #: personal values the run sends that evidence must not show (scrub masks phone numbers)
    hidden: tuple[str, ...] = ()


class Context:
    """The API of one check over the shared :class:`Run`, with the check's own evidence trail."""

    def __init__(self, run: Run) -> None:
        self.run = run
        self.probe = run.probe
        self.topics = run.topics
        self.trail: list[Step] = []

    # -- ids and topics ---------------------------------------------------------------------
    def rid(self, tag: str) -> str:
        self.run.counter += 1
        return f"conf-{self.run.run_id}-{self.run.counter}-{tag}"[:64]

    def req_topic(self, action: str) -> str:
        """``central/req/<client>/<action>`` without the id rule's check (a check may need a bad one)."""
        return f"{self.topics.base}/central/req/{self.run.client}/{action}"

    @property
    def res_topic(self) -> str:
        return f"{self.topics.base}/central/res/{self.run.client}"

    # -- sending and answers ----------------------------------------------------------------
    async def send(self, topic: str, body: bytes | dict[str, Any], *, retain: bool = False) -> int:
        """Publish ``body`` (a document is sent as compact UTF-8 JSON); the log mark before it."""
        payload = body if isinstance(body, bytes) else encode(body)
        mark = self.probe.mark()
        self.step("sent", topic, payload, retain)
        await self.probe.publish(topic, payload, retain=retain)
        return mark

    def step(self, way: str, topic: str, payload: bytes, retain: bool = False) -> None:
        """Put a message on the trail, personal data masked."""
        self.trail.append(Step.of(way, topic, payload, retain, self.run.hidden))

    async def answer(self, match: Callable[[Any], bool], since: int, what: str, timeout: float | None = None) -> Answer:
        """The first response to this run's client from ``since`` whose request_id satisfies
        ``match``; Broken when none comes in time."""
        limit = self.run.timeout if timeout is None else timeout

        def hit(s: Seen) -> bool:
            doc = s.doc()
            return s.topic == self.res_topic and isinstance(doc, dict) and match(doc.get("request_id"))

        try:
            seen = await self.probe.wait(hit, since=since, timeout=limit)
        except TimeoutError:
            raise Broken(f"no answer to {what} on {self.res_topic} within {limit:g} s") from None
        return self.got(seen)

    def got(self, seen: Seen) -> Answer:
        """Put a received message on the trail."""
        self.step("got", seen.topic, seen.payload, seen.retain)
        doc = seen.doc()
        return Answer(doc if isinstance(doc, dict) else {}, seen.payload, seen)

    async def request(self, action: str, data: dict[str, Any] | None = None, *, rid: str | None = None,
                      envelope: dict[str, Any] | None = None, retain: bool = False) -> Answer:
        """A well-formed request on ``central/req/<client>/<action>`` and its answer."""
        rid = rid or self.rid(action.replace(".", "-"))
        body = {"v": 1, "request_id": rid, "data": data or {}, **(envelope or {})}
        mark = await self.send(self.req_topic(action), body, retain=retain)
        return await self.answer(lambda r: r == rid, mark, f"{action} {rid}")

    # -- expectations -----------------------------------------------------------------------
    def expect(self, condition: bool, reason: str) -> None:
        if not condition:
            raise Broken(reason)

    def expect_error(self, answer: Answer, code: str, what: str) -> None:
        """``answer`` is an error with ``code``; a ``forbidden`` says the role may not call it here."""
        if answer.code == "forbidden" and code != "forbidden":
            raise NotChecked(f"central answers forbidden: client {self.run.client!r} may not call it "
                             "(run as a client whose role may: docs/conformance.md)")
        self.expect(answer.doc.get("status") == "error" and answer.code == code,
                    f"{what}: expected error {code}, got {_outcome(answer)}")

    def expect_ok(self, answer: Answer, action: str) -> dict[str, Any]:
        """The data of an ok answer. hall_closed (ticket.issue) and forbidden make the check
        impossible here, not broken; any other error is broken."""
        if answer.code == "hall_closed":
            opens = answer.detail.get("opens_at")
            raise NotChecked("the hall issues no tickets now (hall_closed" + (f"; opens at {opens}" if opens else "")
                             + "): run it in opening hours or against a test hall")
        if answer.code == "forbidden":
            raise NotChecked(f"central answers forbidden: client {self.run.client!r} may not call {action} "
                             "(run as a client whose role may: docs/conformance.md)")
        self.expect(answer.ok, f"{action}: expected status ok, got {_outcome(answer)}")
        return answer.data

    async def issue(self, data: dict[str, Any] | None = None, *, rid: str | None = None) -> Issued:
        """ticket.issue in the run's queue: the answer, its ticket view and the ticket's
        ``event/ticket.issued`` (Broken if it never comes; waiting for it also keeps a late event
        of this check out of the next one's)."""
        if self.run.queue is None:
            raise NotChecked("queue.status lists no queue to issue a ticket in (give --queue)")
        mark = self.probe.mark()
        answer = await self.request("ticket.issue", {"queue": self.run.queue, **(data or {})}, rid=rid)
        ticket = self.expect_ok(answer, "ticket.issue").get("ticket")
        self.expect(isinstance(ticket, dict) and isinstance(ticket.get("number"), str),
                    "ticket.issue: the answer has no ticket with a number")
        self.run.notes.setdefault("issued", []).append(ticket["number"])
        event = await self.event("ticket.issued", lambda d: d.get("number") == ticket["number"], mark)
        return Issued(answer, ticket, event, mark)

    async def event(self, type_: str, pred: Callable[[dict[str, Any]], bool], since: int,
                    what: str | None = None) -> Seen:
        """The first ``event/<type_>`` from ``since`` whose data satisfies ``pred``; Broken if none."""
        topic = self.topics.event(type_)

        def hit(s: Seen) -> bool:
            doc = s.doc()
            return s.topic == topic and isinstance(doc, dict) and isinstance(doc.get("data"), dict) and pred(doc["data"])

        try:
            seen = await self.probe.wait(hit, since=since, timeout=self.run.timeout)
        except TimeoutError:
            raise Broken(f"no {what or type_} event on {topic} within {self.run.timeout:g} s") from None
        self.got(seen)
        return seen

    async def settle(self) -> None:
        """Give anything that must not come (a second event, a second answer) time to come."""
        await asyncio.sleep(self.run.settle_s)


def encode(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _outcome(answer: Answer) -> str:
    if answer.ok:
        return "status ok"
    error = answer.doc.get("error")
    if isinstance(error, dict):
        return f"error {error.get('code')} ({scrub(str(error.get('message', '')))[:160]})"
    return f"status {answer.doc.get('status')!r}"
