"""Who may do what in a hall: the roles, the central actions each may call and the topics each may
read and write. One table, read by central (which refuses an action a caller's role may not call:
``forbidden``) and by ``hallctl broker-config`` (which turns it into Mosquitto's ACL file), so the
two cannot disagree. docs/access.md is its human form.

A client is known by the ``<client>`` level of its request topic, which the broker's ACL ties to its
MQTT user name (``central/req/%u/...``): central trusts the topic because the broker checked it.
Topic filters here are relative to the hall's root (``hallctl/v1/<hall>/``); ``%u`` is the user.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from hallctl.errors import Forbidden

__all__ = ["Role", "ROLES", "COMMON", "Client", "Access", "WINDOW_ACTIONS"]

#: the actions that act on one window (``data.window``); a window role may call them only for
#: the windows its client is given
WINDOW_ACTIONS = frozenset({
    "window.call_next", "window.recall", "window.start", "window.complete", "window.no_show",
    "window.transfer", "window.open", "window.pause", "window.close",
})
_VIEWS = frozenset({"queue.status", "ticket.status"})
#: issuing a ticket, and confirming or voiding its print (ticket.issue {confirm: "print"})
_ISSUE = frozenset({"ticket.issue", "ticket.confirm", "ticket.void"})
#: the hall's booking system (预约平台): booking and cancelling appointments by their codes
_BOOKING = frozenset({"appointment.book", "appointment.cancel"})
ALL = frozenset({"*"})


@dataclass(frozen=True)
class Role:
    name: str
    doc: str
    #: central actions this role may call; {"*"}: every action
    actions: frozenset[str]
    #: topic filters (relative to the hall root) it may read, beyond :data:`COMMON`
    reads: tuple[str, ...] = ()
    #: ... and read and write
    readwrite: tuple[str, ...] = ()
    #: window actions only for the client's own windows (``[[client]] windows``)
    own_windows: bool = False

    def may_call(self, action: str) -> bool:
        return "*" in self.actions or action in self.actions


@dataclass(frozen=True)
class Common:
    """What every client may do, as ``%u`` patterns: its own node subtree, its own requests and
    responses, and the hall's public state."""

    reads: tuple[str, ...] = ("central/status", "central/catalogue", "central/res/%u", "window/+/state", "board/state",
                              "event/+")
    writes: tuple[str, ...] = ("central/req/%u/+",)
    readwrite: tuple[str, ...] = ("node/%u/#",)


COMMON = Common()

_ROLES = (
    Role("central", "hallctl central: the hall's queue engine", ALL, readwrite=("#",)),
    Role("outside-central", "another vendor's or a provincial platform's central, in place of ours",
         ALL, readwrite=("#",)),
    Role("kiosk", "a ticket machine (取号机) node", _ISSUE | _VIEWS),
    Role("window", "a window's node or a clerk's client: the window actions for its own windows",
         WINDOW_ACTIONS | _ISSUE | _VIEWS, own_windows=True),
    Role("display", "a call-order board or voice caller node: reads the hall's public state", _VIEWS),
    Role("booking", "the hall's booking system (预约平台) or its adapter: books and cancels appointments",
         _BOOKING | _VIEWS),
    Role("sms", "an SMS gateway: the only role besides central that reads phone numbers (sms/#)",
         _VIEWS, readwrite=("sms/#",)),
    Role("technician", "diagnostics: every node's devices and the hall's health", _VIEWS,
         reads=("central/health",), readwrite=("node/#",)),
    Role("dashboard", "the hall manager and the hall's screens: KPIs with per-clerk figures, "
         "staffing, health", _VIEWS | frozenset({"kpi.summary", "staffing.advice"}),
         reads=("central/kpi", "central/staffing", "central/health", "node/+/status", "node/+/birth",
                "node/+/dev/+/state")),
)
#: role name -> role
ROLES: dict[str, Role] = {r.name: r for r in _ROLES}


@dataclass(frozen=True)
class Client:
    """One credential of the hall: ``[[client]]`` in central's config."""

    id: str
    role: str
    #: the windows a ``window`` client may act on
    windows: tuple[str, ...] = ()


class Access:
    """Central's check of a caller's role. ``Access(None)``: no clients are configured and every
    client may call every action (an open hall: the demo, a bench); central says so at start."""

    def __init__(self, clients: tuple[Client, ...] | None) -> None:
        self.open = clients is None
        self._clients = {c.id: c for c in clients or ()}

    def check(self, client: str, action: str, data: Mapping[str, Any] | None) -> None:
        """Raise :class:`Forbidden` when ``client`` may not call ``action`` with ``data``."""
        if self.open:
            return
        known = self._clients.get(client)
        if known is None:
            raise Forbidden(f"client {client!r} is not one of the hall's clients ([[client]] in "
                            f"central's config)", action=action)
        role = ROLES[known.role]
        if not role.may_call(action):
            raise Forbidden(f"client {client!r} (role {role.name}) may not call {action}", action=action)
        if role.own_windows and action in WINDOW_ACTIONS:
            window = (data or {}).get("window")
            # a missing or mistyped window is the action's own bad_request
            if isinstance(window, str) and window not in known.windows:
                mine = ", ".join(known.windows) or "none"
                raise Forbidden(f"client {client!r} may act on its own windows only ({mine}), not "
                                f"{window!r}", action=action, window=window)

    def sees_window(self, client: str, window: str | None) -> bool:
        """Whether ``client`` is told what only the window a ticket is called to may know (an
        online application's code, in its ``ticket.status`` answer): a window client of that
        window, central's roles, anyone in an open hall."""
        if self.open:
            return True
        known = self._clients.get(client)
        if known is None or window is None:
            return False
        role = ROLES[known.role]
        if "*" in role.actions:
            return True
        return role.own_windows and window in known.windows
