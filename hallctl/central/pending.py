"""Print-confirmed issuance: the rules for tickets pending their print, and each ticket's token.

A kiosk asks ``ticket.issue {confirm: "print"}``: the ticket gets its number but is ``pending``,
called by nobody, until the kiosk says its printer printed it (``ticket.confirm``) or failed to
(``ticket.void {reason}``). Central voids one not confirmed within ``HallSpec.print_confirm_s``
itself (reason :data:`NOT_CONFIRMED`). Pure: times are epoch seconds given by the caller.

Every ticket also gets a token, the unguessable key of its status link. The core takes it from an
injected source (:func:`new_token` by default) and stores it in the ``ticket.issued`` event, so a
replay gives every ticket its token back without drawing new ones.
"""

from __future__ import annotations

import re
import secrets
from typing import Mapping

from hallctl.central.model import TOKEN_PLACEHOLDER
from hallctl.privacy import scrub

#: why a pending ticket is voided: a lower-case name (no digits: it is published, and no phone or
#: ID card number can hide in it). The kiosk names the printer's fault; central's own is
#: NOT_CONFIRMED
VOID_REASON_RE = re.compile(r"^[a-z][a-z_]{0,31}$")
#: the reason central gives when the kiosk never confirmed the print in time
NOT_CONFIRMED = "not_confirmed"
#: bytes of randomness in a token: 128 bits, 22 url-safe characters
TOKEN_BYTES = 16


def new_token() -> str:
    """A fresh token: 128 random bits, url-safe base64. One whose characters happen to read as a
    phone or ID card number (odds about 1e-9) is drawn again: no masking may ever touch it."""
    while True:
        token = secrets.token_urlsafe(TOKEN_BYTES)
        if scrub(token) == token:
            return token


def ticket_link(template: str | None, token: str) -> str | None:
    """The status link of a ticket, from the hall's template (None: the hall has none)."""
    return None if template is None else template.replace(TOKEN_PLACEHOLDER, token)


def confirm_due(issued: float, within_s: float) -> float:
    """When a ticket issued at ``issued`` must be confirmed by."""
    return issued + within_s


def overdue(pending: Mapping[str, float], now: float, within_s: float) -> list[str]:
    """The pending tickets (id -> epoch issued) whose confirmation is past due at ``now``, in the
    order they were issued."""
    return [t for t, issued in pending.items() if confirm_due(issued, within_s) <= now]


def next_due(pending: Mapping[str, float], within_s: float) -> float | None:
    """The earliest confirmation deadline of the pending tickets; None when none is pending."""
    return confirm_due(min(pending.values()), within_s) if pending else None
