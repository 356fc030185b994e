"""The kiosk's issuing flow as a state machine: pure, no I/O, no clock, testable without HTTP.

The page sends the citizen's touches (:meth:`KioskFlow.press`) and shows :meth:`KioskFlow.view`;
the app feeds in what the hall says (central's catalogue and status, the printer's state, an ID
card read) and carries out what the flow asks for (:class:`Issue`, :class:`Lookup`), reporting
back how it went (:meth:`issued`, :meth:`refused`, :meth:`unreachable`, :meth:`print_failed`,
:meth:`looked_up`).

Screens: ``home`` (categories) → ``matters`` (a matter, or the whole section in a 1+X hall) →
``phone`` (on-screen keypad, optional, or an ID card) → ``confirm`` → ``issuing`` → ``done`` or
``failed``; ``code`` (an online-application code, 网上件, instead of a matter), ``appointment``
(预约取号: a booking's code, issued at once), ``green`` → ``green_pin`` → ``green_queues`` (绿色通道:
a ground, then a staff member's PIN, then the category as from home), ``query`` (查询). Before any
of the first ones, what stops issuing wins: central unreachable (``unavailable``), the printer
faulty (``out_of_service``), outside opening hours (``closed``).

Personal data stays here: the phone number and the birth date are never in :meth:`view` (the
phone only masked) nor in anything the flow logs; they leave only in the :class:`Issue` request,
which goes to central alone. The staff PIN is never in the view (only as many dots as digits
typed); the green channel's ground goes nowhere but a per-ground count (:attr:`green_counts`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Mapping

from hallctl.apps.kiosk.pin import PIN_RE, pin_matches
from hallctl.privacy import mask_phone, scrub

PHONE_RE = re.compile(r"^1[3-9][0-9]{9}$")
#: an online application's acceptance code (网上申报受理编号) or an appointment's code (预约码) as
#: citizens type it (central's rule: hallctl.central.model.CODE_RE)
CODE_RE = re.compile(r"^[A-Z0-9]{6,20}$")
#: the keys of the code keypads
CODE_CHARS = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
BIRTH_RE = re.compile(r"^[0-9]{8}$")
TICKET_RE = re.compile(r"^[A-Z]{1,3}[0-9]{1,4}$")
#: wrong staff PINs before the green channel screen gives up and goes home
PIN_TRIES = 3
#: screens a blocker (no central, printer down, closed) replaces
BEFORE_ISSUE = frozenset({"home", "matters", "phone", "code", "confirm", "appointment", "green", "green_pin",
                          "green_queues"})
#: why central refused a booking's ticket (conflict ``detail.reason``) -> the screen's message
APPOINTMENT_REFUSALS = {"used": "appt_used", "cancelled": "appt_cancelled", "other_day": "appt_other_day"}


@dataclass(frozen=True)
class Issue:
    """Ask central for a ticket with these ``data`` (confirmed by print)."""

    data: dict[str, Any]


@dataclass(frozen=True)
class Lookup:
    """Ask central ``ticket.status`` for this number."""

    ticket: str


Effect = Issue | Lookup | None


@dataclass
class _Entry:
    """What the citizen chose so far for the ticket being taken."""

    queue: str | None = None
    matter: str | None = None
    phone: str = ""
    no_sms: bool = False
    birth_date: str | None = field(default=None, repr=False)
    code: str = ""
    priority: str = "walkin"
    #: the booking's code typed on the appointment screen
    appointment: str = ""
    #: the green channel's ground (a key of the templates' [grounds]) and the staff PIN typed
    ground: str | None = None
    pin: str = field(default="", repr=False)
    pin_tries: int = 0


class KioskFlow:
    def __init__(self, *, next_kiosk: str | None = None, places: Mapping[str, str] | None = None,
                 grounds: Mapping[str, str] | None = None, green_pin: str | None = None) -> None:
        self.next_kiosk = next_kiosk
        #: per queue id, where its citizens wait (templates' [where]; ``default`` for the rest)
        self.places = dict(places or {})
        #: the green channel's grounds, id -> what the screen says (templates' [grounds])
        self.grounds = dict(grounds or {})
        #: the staff PIN's salted hash (the ``green_pin_sha256`` option); None: no green channel here
        self.green_pin = green_pin
        #: green-channel tickets issued on a staff member's confirmation, per ground: all that is
        #: kept of the grounds (central has no field for them; the kiosk logs these counts)
        self.green_counts: dict[str, int] = {}
        #: wrong staff PINs typed since start (the app logs each, never the digits)
        self.pin_failures = 0
        self.catalogue: dict[str, Any] | None = None
        self.central_online = False
        self.printer: dict[str, Any] = {"available": False, "health": "unknown", "reason": "not started"}
        self.screen = "home"
        self.elder = False
        self.entry = _Entry()
        self.result: dict[str, Any] | None = None
        self.message: dict[str, Any] | None = None  # {"key": template key, **fields}
        self.query_text = ""
        self.query_result: dict[str, Any] | None = None

    # -- what the hall says -----------------------------------------------------------------
    def on_catalogue(self, doc: Mapping[str, Any]) -> None:
        self.catalogue = dict(doc)
        if self.entry.queue is not None and self.entry.queue not in self._queues():
            self._reset()  # the hall's config changed under the citizen: start again

    def on_central_status(self, online: bool) -> None:
        self.central_online = online

    def on_printer(self, state: Mapping[str, Any]) -> None:
        self.printer = {k: state.get(k) for k in ("available", "health", "reason")}

    def on_card(self, data: Mapping[str, Any]) -> bool:
        """An ID card was read: its birth date is kept for the green channel (central decides
        by age). Only while a ticket is being taken; True if it was used."""
        birth = data.get("birth_date")
        if self.screen not in ("matters", "phone", "confirm") or not isinstance(birth, str) or not BIRTH_RE.match(birth):
            return False
        self.entry.birth_date = birth
        return True

    # -- what stops issuing -----------------------------------------------------------------
    def blocker(self) -> str | None:
        if not self.central_online or self.catalogue is None:
            return "unavailable"
        if not self.printer.get("available") or self.printer.get("health") == "fault":
            return "out_of_service"
        if not self.catalogue.get("open", True):
            return "closed"
        return None

    @property
    def shown(self) -> str:
        """The screen the citizen sees now."""
        blocked = self.blocker()
        if blocked is not None and self.screen in BEFORE_ISSUE:
            return blocked
        return self.screen

    # -- the citizen's touches --------------------------------------------------------------
    def press(self, action: Mapping[str, Any]) -> Effect:
        """One touch on the page (``{"do": "queue", "id": "a"}``); unknown or out-of-place
        touches change nothing (a double tap, a page that was behind)."""
        do = action.get("do")
        if do == "elder":
            self.elder = not self.elder
            return None
        if do == "home":
            self._reset()
            return None
        if do == "query":
            self._reset()
            self.screen = "query"
            return None
        handler = getattr(self, f"_on_{self.shown}", None)
        return handler(do, action) if handler is not None else None

    def button(self, queue: str) -> Effect:
        """A buttons-only kiosk's button for ``queue``: a walk-in ticket at once, no SMS; nothing
        while issuing is blocked, a ticket is being issued, or someone is at the touchscreen."""
        if self.blocker() is not None or queue not in self._queues():
            return None
        if self.shown not in ("home", "done", "failed"):
            return None
        self._reset()
        self.entry = _Entry(queue=queue, no_sms=True)
        self.screen = "issuing"
        return Issue({"queue": queue, "channel": "kiosk", "confirm": "print"})

    def lamps(self, buttons: Mapping[str, str]) -> tuple[list[str], list[str]]:
        """The button panel's lamps (on, blinking) for ``buttons`` (button name -> queue): each
        lit while its category can be issued, the one being printed blinking, all dark while the
        kiosk is out of service, closed or without central."""
        if self.blocker() is not None:
            return [], []
        if self.shown == "issuing":
            return [], [b for b, q in buttons.items() if q == self.entry.queue]
        if self.shown not in ("home", "done", "failed"):
            return [], []
        queues = self._queues()
        return sorted(b for b, q in buttons.items() if q in queues), []

    def _on_home(self, do: Any, action: Mapping[str, Any]) -> Effect:
        if do == "queue" and isinstance(action.get("id"), str) and action["id"] in self._queues():
            self.entry = _Entry(queue=str(action["id"]))
            self.screen = "matters" if self.matters_of(self.entry.queue) else "phone"
        elif do == "code" and "online" in self._classes():
            self.entry = _Entry()
            self.screen = "code"
        elif do == "appointment" and self.offers_appointments():
            self.entry = _Entry()
            self.screen = "appointment"
        elif do == "green" and self.offers_green():
            self.entry = _Entry()
            self.screen = "green"
        if self.screen != "home":
            self.message = None
        return None

    def _on_green_queues(self, do: Any, action: Mapping[str, Any]) -> Effect:
        """The categories again, for a ticket a staff member confirmed as green channel."""
        if do == "queue" and isinstance(action.get("id"), str) and action["id"] in self._queues():
            self.entry.queue = str(action["id"])
            self.screen = "matters" if self.matters_of(self.entry.queue) else "phone"
        elif do == "back":
            self._reset()
        return None

    def _on_matters(self, do: Any, action: Mapping[str, Any]) -> Effect:
        if do == "matter":
            ids = {m["id"] for m in self.matters_of(self.entry.queue)}
            if action.get("id") is None or (isinstance(action.get("id"), str) and action["id"] in ids):
                self.entry.matter = action.get("id")
                self.screen = "phone"
        elif do == "back":
            if self.entry.priority == "green":
                self.entry.queue, self.screen = None, "green_queues"
            else:
                self._reset()
        return None

    def _on_phone(self, do: Any, action: Mapping[str, Any]) -> Effect:
        digits = self.entry.phone
        if do == "digit" and isinstance(action.get("d"), str) and action["d"] in "0123456789" \
                and len(action["d"]) == 1 and len(digits) < 11:
            self.entry.phone = digits + action["d"]
            self.message = None
        elif do == "delete":
            self.entry.phone = digits[:-1]
        elif do == "clear":
            self.entry.phone = ""
        elif do == "no_sms":
            self.entry.phone, self.entry.no_sms = "", True
            self.screen = "confirm"
        elif do == "phone_ok":
            if PHONE_RE.match(digits):
                self.entry.no_sms = False
                self.screen = "confirm"
                self.message = None
            else:
                self.message = {"key": "phone_invalid"}
        elif do == "back":
            self.entry.phone = ""
            if self.entry.priority == "online":
                self.screen = "code"
            elif self.matters_of(self.entry.queue):
                self.screen = "matters"
            elif self.entry.priority == "green":
                self.entry.queue, self.screen = None, "green_queues"
            else:
                self.screen = "home"
        return None

    def _on_code(self, do: Any, action: Mapping[str, Any]) -> Effect:
        self.entry.code = self._typed_code(self.entry.code, do, action)
        if do == "code_ok":
            queue = self._online_queue()
            # central refuses a code that reads as a phone or ID card number (it could not show
            # it to the clerk unmasked): the citizen hears it here, before anything is asked
            if CODE_RE.match(self.entry.code) and scrub(self.entry.code) == self.entry.code and queue is not None:
                self.entry.queue, self.entry.priority = queue, "online"
                self.screen = "phone"
                self.message = None
            else:
                self.message = {"key": "code_invalid"}
        elif do == "back":
            self._reset()
        return None

    def _on_appointment(self, do: Any, action: Mapping[str, Any]) -> Effect:
        """预约取号: the booking's code; central knows its section, matter, slot and phone."""
        self.entry.appointment = self._typed_code(self.entry.appointment, do, action)
        if do == "appt_ok":
            if CODE_RE.match(self.entry.appointment):
                self.message = None
                self.screen = "issuing"
                return Issue({"appointment": self.entry.appointment, "channel": "kiosk", "confirm": "print"})
            self.message = {"key": "appt_invalid"}
        elif do == "back":
            self._reset()
        return None

    def _typed_code(self, code: str, do: Any, action: Mapping[str, Any]) -> str:
        """A code keypad's touch: a letter or digit added, the last one deleted, or all cleared."""
        if do == "char" and isinstance(action.get("c"), str) and len(action["c"]) == 1 \
                and action["c"].upper() in CODE_CHARS and len(code) < 20:
            self.message = None
            return code + action["c"].upper()
        if do == "delete":
            return code[:-1]
        if do == "clear":
            return ""
        return code

    def _on_green(self, do: Any, action: Mapping[str, Any]) -> Effect:
        """绿色通道: the citizen (or the staff member with them) picks the ground."""
        if do == "ground" and isinstance(action.get("id"), str) and action["id"] in self.grounds:
            self.entry.ground, self.entry.pin = str(action["id"]), ""
            self.screen = "green_pin"
        elif do == "back":
            self._reset()
        return None

    def _on_green_pin(self, do: Any, action: Mapping[str, Any]) -> Effect:
        """A staff member confirms the ground with their PIN; three wrong ones and it is home."""
        pin = self.entry.pin
        if do == "digit" and isinstance(action.get("d"), str) and len(action["d"]) == 1 \
                and action["d"] in "0123456789" and len(pin) < 8:
            self.entry.pin = pin + action["d"]
        elif do == "delete":
            self.entry.pin = pin[:-1]
        elif do == "clear":
            self.entry.pin = ""
        elif do == "pin_ok" and self.green_pin is not None:
            if PIN_RE.match(pin) and pin_matches(self.green_pin, pin):
                self.entry.pin, self.entry.priority = "", "green"
                self.message = None
                self.screen = "green_queues"
                return None
            self.pin_failures += 1
            self.entry.pin_tries += 1
            if self.entry.pin_tries >= PIN_TRIES:
                self._reset()
                self.message = {"key": "green_pin_locked"}
            else:
                self.entry.pin = ""
                self.message = {"key": "green_pin_wrong", "left": PIN_TRIES - self.entry.pin_tries}
        elif do == "back":
            self.entry.pin = ""
            self.message = None
            self.screen = "green"  # the wrong tries stay counted
        return None

    def _on_confirm(self, do: Any, action: Mapping[str, Any]) -> Effect:
        if do == "back":
            self.screen = "phone"
            return None
        if do != "confirm" or self.entry.queue is None:
            return None
        data: dict[str, Any] = {"matter": self.entry.matter} if self.entry.matter else {"queue": self.entry.queue}
        if self.entry.phone and not self.entry.no_sms:
            data["phone"] = self.entry.phone
        if self.entry.priority == "online":
            data["online_code"] = self.entry.code  # the class follows from it
        elif self.entry.priority != "walkin":
            data["priority"] = self.entry.priority
        if self.entry.birth_date is not None:
            data["birth_date"] = self.entry.birth_date
        data.update(channel="kiosk", confirm="print")
        self.screen = "issuing"
        return Issue(data)

    def _on_query(self, do: Any, action: Mapping[str, Any]) -> Effect:
        text = self.query_text
        if do == "char" and isinstance(action.get("c"), str) and len(action["c"]) == 1 \
                and action["c"].upper() in "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ" and len(text) < 7:
            self.query_text = text + action["c"].upper()
            self.query_result = None
        elif do == "delete":
            self.query_text = text[:-1]
        elif do == "query_go" and TICKET_RE.match(text):
            return Lookup(text)
        elif do == "back":
            self._reset()
        return None

    def _on_done(self, do: Any, action: Mapping[str, Any]) -> Effect:
        return None

    _on_failed = _on_done

    # -- how the app's requests went --------------------------------------------------------
    def issued(self, answer: Mapping[str, Any]) -> str | None:
        """Central's ``ticket.issue`` answer, after the ticket printed and was confirmed. Returns
        the green channel's ground when a staff member confirmed it (it is counted)."""
        t = answer.get("ticket") or {}
        self.result = {
            "number": t.get("number"), "queue": t.get("queue"), "matter": t.get("matter"),
            "priority": t.get("priority"), "phone_masked": t.get("phone_masked"),
            "people_ahead": answer.get("people_ahead"), "wait": _minutes(answer.get("predicted_wait_min")),
            "where": self.where_of(t.get("queue")),
            # an appointment checked in too late: central issued a walk-in, and the citizen hears why
            "missed_slot": bool(answer.get("missed_slot")),
        }
        ground = self.entry.ground if self.entry.priority == "green" and t.get("priority") == "green" else None
        if ground is not None:
            self.green_counts[ground] = self.green_counts.get(ground, 0) + 1
        self._finish("done")
        return ground

    def print_failed(self, number: str | None, *, on_paper: bool = False) -> None:
        """The ticket did not print (it was voided), or printed but central did not confirm it
        (``on_paper``: it will be voided): say so, with the number that will not be called."""
        self.result = {"number": number}
        self.message = {"key": "not_confirmed" if on_paper else "print_failed"}
        self._finish("failed")

    def refused(self, code: str, message: str, detail: Mapping[str, Any] | None = None) -> None:
        """Central refused the ticket (``hall_closed``, ``bad_request``...)."""
        detail = detail or {}
        if self.entry.appointment and code == "not_found":
            # a typo, most likely: back to the keypad with the code as typed
            self.screen, self.message = "appointment", {"key": "appt_unknown"}
            return
        if self.entry.appointment and code == "conflict" and detail.get("reason") in APPOINTMENT_REFUSALS:
            self.result = None
            self.message = {"key": APPOINTMENT_REFUSALS[detail["reason"]], "number": detail.get("ticket"),
                            "day": _chinese_date(detail.get("day"))}
            self._finish("failed")
            return
        if code == "hall_closed" and self.catalogue is not None:
            # central knows better than our copy of the catalogue: closed it is
            self.catalogue = {**self.catalogue, "open": False,
                              "hours": {**(self.catalogue.get("hours") or {}), "open": False,
                                        "opens_at": (detail or {}).get("opens_at")}}
            self._reset()
            return
        self.result = None
        self.message = {"key": "issue_refused", "reason": message}
        self._finish("failed")

    def unreachable(self) -> None:
        """Central did not answer: nothing was issued (the request expires unexecuted)."""
        self.central_online = False
        self._reset()

    def looked_up(self, answer: Mapping[str, Any] | None) -> None:
        if answer is None:
            self.query_result = {"found": False}
            return
        t = answer.get("ticket") or {}
        self.query_result = {"found": True, "number": t.get("number"), "status": t.get("status"),
                             "people_ahead": answer.get("people_ahead"),
                             "wait": _minutes(answer.get("predicted_wait_min")),
                             "window": t.get("window")}

    def _finish(self, screen: str) -> None:
        self.entry = _Entry()
        self.screen = screen

    def _reset(self) -> None:
        self.entry = _Entry()
        self.screen = "home"
        self.message = None
        self.query_text = ""
        self.query_result = None

    # -- the catalogue ----------------------------------------------------------------------
    def _queues(self) -> dict[str, dict[str, Any]]:
        return {q["id"]: q for q in (self.catalogue or {}).get("queues", [])}

    def _classes(self) -> list[str]:
        return list((self.catalogue or {}).get("classes", ["walkin"]))

    def offers_appointments(self) -> bool:
        return "appointment" in self._classes()

    def offers_green(self) -> bool:
        """The green channel on staff confirmation: the hall offers the class and this kiosk has
        a staff PIN and grounds to choose from."""
        return "green" in self._classes() and self.green_pin is not None and bool(self.grounds)

    def _online_queue(self) -> str | None:
        """Online applications are accepted at the universal windows: the catalogue's first queue."""
        queues = list(self._queues())
        return queues[0] if queues else None

    def matters_of(self, queue: str | None) -> list[dict[str, Any]]:
        return [m for m in (self.catalogue or {}).get("matters", []) if m.get("queue") == queue]

    def where_of(self, queue: str | None) -> str | None:
        q = self._queues().get(queue or "")
        if q is None:
            return None
        return self.places.get(q["id"], self.places.get("default", "")).replace("{queue_name}", q["name"])

    # -- what the page shows ----------------------------------------------------------------
    def view(self) -> dict[str, Any]:
        """The screen as the page draws it: no phone number but masked, never the birth date."""
        cat = self.catalogue or {}
        screen = self.shown
        out: dict[str, Any] = {
            "screen": screen, "elder": self.elder,
            "hall_name": (cat.get("hall") or {}).get("name") or "",
            "message": self.message,
        }
        if screen == "home":
            waiting, waits = cat.get("waiting", {}), cat.get("predicted_wait_min", {})
            out["queues"] = [{"id": q["id"], "name": q["name"], "waiting": waiting.get(q["id"]),
                              "wait": _minutes(waits.get(q["id"]))} for q in cat.get("queues", [])]
            out["code"] = "online" in self._classes()
            out["appointment"] = self.offers_appointments()
            out["green"] = self.offers_green()
        elif screen == "green_queues":
            waiting, waits = cat.get("waiting", {}), cat.get("predicted_wait_min", {})
            out["queues"] = [{"id": q["id"], "name": q["name"], "waiting": waiting.get(q["id"]),
                              "wait": _minutes(waits.get(q["id"]))} for q in cat.get("queues", [])]
            out["ground"] = self.grounds.get(self.entry.ground or "")
        elif screen == "appointment":
            out["code"] = self.entry.appointment
        elif screen == "green":
            out["grounds"] = [{"id": k, "name": v} for k, v in self.grounds.items()]
        elif screen == "green_pin":
            out["ground"] = self.grounds.get(self.entry.ground or "")
            out["pin_masked"] = "●" * len(self.entry.pin)  # never the digits
        elif screen == "matters":
            out["queue"] = self._queues()[self.entry.queue]["name"]
            out["matters"] = [{"id": m["id"], "name": m["name"]} for m in self.matters_of(self.entry.queue)]
        elif screen == "phone":
            out["phone_masked"] = mask_typed(self.entry.phone)
            out["card"] = self.entry.birth_date is not None
        elif screen == "code":
            out["code"] = self.entry.code
        elif screen == "confirm":
            queue = self._queues().get(self.entry.queue or "", {})
            matter = next((m for m in self.matters_of(self.entry.queue) if m["id"] == self.entry.matter), None)
            out.update(queue=queue.get("name"), matter=matter["name"] if matter else None,
                       phone_masked=mask_phone(self.entry.phone) if self.entry.phone else None,
                       card=self.entry.birth_date is not None, online=self.entry.priority == "online",
                       green=self.grounds.get(self.entry.ground or "") if self.entry.priority == "green" else None)
        elif screen in ("done", "failed"):
            out["result"] = self.result
        elif screen == "closed":
            hours = cat.get("hours") or {}
            out.update(opens_at=_hhmm(hours.get("opens_at")), hours="，".join(hours.get("periods") or []))
        elif screen == "out_of_service":
            out["next_kiosk"] = self.next_kiosk
        elif screen == "query":
            out.update(query=self.query_text, result=self.query_result)
        return out


def mask_typed(digits: str) -> str:
    """A phone number as it is typed, with its 4th to 7th digits hidden (138****8000)."""
    return "".join("*" if 3 <= i < 7 else d for i, d in enumerate(digits))


def _minutes(value: Any) -> int | None:
    return None if not isinstance(value, (int, float)) else max(0, round(value))


def _chinese_date(iso: Any) -> str | None:
    """``2026-11-24`` -> ``2026年11月24日``."""
    if not isinstance(iso, str) or len(iso) != 10:
        return None
    return f"{iso[:4]}年{int(iso[5:7])}月{int(iso[8:10])}日"


def _hhmm(iso: Any) -> str | None:
    """``2026-11-23T13:30:00+08:00`` -> ``13:30`` (the hall's local time, as central gives it)."""
    return iso[11:16] if isinstance(iso, str) and len(iso) >= 16 else None
