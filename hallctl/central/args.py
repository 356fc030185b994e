"""Request arguments of the central core's actions: parsed and checked against the HallSpec.

Pure: each parser takes the hall and the request's ``data`` and returns the keyword arguments of
its command, or raises BadRequest / NotFound naming the field. Personal values (phone, birth date)
and secrets (an appointment's code, an online application's code) are never echoed in an error:
error messages end up in logs.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Any, Mapping

from hallctl.central.model import CODE_RE, CONFIRM_MODES, ID_RE, PHONE_RE, PRIORITIES, HallSpec
from hallctl.central.pending import VOID_REASON_RE
from hallctl.errors import BadRequest, NotFound
from hallctl.privacy import scrub

#: a birth date as read from an ID card
BIRTH_DATE_RE = re.compile(r"^[0-9]{8}$")
#: where a ticket was issued: the kiosk (取号机), a window (窗口代取), the online appointment
#: platform (网上预约), the government app or mini program (政务APP/小程序)
CHANNELS: tuple[str, ...] = ("kiosk", "window", "online", "app")
#: a ticket id as central makes them: the business day and the number
TICKET_ID_RE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}-[A-Z]+[0-9]+$")
#: a ticket number as printed
TICKET_NUMBER_RE = re.compile(r"^[A-Z]+[0-9]+$")
#: a ticket's token as central makes them (url-safe base64), with room for another central's
TOKEN_RE = re.compile(r"^[A-Za-z0-9_-]{16,64}$")


def check_fields(data: Mapping[str, Any], allowed: tuple[str, ...]) -> None:
    if not isinstance(data, Mapping):
        raise BadRequest("data must be a JSON object")
    for key in data:
        if key not in allowed:
            known = ", ".join(allowed) or "none"
            raise BadRequest(f"{key}: unknown field (allowed: {known})", field=str(key))


def string(data: Mapping[str, Any], name: str, *, required: bool) -> str | None:
    value = data.get(name)
    if value is None:
        if required:
            raise BadRequest(f"{name}: required", field=name)
        return None
    if not isinstance(value, str) or not value:
        raise BadRequest(f"{name}: must be a non-empty string", field=name)
    return value


def no_args(hall: HallSpec, data: Mapping[str, Any]) -> dict[str, Any]:
    check_fields(data, ())
    return {}


def window_arg(hall: HallSpec, data: Mapping[str, Any]) -> dict[str, Any]:
    check_fields(data, ("window",))
    return {"window": _window(hall, data)}


def open_args(hall: HallSpec, data: Mapping[str, Any]) -> dict[str, Any]:
    """``window.open {window, clerk?}``: the clerk (staff number) signs in at the window."""
    check_fields(data, ("window", "clerk"))
    clerk = data.get("clerk")
    if clerk is not None and (not isinstance(clerk, str) or not ID_RE.match(clerk)):
        raise BadRequest("clerk: must match [a-z0-9-]{1,64} (a staff number)", field="clerk")
    if clerk is not None and scrub(clerk) != clerk:  # it would be published on open topics
        raise BadRequest("clerk: looks like a phone or ID card number; give the staff number", field="clerk")
    return {"window": _window(hall, data), "clerk": clerk}


def issue_args(hall: HallSpec, data: Mapping[str, Any]) -> dict[str, Any]:
    """``ticket.issue {queue | matter | appointment, phone?, channel?, priority?, slot?,
    online_code?, birth_date?, confirm?}``. With ``appointment`` (a booking's code) the queue,
    matter and slot are the booking's: the request may not give them."""
    check_fields(data, ("queue", "matter", "appointment", "online_code", "phone", "channel", "priority", "slot",
                        "birth_date", "confirm"))
    appointment = _code(data, "appointment")
    online_code = _code(data, "online_code")
    priority = string(data, "priority", required=False)
    if appointment is not None:
        for name in ("queue", "matter", "slot", "online_code"):
            if data.get(name) is not None:
                raise BadRequest(f"{name}: comes from the appointment; give the appointment alone", field=name)
        if priority not in (None, "appointment"):
            raise BadRequest("priority: a ticket for an appointment is of class appointment", field="priority")
        priority = "appointment"
        queue, matter = "", None  # the command takes them from the booking
    else:
        queue, matter = _queue_or_matter(hall, data)
    if online_code is not None:
        if priority not in (None, "online"):
            raise BadRequest("priority: a ticket with an online_code is of class online", field="priority")
        if scrub(online_code) != online_code:  # the window's answer would have to mask it
            raise BadRequest("online_code: reads as a phone or ID card number; the window must take this "
                             "application", field="online_code")
        priority = "online"
    phone = data.get("phone")
    if phone is not None and (not isinstance(phone, str) or not PHONE_RE.match(phone)):
        raise BadRequest("phone: must be an 11-digit mainland mobile number (1[3-9]…)", field="phone")
    channel = string(data, "channel", required=False) or "kiosk"
    if channel not in CHANNELS:
        raise BadRequest(f"channel: must be one of {', '.join(CHANNELS)}", field="channel")
    priority = priority or "walkin"
    if priority not in PRIORITIES:
        raise BadRequest(f"priority: must be one of {', '.join(PRIORITIES)}", field="priority")
    if priority not in hall.classes:
        field = "appointment" if appointment else "online_code" if online_code else "priority"
        raise BadRequest(f"{field}: the hall does not offer {priority} (it offers {', '.join(hall.classes)})",
                         field=field)
    confirm = string(data, "confirm", required=False)
    if confirm is not None and confirm not in CONFIRM_MODES:
        raise BadRequest(f"confirm: must be one of {', '.join(CONFIRM_MODES)}", field="confirm")
    slot = None if appointment is not None else _slot(data.get("slot"), priority)
    birth = data.get("birth_date")
    born: date | None = None
    if birth is not None:
        if isinstance(birth, str) and BIRTH_DATE_RE.match(birth):
            try:
                born = date(int(birth[:4]), int(birth[4:6]), int(birth[6:]))
            except ValueError:
                born = None
        if born is None:
            raise BadRequest("birth_date: must be a date YYYYMMDD", field="birth_date")
    return {
        "queue": queue,
        "matter": matter,
        "phone": phone,
        "channel": channel,
        "priority": priority,
        "slot": slot,
        "born": born,
        "confirm": confirm,
        "appointment": appointment,
        "online_code": online_code,
    }


def book_args(hall: HallSpec, data: Mapping[str, Any]) -> dict[str, Any]:
    """``appointment.book {code, queue | matter, slot, phone?}``: the booking system's booking."""
    check_fields(data, ("code", "queue", "matter", "slot", "phone"))
    code = _code(data, "code", required=True)
    if "appointment" not in hall.classes:
        raise BadRequest(f"code: the hall does not offer appointments (it offers {', '.join(hall.classes)})",
                         field="code")
    queue, matter = _queue_or_matter(hall, data)
    phone = data.get("phone")
    if phone is not None and (not isinstance(phone, str) or not PHONE_RE.match(phone)):
        raise BadRequest("phone: must be an 11-digit mainland mobile number (1[3-9]…)", field="phone")
    return {"code": code, "queue": queue, "matter": matter, "slot": _slot(data.get("slot"), "appointment"),
            "phone": phone}


def cancel_args(hall: HallSpec, data: Mapping[str, Any]) -> dict[str, Any]:
    """``appointment.cancel {code}``."""
    check_fields(data, ("code",))
    return {"code": _code(data, "code", required=True)}


def transfer_args(hall: HallSpec, data: Mapping[str, Any]) -> dict[str, Any]:
    """``window.transfer {window, queue | matter}``: to another section, or another matter (its
    section follows from the matter)."""
    check_fields(data, ("window", "queue", "matter"))
    window = _window(hall, data)
    queue, matter = _queue_or_matter(hall, data)
    return {"window": window, "queue": queue, "matter": matter}


def status_args(hall: HallSpec, data: Mapping[str, Any]) -> dict[str, Any]:
    """``ticket.status {ticket | token}``: a ticket id ("2026-11-23-A012"), today's number
    ("A012"), or the ticket's token (what its status link holds)."""
    check_fields(data, ("ticket", "token"))
    if data.get("token") is None:
        return {"ref": _ticket_ref(data), "token": None}
    if data.get("ticket") is not None:
        raise BadRequest("ticket: give the ticket or its token, not both", field="ticket")
    token = data["token"]
    if not isinstance(token, str) or not TOKEN_RE.match(token):  # never echoed: it is a secret
        raise BadRequest("token: must be 16-64 characters of [A-Za-z0-9_-]", field="token")
    return {"ref": None, "token": token}


def ticket_arg(hall: HallSpec, data: Mapping[str, Any]) -> dict[str, Any]:
    """``ticket.confirm {ticket}``: a ticket id or today's number."""
    check_fields(data, ("ticket",))
    return {"ref": _ticket_ref(data)}


def void_args(hall: HallSpec, data: Mapping[str, Any]) -> dict[str, Any]:
    """``ticket.void {ticket, reason}``: why the print failed ("paper_out", "printer_offline")."""
    check_fields(data, ("ticket", "reason"))
    ref = _ticket_ref(data)
    reason = string(data, "reason", required=True)
    if not VOID_REASON_RE.match(reason or ""):
        raise BadRequest("reason: a lower-case name of up to 32 letters and '_' (paper_out)", field="reason")
    return {"ref": ref, "reason": reason}


def _code(data: Mapping[str, Any], name: str, *, required: bool = False) -> str | None:
    """An appointment's or an online application's code: 6-20 capital letters and digits. Never
    echoed (a booking's code takes its ticket, like a token; an application's names a citizen)."""
    value = data.get(name)
    if value is None:
        if required:
            raise BadRequest(f"{name}: required", field=name)
        return None
    if not isinstance(value, str) or not CODE_RE.match(value):
        raise BadRequest(f"{name}: must be 6-20 capital letters or digits", field=name)
    return value


def _ticket_ref(data: Mapping[str, Any]) -> str:
    ref = string(data, "ticket", required=True)
    assert ref is not None
    if not (TICKET_ID_RE.match(ref) or TICKET_NUMBER_RE.match(ref)):
        raise BadRequest("ticket: a ticket id (2026-11-23-A012) or today's number (A012)", field="ticket")
    return ref


def age(born: date, on: date) -> int:
    """Whole years from ``born`` to ``on`` (someone born on 29 Feb turns a year older on 1 Mar)."""
    return on.year - born.year - ((on.month, on.day) < (born.month, born.day))


def _window(hall: HallSpec, data: Mapping[str, Any]) -> str:
    window = string(data, "window", required=True)
    if window not in hall.windows:
        raise NotFound(f"window: no window {window!r} in hall {hall.hall_id}", field="window")
    assert window is not None
    return window


def _queue_or_matter(hall: HallSpec, data: Mapping[str, Any]) -> tuple[str, str | None]:
    """The queue a ticket goes to: named, or the section of the matter named (both: they must
    agree)."""
    queue = string(data, "queue", required=False)
    matter = string(data, "matter", required=False)
    if queue is None and matter is None:
        raise BadRequest("queue: required (or a matter)", field="queue")
    if matter is not None:
        spec = hall.matters.get(matter)
        if spec is None:
            raise NotFound(f"matter: no matter {matter!r} in hall {hall.hall_id}", field="matter")
        if queue is not None and queue != spec.queue:
            raise BadRequest(f"queue: matter {matter!r} is served in queue {spec.queue!r}", field="queue")
        return spec.queue, matter
    if queue not in hall.queues:
        raise NotFound(f"queue: no queue {queue!r} in hall {hall.hall_id}", field="queue")
    assert queue is not None
    return queue, None


def _slot(value: Any, priority: str) -> datetime | None:
    if priority != "appointment":
        if value is not None:
            raise BadRequest("slot: only an appointment has a slot", field="slot")
        return None
    if value is None:
        raise BadRequest("slot: required for an appointment", field="slot")
    try:
        if not isinstance(value, str):
            raise ValueError
        slot = datetime.fromisoformat(value)
    except ValueError:
        raise BadRequest(
            "slot: must be ISO 8601 with an offset (2024-05-06T10:30:00+08:00)", field="slot"
        ) from None
    if slot.tzinfo is None or slot.utcoffset() is None:
        raise BadRequest("slot: needs a UTC offset (2024-05-06T10:30:00+08:00)", field="slot")
    return slot
