"""The promises of topic contract v1 (docs/topics.md) that an outside client can check against a
running central, one :class:`Check` each, in the order a run takes them.

Each check sends what it needs with fresh request ids and reads the answers as any client would;
it returns when the promise is kept (optionally with a note), raises :class:`Broken` with the
reason (the runner adds what was sent and what came back) or :class:`NotChecked` with why not.
The last few look over everything the run read (:data:`RUN_WIDE`). docs/conformance.md lists
them; a new check goes in both.
"""

from __future__ import annotations

import asyncio
import json
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Awaitable, Callable

from hallctl.bus.messages import MAX_PAYLOAD
from hallctl.bus.topics import Topics
from hallctl.conformance.context import Broken, Context, NotChecked, encode
from hallctl.errors import CODES

#: the phone number the personal-data check gives ticket.issue (the contract's own example), and
#: how the contract says it must appear on open topics
PHONE, PHONE_MASKED = "13800138000", "138****8000"
#: a birth date as read from an ID card: it must never be published
BIRTH_DATE = "19500101"
#: ... as it may be written on a topic
_BIRTH_DATES = (BIRTH_DATE, "1950-01-01")
#: deeper than the contract's 32 levels
TOO_DEEP = 40
#: a retained request may stay retained at the broker this long (docs/topics.md: "at most 60 s")
RETAINED_FOR_AT_MOST_S = 60.0
#: the quick look for a clear before that bound
CLEAR_QUICK_S = 3.0
#: the action the retained-request check sends: read-only (harmless in any hall), and on a topic no
#: other check uses, as a receiver clears a topic at most once a minute after the first time
RETAINED_ACTION = "staffing.advice"

Outcome = str | None  # a kept check's note


@dataclass(frozen=True)
class Check:
    id: str
    title: str
    #: the section of docs/topics.md the promise is made in
    section: str
    run: Callable[[Context], Awaitable[Outcome]]
    #: this check's time limit in multiples of the answer timeout, plus seconds
    limit: tuple[float, float] = (4.0, 2.0)

    def limit_s(self, timeout: float) -> float:
        return self.limit[0] * timeout + self.limit[1]


# -- central status and read-only actions ---------------------------------------------------------

async def status_retained(ctx: Context) -> Outcome:
    topic = ctx.topics.central_status
    kept = await ctx.probe.retained_at_broker(topic)
    ctx.expect(bool(kept), f"a new subscriber to {topic} gets nothing retained within {ctx.run.timeout:g} s")
    ctx.step("got", topic, kept[-1], True)
    doc = _json(kept[-1])
    ctx.expect(isinstance(doc, dict), "central/status is not a JSON object")
    ctx.expect(doc.get("v") == 1, f"v is {doc.get('v')!r}, not 1")
    ctx.expect(doc.get("state") == "online", f"state is {doc.get('state')!r}, not online")
    ctx.expect(isinstance(doc.get("instance"), str) and bool(doc["instance"]), "no instance")
    ctx.expect(_iso_with_offset(doc.get("ts")), f"ts {doc.get('ts')!r} is not an ISO 8601 time with an offset")
    count = doc.get("unanswerable")
    ctx.expect(isinstance(count, int) and not isinstance(count, bool) and count >= 0,
               f"the online status carries no unanswerable count (got {count!r})")
    return None


async def queue_status(ctx: Context) -> Outcome:
    data = ctx.expect_ok(await ctx.request("queue.status"), "queue.status")
    for key in ("waiting", "predicted_wait_min", "windows"):
        ctx.expect(isinstance(data.get(key), dict), f"queue.status: {key} is not an object")
    ctx.expect(all(isinstance(n, int) for n in data["waiting"].values()), "queue.status: a waiting count is no integer")
    for window, state in data["windows"].items():
        ctx.expect(isinstance(state, dict) and state.get("state") in ("open", "paused", "closed"),
                   f"queue.status: window {window} has no state open|paused|closed")
    return f"{len(data['waiting'])} queues, {len(data['windows'])} windows"


# -- tickets --------------------------------------------------------------------------------------

TICKET_VIEW = ("id", "number", "queue", "status", "issued_at", "called_at", "window", "recalls", "channel",
               "phone_masked", "priority", "slot", "first_window", "predicted_wait_min")


