"""The kiosk's issuing flow as a state machine: pure, no I/O, no clock, testable without HTTP.

The page sends the citizen's touches (:meth:`KioskFlow.press`) and shows :meth:`KioskFlow.view`;
the app feeds in what the hall says (central's catalogue and status, the printer's state, an ID
card read) and carries out what the flow asks for (:class:`Issue`, :class:`Lookup`), reporting
back how it went (:meth:`issued`, :meth:`refused`, :meth:`unreachable`, :meth:`print_failed`,
:meth:`looked_up`).

Screens: ``home`` (categories) → ``matters`` (a matter, or the whole section in a 1+X hall) →
``phone`` (on-screen keypad, optional, or an ID card) → ``confirm`` → ``issuing`` → ``done`` or
``failed``; ``code`` (an online-application code instead of a matter), ``query`` (查询). Before any
of the first ones, what stops issuing wins: central unreachable (``unavailable``), the printer
faulty (``out_of_service``), outside opening hours (``closed``).

Personal data stays here: the phone number and the birth date are never in :meth:`view` (the
phone only masked) nor in anything the flow logs; they leave only in the :class:`Issue` request,
which goes to central alone.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Mapping

from hallctl.privacy import mask_phone

PHONE_RE = re.compile(r"^1[3-9][0-9]{9}$")
#: an online application's acceptance code (网上申报受理编号) as citizens type it
CODE_RE = re.compile(r"^[A-Z0-9]{6,20}$")
BIRTH_RE = re.compile(r"^[0-9]{8}$")
TICKET_RE = re.compile(r"^[A-Z]{1,3}[0-9]{1,4}$")
#: screens a blocker (no central, printer down, closed) replaces
BEFORE_ISSUE = frozenset({"home", "matters", "phone", "code", "confirm"})


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


class KioskFlow:
    def __init__(self, *, next_kiosk: str | None = None, places: Mapping[str, str] | None = None) -> None:
        self.next_kiosk = next_kiosk
        #: per queue id, where its citizens wait (templates' [where]; ``default`` for the rest)
        self.places = dict(places or {})
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

    def _on_home(self, do: Any, action: Mapping[str, Any]) -> Effect:
        if do == "queue" and isinstance(action.get("id"), str) and action["id"] in self._queues():
            self.entry = _Entry(queue=str(action["id"]))
            self.screen = "matters" if self.matters_of(self.entry.queue) else "phone"
        elif do == "code" and "online" in self._classes():
            self.entry = _Entry()
            self.screen = "code"
        return None

    def _on_matters(self, do: Any, action: Mapping[str, Any]) -> Effect:
        if do == "matter":
            ids = {m["id"] for m in self.matters_of(self.entry.queue)}
            if action.get("id") is None or (isinstance(action.get("id"), str) and action["id"] in ids):
                self.entry.matter = action.get("id")
                self.screen = "phone"
        elif do == "back":
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
            self.screen = "code" if self.entry.priority == "online" else (
                "matters" if self.matters_of(self.entry.queue) else "home")
        return None

    def _on_code(self, do: Any, action: Mapping[str, Any]) -> Effect:
        code = self.entry.code
        if do == "char" and isinstance(action.get("c"), str) and len(action["c"]) == 1 \
                and action["c"].upper() in "0123456789ABCDEFGHJKLMNPQRSTUVWXYZ" and len(code) < 20:
            self.entry.code = code + action["c"].upper()
            self.message = None
        elif do == "delete":
            self.entry.code = code[:-1]
        elif do == "code_ok":
            queue = self._online_queue()
            if CODE_RE.match(code) and queue is not None:
                self.entry.queue, self.entry.priority = queue, "online"
                self.screen = "phone"
                self.message = None
            else:
                self.message = {"key": "code_invalid"}
        elif do == "back":
            self._reset()
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
        if self.entry.priority != "walkin":
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
    def issued(self, answer: Mapping[str, Any]) -> None:
        """Central's ``ticket.issue`` answer, after the ticket printed and was confirmed."""
        t = answer.get("ticket") or {}
        self.result = {
            "number": t.get("number"), "queue": t.get("queue"), "matter": t.get("matter"),
            "priority": t.get("priority"), "phone_masked": t.get("phone_masked"),
            "people_ahead": answer.get("people_ahead"), "wait": _minutes(answer.get("predicted_wait_min")),
            "where": self.where_of(t.get("queue")),
        }
        self._finish("done")

    def print_failed(self, number: str | None, *, on_paper: bool = False) -> None:
        """The ticket did not print (it was voided), or printed but central did not confirm it
        (``on_paper``: it will be voided): say so, with the number that will not be called."""
        self.result = {"number": number}
        self.message = {"key": "not_confirmed" if on_paper else "print_failed"}
        self._finish("failed")

    def refused(self, code: str, message: str, detail: Mapping[str, Any] | None = None) -> None:
        """Central refused the ticket (``hall_closed``, ``bad_request``...)."""
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
                       card=self.entry.birth_date is not None, online=self.entry.priority == "online")
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


def _hhmm(iso: Any) -> str | None:
    """``2026-11-23T13:30:00+08:00`` -> ``13:30`` (the hall's local time, as central gives it)."""
    return iso[11:16] if isinstance(iso, str) and len(iso) >= 16 else None
