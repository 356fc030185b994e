"""Topic contract v1: every topic hallctl publishes or subscribes to is built and parsed here.

Layout (``docs/topics.md`` is the human contract; keep the two in step)::

    hallctl/v1/<hall>/central/status                       retained, will
    hallctl/v1/<hall>/central/staffing                      retained: windows advised per half hour
    hallctl/v1/<hall>/central/kpi                           retained: today's KPIs, refreshed
    hallctl/v1/<hall>/central/health                        retained: lost nodes, faulty devices
    hallctl/v1/<hall>/central/catalogue                     retained: what a kiosk offers (public)
    hallctl/v1/<hall>/central/req/<client>/<action>         requests to central (QoS 1)
    hallctl/v1/<hall>/central/res/<client>                  responses to that client (QoS 1)
    hallctl/v1/<hall>/event/<type>                          queue events (QoS 1, not retained)
    hallctl/v1/<hall>/window/<window>/state                 retained
    hallctl/v1/<hall>/board/state                           retained
    hallctl/v1/<hall>/node/<node>/status                    retained, will, bd_seq
    hallctl/v1/<hall>/node/<node>/birth                     retained
    hallctl/v1/<hall>/node/<node>/dev/<dev>/state           retained
    hallctl/v1/<hall>/node/<node>/dev/<dev>/cmd/<action>    commands, never retained
    hallctl/v1/<hall>/node/<node>/dev/<dev>/res/<action>    responses (QoS 1)
    hallctl/v1/<hall>/node/<node>/dev/<dev>/event/<type>    device events (QoS 1)

The client id sits in the request topic (not only in the payload) so that even a request whose
payload is not JSON can be answered: the reply address never depends on parsing the body.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from hallctl.errors import BadRequest
from hallctl.ids import ID_RE, ID_RULE

ROOT = "hallctl/v1"
# actions and event types are dotted names: ticket.issue, window.call_next
NAME_RE = re.compile(r"^[a-z][a-z0-9_]*(?:\.[a-z][a-z0-9_]*)*$")


def check_id(value: str, what: str = "id") -> str:
    """Ids are ``[a-z0-9-]``, at most 63 characters, and start with a letter or digit."""
    if not isinstance(value, str) or not ID_RE.match(value):
        raise BadRequest(f"{what} {value!r} is not a valid id ({ID_RULE})")
    return value


def check_name(value: str, what: str = "action") -> str:
    if not isinstance(value, str) or len(value) > 64 or not NAME_RE.match(value):
        raise BadRequest(f"{what} {value!r} is not a valid name (dotted [a-z0-9_])")
    return value


@dataclass(frozen=True)
class Topics:
    """Topic builders for one hall."""

    hall: str

    def __post_init__(self) -> None:
        check_id(self.hall, "hall")

    @property
    def base(self) -> str:
        return f"{ROOT}/{self.hall}"

    # central
    @property
    def central_status(self) -> str:
        return f"{self.base}/central/status"

    def central_req(self, client: str, action: str) -> str:
        return f"{self.base}/central/req/{check_id(client, 'client')}/{check_name(action)}"

    @property
    def central_staffing(self) -> str:
        return f"{self.base}/central/staffing"

    @property
    def central_kpi(self) -> str:
        return f"{self.base}/central/kpi"

    @property
    def central_health(self) -> str:
        return f"{self.base}/central/health"

    @property
    def central_catalogue(self) -> str:
        return f"{self.base}/central/catalogue"

    @property
    def central_req_filter(self) -> str:
        return f"{self.base}/central/req/+/+"

    def central_res(self, client: str) -> str:
        return f"{self.base}/central/res/{check_id(client, 'client')}"

    def event(self, type_: str) -> str:
        return f"{self.base}/event/{check_name(type_, 'event type')}"

    @property
    def event_filter(self) -> str:
        return f"{self.base}/event/+"

    def window_state(self, window: str) -> str:
        return f"{self.base}/window/{check_id(window, 'window')}/state"

    @property
    def window_state_filter(self) -> str:
        return f"{self.base}/window/+/state"

    @property
    def board_state(self) -> str:
        return f"{self.base}/board/state"

    # nodes
    def node_status(self, node: str) -> str:
        return f"{self.base}/node/{check_id(node, 'node')}/status"

    @property
    def node_status_filter(self) -> str:
        return f"{self.base}/node/+/status"

    def node_birth(self, node: str) -> str:
        return f"{self.base}/node/{check_id(node, 'node')}/birth"

    def dev_state(self, node: str, dev: str) -> str:
        return f"{self.base}/node/{check_id(node, 'node')}/dev/{check_id(dev, 'device')}/state"

    def dev_cmd(self, node: str, dev: str, action: str) -> str:
        return f"{self.base}/node/{check_id(node, 'node')}/dev/{check_id(dev, 'device')}/cmd/{check_name(action)}"

    def dev_cmd_filter(self, node: str) -> str:
        return f"{self.base}/node/{check_id(node, 'node')}/dev/+/cmd/+"

    @property
    def dev_state_filter(self) -> str:
        return f"{self.base}/node/+/dev/+/state"

    @property
    def node_birth_filter(self) -> str:
        return f"{self.base}/node/+/birth"

    def dev_res_filter(self, node: str, dev: str) -> str:
        return f"{self.base}/node/{check_id(node, 'node')}/dev/{check_id(dev, 'device')}/res/+"

    @property
    def dev_event_filter(self) -> str:
        return f"{self.base}/node/+/dev/+/event/+"

    def dev_res(self, node: str, dev: str, action: str) -> str:
        return f"{self.base}/node/{check_id(node, 'node')}/dev/{check_id(dev, 'device')}/res/{check_name(action)}"

    def dev_event(self, node: str, dev: str, type_: str) -> str:
        return f"{self.base}/node/{check_id(node, 'node')}/dev/{check_id(dev, 'device')}/event/{check_name(type_, 'event type')}"


@dataclass(frozen=True)
class Parsed:
    """What a topic names. ``kind`` is one of the keys of :data:`_PATTERNS`."""

    kind: str
    hall: str
    node: str | None = None
    device: str | None = None
    window: str | None = None
    client: str | None = None
    name: str | None = None  # action or event type


_SEG = r"([^/]+)"
_PATTERNS: dict[str, re.Pattern[str]] = {
    k: re.compile(rf"^{re.escape(ROOT)}/{_SEG}/{v}$")
    for k, v in {
        "central_status": "central/status",
        "central_staffing": "central/staffing",
        "central_kpi": "central/kpi",
        "central_health": "central/health",
        "central_catalogue": "central/catalogue",
        "central_req": f"central/req/{_SEG}/{_SEG}",
        "central_res": f"central/res/{_SEG}",
        "event": f"event/{_SEG}",
        "window_state": f"window/{_SEG}/state",
        "board_state": "board/state",
        "node_status": f"node/{_SEG}/status",
        "node_birth": f"node/{_SEG}/birth",
        "dev_state": f"node/{_SEG}/dev/{_SEG}/state",
        "dev_cmd": f"node/{_SEG}/dev/{_SEG}/cmd/{_SEG}",
        "dev_res": f"node/{_SEG}/dev/{_SEG}/res/{_SEG}",
        "dev_event": f"node/{_SEG}/dev/{_SEG}/event/{_SEG}",
    }.items()
}
_FIELDS: dict[str, tuple[str, ...]] = {
    "central_status": (),
    "central_staffing": (),
    "central_kpi": (),
    "central_health": (),
    "central_catalogue": (),
    "central_req": ("client", "name"),
    "central_res": ("client",),
    "event": ("name",),
    "window_state": ("window",),
    "board_state": (),
    "node_status": ("node",),
    "node_birth": ("node",),
    "dev_state": ("node", "device"),
    "dev_cmd": ("node", "device", "name"),
    "dev_res": ("node", "device", "name"),
    "dev_event": ("node", "device", "name"),
}


#: topics whose documents are retained: their live updates arrive without the retain flag
RETAINED_KINDS = frozenset({"central_status", "central_staffing", "central_kpi", "central_health",
                            "central_catalogue", "window_state", "board_state", "node_status", "node_birth",
                            "dev_state"})


def parse(topic: str) -> Parsed | None:
    """Name the parts of a v1 topic, or ``None`` for a topic outside the contract.

    Segments are returned as they are; callers validate ids with :func:`check_id` where they act.
    """
    for kind, pattern in _PATTERNS.items():
        m = pattern.match(topic)
        if m:
            hall, *rest = m.groups()
            return Parsed(kind, hall, **dict(zip(_FIELDS[kind], rest)))
    return None


def matches(topic_filter: str, topic: str) -> bool:
    """MQTT topic filter matching (``+`` one level, ``#`` the rest)."""
    f_parts, t_parts = topic_filter.split("/"), topic.split("/")
    for i, part in enumerate(f_parts):
        if part == "#":
            return True
        if i >= len(t_parts) or (part != "+" and part != t_parts[i]):
            return False
    return len(f_parts) == len(t_parts)