async def ticket_issue(ctx: Context) -> Outcome:
    issued = await ctx.issue()
    answer, ticket = issued.answer, issued.ticket
    missing = [k for k in TICKET_VIEW if k not in ticket]
    ctx.expect(not missing, f"the ticket view lacks {', '.join(missing)}")
    ctx.expect(ticket["status"] == "waiting", f"a new ticket is {ticket['status']!r}, not waiting")
    ctx.expect(ticket["queue"] == ctx.run.queue, f"issued in queue {ticket['queue']!r}, asked for {ctx.run.queue!r}")
    missing = [k for k in ("ahead", "people_ahead", "predicted_wait_min") if k not in answer.data]
    ctx.expect(not missing, f"ticket.issue's answer lacks {', '.join(missing)}")
    status = ctx.expect_ok(await ctx.request("ticket.status", {"ticket": ticket["number"]}), "ticket.status")
    found = status.get("ticket")
    ctx.expect(isinstance(found, dict) and found.get("id") == ticket["id"],
               f"ticket.status {ticket['number']} does not find the ticket just issued")
    return f"issued {ticket['number']}"


async def duplicate_byte_for_byte(ctx: Context) -> Outcome:
    rid = ctx.rid("dup")
    issued = await ctx.issue(rid=rid)
    first = issued.answer
    mark = await ctx.send(ctx.req_topic("ticket.issue"), _request(rid, {"queue": ctx.run.queue}))
    again = await ctx.answer(lambda r: r == rid, mark, f"the same ticket.issue {rid} again")
    await ctx.settle()
    others = _new_tickets(ctx, issued.mark)
    problems = [] if again.raw == first.raw else ["the second answer is not the first, byte for byte"]
    if others:
        problems.append(f"it ran again: ticket.issued for {', '.join(others)} after the duplicate")
    ctx.expect(not problems, "; ".join(problems))
    return None


async def request_id_reused(ctx: Context) -> Outcome:
    rid = ctx.rid("reuse")
    before = ctx.probe.mark()
    first = await ctx.request("ticket.issue", {"queue": ctx.run.queue or "a"}, rid=rid)
    if first.code == "forbidden":
        raise NotChecked(f"central answers forbidden: client {ctx.run.client!r} may not call ticket.issue")
    if first.ok:  # (else hall_closed, say: stored all the same) its event, before it can land in another check's
        number = (first.data.get("ticket") or {}).get("number")
        ctx.run.notes.setdefault("issued", []).append(number)
        await ctx.event("ticket.issued", lambda d: d.get("number") == number, before)
    # an action that would do nothing harmful if it ran: recall at a window serving nobody
    window = ctx.run.window or "1"
    mark = ctx.probe.mark()
    other = await ctx.request("window.recall", {"window": window}, rid=rid)
    ctx.expect_error(other, "bad_request", f"window.recall with ticket.issue's request_id {rid}")
    ctx.expect(other.detail.get("field") == "request_id",
               f"the bad_request names detail.field {other.detail.get('field')!r}, not 'request_id'")
    again = await ctx.send(ctx.req_topic("ticket.issue"), _request(rid, {"queue": ctx.run.queue or "a"}))
    stored = await ctx.answer(lambda r: r == rid, again, f"ticket.issue {rid} again")
    ctx.expect(stored.raw == first.raw, "after the reuse, ticket.issue again is not answered with its first answer")
    ctx.expect(not _events(ctx, "ticket.recalled", mark, lambda d: d.get("window") == window),
               "the reused request_id's window.recall ran")
    return None


async def expired(ctx: Context) -> Outcome:
    past = (datetime.now(timezone.utc) - timedelta(hours=1)).isoformat(timespec="milliseconds")
    mark = ctx.probe.mark()
    answer = await ctx.request("ticket.issue", {"queue": ctx.run.queue or "a"}, envelope={"expires_at": past})
    if answer.code == "hall_closed":
        ctx.expect_ok(answer, "ticket.issue")  # raises NotChecked with the reason
    ctx.expect_error(answer, "expired", "ticket.issue with expires_at an hour ago")
    await ctx.settle()
    issued = _new_tickets(ctx, mark)
    ctx.expect(not issued, f"it ran all the same: ticket.issued for {', '.join(issued)}")
    return None


# -- bad input ------------------------------------------------------------------------------------

async def bad_json(ctx: Context) -> Outcome:
    rid = ctx.rid("not-json")  # inside a body that cannot be read: the answer must not claim it
    mark = await ctx.send(ctx.req_topic("ticket.issue"), b'{"v": 1, "request_id": "' + rid.encode() + b'", "data": {')
    answer = await ctx.answer(lambda r: r in (None, rid), mark, "a body that is not JSON")
    ctx.expect("request_id" in answer.doc and answer.doc["request_id"] is None,
               f"request_id is {answer.doc.get('request_id', '(missing)')!r}, not null")
    ctx.expect_error(answer, "bad_request", "a body that is not JSON")
    return None


async def json_array(ctx: Context) -> Outcome:
    rid = ctx.rid("array")
    body = b"[" + encode(_request(rid, {"queue": ctx.run.queue or "a"})) + b"]"
    mark = await ctx.send(ctx.req_topic("ticket.issue"), body)
    answer = await ctx.answer(lambda r: r in (None, rid), mark, "a JSON array body")
    ctx.expect_error(answer, "bad_request", "a JSON array body")
    return None


async def unknown_envelope_field(ctx: Context) -> Outcome:
    rid = ctx.rid("envelope")
    mark = await ctx.send(ctx.req_topic("queue.status"), {**_request(rid, {}), "reply_to": "elsewhere"})
    answer = await ctx.answer(lambda r: r in (None, rid), mark, f"queue.status {rid} with an unknown envelope field")
    ctx.expect_error(answer, "bad_request", "an unknown envelope field")
    ctx.expect(answer.doc.get("request_id") == rid, "the answer to a readable request does not carry its request_id")
    return None


async def nesting_too_deep(ctx: Context) -> Outcome:
    rid = ctx.rid("deep")
    nested: Any = "x"
    for _ in range(TOO_DEEP):
        nested = {"a": nested}
    mark = await ctx.send(ctx.req_topic("ticket.issue"), _request(rid, {"queue": nested}))
    answer = await ctx.answer(lambda r: r in (None, rid), mark, f"ticket.issue nested {TOO_DEEP} deep")
    ctx.expect_error(answer, "bad_request", f"a request nested {TOO_DEEP} deep")
    return None


async def unknown_action(ctx: Context) -> Outcome:
    answer = await ctx.request("conformance.no_such_action")
    ctx.expect_error(answer, "unknown_command", "an action central does not implement")
    return None


async def empty_payload_ignored(ctx: Context) -> Outcome:
    mark = await ctx.send(ctx.req_topic("queue.status"), b"")
    rid = ctx.rid("after-empty")
    after = await ctx.send(ctx.req_topic("queue.status"), _request(rid, {}))
    answer = await ctx.answer(lambda r: r == rid, after, f"queue.status {rid}")
    await ctx.settle()
    extra = [s for s in ctx.probe.since(mark, lambda s: s.topic == ctx.res_topic) if s.index != answer.seen.index]
    for s in extra:
        ctx.got(s)
    ctx.expect(not extra, "the empty message was answered as a request")
    return None


# -- personal data --------------------------------------------------------------------------------

async def phone_masked(ctx: Context) -> Outcome:
    ctx.run.notes["phone_sent"] = True
    ctx.run.hidden += _BIRTH_DATES
    issued = await ctx.issue({"phone": PHONE, "birth_date": BIRTH_DATE})
    leaks = _personal(ctx, 0)
    ctx.expect(not leaks, f"the phone number or birth date sent appears on {', '.join(leaks)}")
    masked = issued.ticket.get("phone_masked")
    ctx.expect(masked == PHONE_MASKED, f"the answer's ticket has phone_masked {masked!r}, not {PHONE_MASKED!r}")
    masked = issued.event.doc()["data"].get("phone_masked")
    ctx.expect(masked == PHONE_MASKED, f"event/ticket.issued has phone_masked {masked!r}, not {PHONE_MASKED!r}")
    return None


async def personal_data_never_published(ctx: Context) -> Outcome:
    if not ctx.run.notes.get("phone_sent"):
        raise NotChecked("phone-masked did not run: no phone number was sent")
    leaks = _personal(ctx, 0)
    ctx.expect(not leaks, f"the phone number or birth date sent appears on {', '.join(leaks)}")
    return f"{len(ctx.probe.seen)} messages read"


def _personal(ctx: Context, since: int) -> list[str]:
    """Topics (not requests) whose payloads carry the phone or the birth date this run sent."""
    leaks = []
    for s in ctx.probe.since(since, lambda s: s.kind != "central_req" and bool(s.payload)):
        text = s.text()
        if any(value in text for value in _BIRTH_DATES) or PHONE in text:
            ctx.step("got", s.topic, s.payload, s.retain)
            leaks.append(s.topic)
    return sorted(set(leaks))


# -- a window -------------------------------------------------------------------------------------

async def window_call(ctx: Context) -> Outcome:
    window = ctx.run.window
    if window is None:
        raise NotChecked("queue.status lists no window (give --window)")
    before = ctx.expect_ok(await ctx.request("queue.status"), "queue.status").get("windows", {}).get(window)
    if not isinstance(before, dict):
        raise NotChecked(f"queue.status does not list window {window} (--window)")
    if before.get("ticket"):
        raise NotChecked(f"window {window} is serving {before['ticket'].get('number')}: give --window a free one")
    await ctx.issue()
    called: dict[str, Any] | None = None
    completed = False
    try:
        if before.get("state") != "open":
            opened = ctx.expect_ok(await ctx.request("window.open", {"window": window}), "window.open")
            ctx.expect((opened.get("window") or {}).get("state") == "open", "window.open: the answer's window is not open")
        since = ctx.probe.mark()
        answer = await ctx.request("window.call_next", {"window": window})
        called = ctx.expect_ok(answer, "window.call_next").get("ticket")
        if called is None:
            raise NotChecked(f"window {window} called nobody: it serves none of the queues with waiting tickets "
                             f"(this run's are in {ctx.run.queue}; give --window or --queue)")
        number = called.get("number")
        ctx.expect(called.get("status") == "called" and called.get("window") == window,
                   f"call_next's ticket is {called.get('status')!r} at {called.get('window')!r}, not called at {window}")
        state_topic = ctx.topics.window_state(window)
        await _doc_on(ctx, state_topic, since, lambda d: (d.get("ticket") or {}).get("number") == number
                      and d["ticket"].get("status") == "called" and d.get("state") == "open",
                      f"{state_topic} showing {number} called")
        await ctx.event("ticket.called", lambda d: d.get("number") == number and d.get("window") == window, since)
        await _doc_on(ctx, ctx.topics.board_state, since,
                      lambda d: any(c.get("number") == number and c.get("window") == window for c in d.get("calls") or []),
                      f"{ctx.topics.board_state} with the call of {number}")
        kept = await ctx.probe.retained_at_broker(state_topic)
        ctx.expect(bool(kept), f"a new subscriber to {state_topic} gets nothing retained")
        ctx.expect(((_json(kept[-1]) or {}).get("ticket") or {}).get("number") == number,
                   f"the retained {state_topic} does not show {number}")
        done = ctx.expect_ok(await ctx.request("window.complete", {"window": window}), "window.complete")
        completed = True
        ctx.expect((done.get("ticket") or {}).get("status") == "done", "window.complete: the ticket is not done")
        await ctx.event("ticket.completed", lambda d: d.get("number") == number, since)
        return f"called and completed {number} at window {window}"
    finally:
        await _tidy_window(ctx, window, before.get("state"), called is not None and not completed)


async def _tidy_window(ctx: Context, window: str, state_before: Any, complete: bool) -> None:
    """Leave the window as it was: the ticket called completed, the window closed or paused again."""
    try:
        if complete:
            await ctx.request("window.complete", {"window": window})
        if state_before in ("closed", "paused"):
            await ctx.request(f"window.{'close' if state_before == 'closed' else 'pause'}", {"window": window})
    except Exception:  # noqa: BLE001 - the check's own result says what went wrong
        pass


async def _doc_on(ctx: Context, topic: str, since: int, pred: Callable[[dict[str, Any]], bool], what: str) -> None:
    try:
        seen = await ctx.probe.wait(lambda s: s.topic == topic and isinstance(s.doc(), dict) and pred(s.doc()),
                                    since=since, timeout=ctx.run.timeout)
    except TimeoutError:
        raise Broken(f"no {what} within {ctx.run.timeout:g} s") from None
    ctx.got(seen)


def reads(topics: Topics, client: str, bad_client: str) -> list[str]:
    """Topics beyond the public ones the checks read: the request topics they send on where a
    client must see its own request to know the broker took it."""
    base = topics.base
    return [f"{base}/central/req/{bad_client}/+", f"{base}/central/res/{bad_client}",
            f"{base}/central/req/{client}/{RETAINED_ACTION}"]


# -- topics that cannot be answered; retained requests --------------------------------------------

async def unanswerable_counted(ctx: Context) -> Outcome:
    status_topic = ctx.topics.central_status
    before = [s.doc() for s in ctx.probe.seen if s.topic == status_topic and isinstance(s.doc(), dict)]
    count = before[-1].get("unanswerable") if before else None
    ctx.expect(isinstance(count, int), "central/status carries no unanswerable count to watch")
    rid = ctx.rid("unanswerable")
    topic = f"{ctx.topics.base}/central/req/{ctx.run.bad_client}/queue.status"
    mark = await ctx.send(topic, _request(rid, {}))
    try:  # this client reads that topic: seeing its own request says the broker took it
        await ctx.probe.wait(lambda s: s.topic == topic and bool(s.payload), since=mark, timeout=min(ctx.run.timeout, 2.0))
    except TimeoutError:
        raise NotChecked(f"the broker did not deliver {topic} back to this client: an ACL refused the publish "
                         "(or the read), so whether central saw it cannot be told") from None
    try:
        seen = await ctx.probe.wait(lambda s: s.topic == status_topic and isinstance(s.doc(), dict)
                                    and isinstance(s.doc().get("unanswerable"), int) and s.doc()["unanswerable"] > count,
                                    since=mark, timeout=ctx.run.timeout)
    except TimeoutError:
        raise Broken(f"central/status unanswerable stayed at {count} for {ctx.run.timeout:g} s") from None
    ctx.got(seen)
    await ctx.settle()
    answered = ctx.probe.since(mark, lambda s: s.kind == "central_res" and (
        s.topic.endswith(f"/{ctx.run.bad_client}") or (s.doc() or {}).get("request_id") == rid))
    for s in answered:
        ctx.got(s)
    ctx.expect(not answered, "a request on a topic with an invalid client id was answered")
    return f"unanswerable {count} -> {seen.doc()['unanswerable']}"


async def retained_request_cleared(ctx: Context) -> Outcome:
    """:data:`RETAINED_ACTION` published with the retain flag (any answer will do: a central that
    does not implement it answers unknown_command, one whose roles refuse it forbidden)."""
    rid = ctx.rid("retained")
    topic = ctx.req_topic(RETAINED_ACTION)
    mark = await ctx.send(topic, _request(rid, {}), retain=True)
    loop = asyncio.get_running_loop()
    started = loop.time()
    cleared = False
    try:
        await ctx.answer(lambda r: r == rid, mark, f"the retained {RETAINED_ACTION} {rid}")
        try:  # this client reads that topic: seeing its own request says a new subscriber could see it
            await ctx.probe.wait(lambda s: s.topic == topic and bool(s.payload), since=mark, timeout=min(ctx.run.timeout, 2.0))
        except TimeoutError:
            raise NotChecked(f"this client may not read {topic} (an ACL): whether the request stays retained "
                             "there cannot be seen") from None
        await ctx.settle()
        answers = ctx.probe.since(mark, lambda s: s.topic == ctx.res_topic and (s.doc() or {}).get("request_id") == rid)
        ctx.expect(len(answers) == 1, f"the retained request was answered {len(answers)} times")
        while True:
            kept = await ctx.probe.retained_at_broker(topic, ctx.topics.central_status)
            waited = loop.time() - started
            if not kept:
                cleared = True
                return None if waited <= CLEAR_QUICK_S else (
                    f"cleared after {waited:.0f} s (this client's {topic} had been used within the last minute)")
            if waited > RETAINED_FOR_AT_MOST_S + 2:
                ctx.step("got", topic, kept[-1], True)
                raise Broken(f"still retained at the broker {waited:.0f} s after it was answered")
            await asyncio.sleep(0.3 if waited < CLEAR_QUICK_S else 2.0)
    finally:
        if not cleared:  # tidy: the run leaves no retained request behind
            try:
                await ctx.probe.publish(topic, b"", retain=True)
            except Exception:  # noqa: BLE001 - the check's own result says what went wrong
                pass


# -- over everything the run read -----------------------------------------------------------------

# -- the kiosk's catalogue and print-confirmed issuance ---------------------------------------------

async def catalogue_retained(ctx: Context) -> Outcome:
    topic = ctx.topics.central_catalogue
    kept = await ctx.probe.retained_at_broker(topic, ctx.topics.central_status)
    ctx.expect(bool(kept), f"a new subscriber to {topic} gets nothing retained")
    ctx.step("got", topic, kept[-1], True)
    doc = _json(kept[-1])
    ctx.expect(isinstance(doc, dict) and doc.get("v") == 1, "the catalogue is not a JSON object with v 1")
    queues = doc.get("queues")
    ctx.expect(isinstance(queues, list) and all(isinstance(q, dict) and q.get("id") and q.get("name")
                                                for q in queues), "queues is not a list of {id, name, ...}")
    ids = [q["id"] for q in queues]
    ctx.expect(ctx.run.queue is None or ctx.run.queue in ids,
               f"queue {ctx.run.queue!r} (from queue.status) is not in the catalogue's {ids}")
    ctx.expect(isinstance(doc.get("open"), bool), f"open is {doc.get('open')!r}, not true or false")
    ctx.expect("walkin" in (doc.get("classes") or []), "classes does not offer walkin")
    waiting = doc.get("waiting")
    ctx.expect(isinstance(waiting, dict) and set(waiting) == set(ids),
               "waiting does not give a count for each queue of the catalogue")
    return f"{len(ids)} queues, {len(doc.get('matters') or [])} matters, issuing {'open' if doc['open'] else 'closed'}"


async def print_confirmed(ctx: Context) -> Outcome:
    """A pending ticket is confirmed into the line; another is voided, its number never reused;
    the token of either appears on no topic but the issuing client's answers."""
    mark = ctx.probe.mark()
    first = await ctx.issue({"confirm": "print"})
    ctx.expect(first.ticket["status"] == "pending", f"a ticket issued with confirm print is {first.ticket['status']!r}")
    tokens = [t for t in (first.answer.data.get("token"),) if isinstance(t, str) and t]
    ctx.expect(bool(tokens), "the issue answer carries no token")
    confirmed = ctx.expect_ok(await ctx.request("ticket.confirm", {"ticket": first.ticket["id"]}), "ticket.confirm")
    ctx.expect(confirmed.get("ticket", {}).get("status") == "waiting",
               f"ticket.confirm left the ticket {confirmed.get('ticket', {}).get('status')!r}, not waiting")
    await ctx.event("ticket.confirmed", lambda d: d.get("number") == first.ticket["number"], mark)
    second = await ctx.issue({"confirm": "print"})
    tokens.append(second.answer.data.get("token") or "")
    voided = ctx.expect_ok(await ctx.request("ticket.void", {"ticket": second.ticket["id"], "reason": "paper_out"}),
                           "ticket.void")
    ctx.expect(voided.get("ticket", {}).get("status") == "void",
               f"ticket.void left the ticket {voided.get('ticket', {}).get('status')!r}, not void")
    await ctx.event("ticket.voided", lambda d: d.get("number") == second.ticket["number"]
                    and d.get("reason") == "paper_out", mark, "ticket.voided with its reason")
    third = await ctx.issue()
    ctx.expect(third.ticket["number"] != second.ticket["number"],
               f"the voided number {second.ticket['number']} was issued again")
    own = ctx.topics.central_res(ctx.run.client)
    for seen in ctx.probe.since(mark, lambda s: s.topic != own):
        for token in filter(None, tokens):
            if token.encode() in seen.payload:
                ctx.got(seen)
                raise Broken(f"a ticket's token appeared on {seen.topic}")
    return f"{first.ticket['number']} confirmed, {second.ticket['number']} voided, next {third.ticket['number']}"


async def response_envelope(ctx: Context) -> Outcome:
    responses = ctx.probe.since(0, lambda s: s.topic == ctx.res_topic)
    if not responses:
        raise NotChecked("no response was read during the run")
    bad = []
    for s in responses:
        problem = _envelope_problem(s.doc())
        if problem:
            bad.append(problem)
            if len(bad) <= 3:
                ctx.got(s)
    ctx.expect(not bad, f"{len(bad)} of {len(responses)} responses: {'; '.join(sorted(set(bad))[:3])}")
    return f"{len(responses)} responses"


def _envelope_problem(doc: Any) -> str | None:
    if not isinstance(doc, dict):
        return "not a JSON object"
    if doc.get("v") != 1:
        return f"v is {doc.get('v')!r}"
    if "request_id" not in doc or not (doc["request_id"] is None or isinstance(doc["request_id"], str)):
        return "no request_id (a string, or null)"
    if not _iso_with_offset(doc.get("ts")):
        return f"ts {doc.get('ts')!r} is not an ISO 8601 time with an offset"
    if doc.get("status") == "ok":
        return None if isinstance(doc.get("data"), dict) else "status ok without a data object"
    if doc.get("status") == "error":
        error = doc.get("error")
        if not isinstance(error, dict) or not isinstance(error.get("message"), str):
            return "status error without error.code and error.message"
        return None if error.get("code") in CODES else f"error code {error.get('code')!r} is not in the contract"
    return f"status {doc.get('status')!r} is neither ok nor error"


async def event_seq(ctx: Context) -> Outcome:
    events = ctx.probe.since(0, lambda s: s.kind == "event" and bool(s.payload))
    last: int | None = None
    seen: set[int] = set()
    for s in events:
        doc = s.doc()
        if not isinstance(doc, dict) or not isinstance(doc.get("seq"), int):
            ctx.got(s)
            raise Broken("an event without an integer seq")
        ctx.expect(doc.get("v") == 1 and isinstance(doc.get("data"), dict) and _iso_with_offset(doc.get("ts")),
                   f"event {doc['seq']} lacks v 1, data or ts")
        if not s.topic.endswith(f"/event/{doc.get('type')}"):
            ctx.got(s)
            raise Broken(f"event {doc['seq']} of type {doc.get('type')!r} came on {s.topic}")
        if s.retain:
            ctx.got(s)
            raise Broken(f"event {doc['seq']} is retained at the broker")
        seq = doc["seq"]
        if seq in seen or (last is not None and seq < last):
            continue  # delivery is at least once: a repeat
        if last is not None and seq != last + 1:
            ctx.got(s)
            raise Broken(f"seq went from {last} to {seq}")
        seen.add(seq)
        last = seq
    if len(seen) < 2:
        raise NotChecked(f"{len(seen)} event(s) read during the run: too few to see seq grow")
    return f"{len(seen)} events, seq {min(seen)}..{max(seen)}"


_NON_ASCII_ESCAPE = re.compile(rb"\\u([0-9a-fA-F]{4})")


async def payloads_json_v1(ctx: Context) -> Outcome:
    """Everything read but requests (this run's own) and empty payloads (clears)."""
    messages = ctx.probe.since(0, lambda s: s.kind != "central_req" and bool(s.payload))
    for s in messages:
        problem = None
        if len(s.payload) > MAX_PAYLOAD:
            problem = f"{len(s.payload)} bytes, more than {MAX_PAYLOAD}"
        elif not isinstance(s.doc(), dict):
            problem = "not a UTF-8 JSON object"
        elif s.doc().get("v") != 1:
            problem = f"v is {s.doc().get('v')!r}, not 1"
        elif any(int(m.group(1), 16) >= 0x80 for m in _NON_ASCII_ESCAPE.finditer(s.payload)):
            problem = "non-ASCII text sent as \\u escapes, not as UTF-8"
        if problem:
            ctx.got(s)
            raise Broken(f"{s.topic}: {problem}")
    return f"{len(messages)} messages"


async def schema_valid(ctx: Context) -> Outcome:
    # the one integration point with the contract's JSON Schemas: problems(topic, payload) -> [str]
    try:
        from hallctl.contract.validate import problems
    except ImportError as exc:
        raise NotChecked(_no_schemas(exc)) from None
    messages = ctx.probe.since(0, lambda s: s.kind != "central_req" and bool(s.payload))
    found = []
    for s in messages:
        try:
            said = problems(s.topic, s.payload)
        except ImportError as exc:  # the validator may import jsonschema when first used
            raise NotChecked(_no_schemas(exc)) from None
        if said:
            found.append(f"{s.topic}: {said[0]}")
            if len(found) <= 3:
                ctx.got(s)
    ctx.expect(not found, f"{len(found)} of {len(messages)} messages do not fit the schema: {'; '.join(found[:3])}")
    return f"{len(messages)} messages"


def _no_schemas(exc: ImportError) -> str:
    if (exc.name or "").startswith("hallctl"):
        return f"this hallctl has no contract schemas to validate with ({exc})"
    return f"the contract's schemas need {exc.name or 'jsonschema'}: pip install jsonschema ({exc})"


# -- helpers --------------------------------------------------------------------------------------

def _json(payload: bytes) -> Any:
    try:
        return json.loads(payload)
    except (ValueError, UnicodeDecodeError):
        return None


def _request(rid: str, data: dict[str, Any]) -> dict[str, Any]:
    return {"v": 1, "request_id": rid, "data": data}


def _events(ctx: Context, type_: str, since: int, pred: Callable[[dict[str, Any]], bool] = lambda d: True) -> list[dict[str, Any]]:
    """The distinct events of ``type_`` read from ``since`` on whose data satisfies ``pred``."""
    topic = ctx.topics.event(type_)
    out: dict[Any, dict[str, Any]] = {}
    for s in ctx.probe.since(since, lambda s: s.topic == topic):
        doc = s.doc()
        if isinstance(doc, dict) and isinstance(doc.get("data"), dict) and pred(doc["data"]):
            out.setdefault(doc.get("seq"), doc)
    return list(out.values())


def _new_tickets(ctx: Context, since: int) -> list[str]:
    """Numbers of the tickets issued (event/ticket.issued) from ``since`` on that no check of this
    run was given: what a request that must not run would have issued."""
    known = set(ctx.run.notes.get("issued", []))
    return sorted({str(d["data"].get("number")) for d in _events(ctx, "ticket.issued", since)} - known)


def _iso_with_offset(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return False
    return when.utcoffset() is not None


REQS = "Requests and responses"

#: every check, in the order a run takes them
CHECKS: tuple[Check, ...] = (
    Check("status-retained", "central/status is retained and online, with v, state, instance, ts and unanswerable",
          "Central status", status_retained),
    Check("queue-status", "queue.status is answered with waiting, predicted_wait_min and windows",
          "Central actions", queue_status),
    Check("ticket-issue", "ticket.issue is answered with the ticket view, event/ticket.issued follows, "
          "ticket.status finds it", "Central actions", ticket_issue),
    Check("duplicate-byte-for-byte", "a request sent again with its request_id gets the same answer byte for byte "
          "and is not executed again", REQS, duplicate_byte_for_byte),
    Check("request-id-reused", "a request_id reused for another action is answered bad_request "
          "(detail.field request_id), not executed; the first answer stays", REQS, request_id_reused),
    Check("expired", "a request past its expires_at is answered expired and not executed", REQS, expired),
    Check("bad-json", "a body that is not JSON is answered bad_request with request_id null", "Error codes", bad_json),
    Check("json-array", "a JSON array body is answered bad_request", "Error codes", json_array),
    Check("unknown-envelope-field", "an unknown envelope field is answered bad_request", REQS, unknown_envelope_field),
    Check("nesting-too-deep", f"a request nested {TOO_DEEP} deep is answered bad_request, not dropped", "Basics",
          nesting_too_deep),
    Check("unknown-action", "an action central does not implement is answered unknown_command", "Error codes",
          unknown_action),
    Check("empty-payload-ignored", "an empty message on a request topic is a clear, not a request: no answer",
          "Reconnection and delivery", empty_payload_ignored),
    Check("phone-masked", f"a phone number given to ticket.issue is answered and published only masked "
          f"({PHONE_MASKED}); a birth date is never published", "Basics", phone_masked),
    Check("window-call", "window.open, call_next, complete: retained window state with the ticket, "
          "event/ticket.called, the call on board/state", "Window state", window_call, limit=(8.0, 2.0)),
    Check("unanswerable-counted", "a request on a topic with an invalid client id gets no answer and "
          "central/status unanswerable grows", REQS, unanswerable_counted),
    Check("retained-request-cleared", "a request published with the retain flag runs once and is cleared at the broker "
          f"(within {RETAINED_FOR_AT_MOST_S:.0f} s)", REQS, retained_request_cleared,
          limit=(3.0, RETAINED_FOR_AT_MOST_S + 10)),
    Check("catalogue-retained", "central/catalogue is retained: the queues with their names, classes, open, waiting",
          "Catalogue", catalogue_retained),
    Check("print-confirmed", "confirm print: pending, confirmed into the line or voided with its reason, the voided "
          "number never reused, the token on no other topic", "Print-confirmed issuance", print_confirmed),
    Check("response-envelope", "every response carries v, request_id, status, ts and data or a documented error",
          REQS, response_envelope),
    Check("event-seq", "queue events carry v, seq, type, ts, data; seq grows by one per event", "Queue events", event_seq),
    Check("personal-data-never-published", "the phone number and birth date sent appear on no topic read during the run",
          "Basics", personal_data_never_published),
    Check("payloads-json-v1", "every message read is a UTF-8 JSON object with v 1, at most 64 KiB, "
          "Chinese not \\u-escaped", "Basics", payloads_json_v1),
    Check("schema-valid", "every message read fits the contract's JSON Schema", "Basics", schema_valid),
)

BY_ID = {c.id: c for c in CHECKS}
