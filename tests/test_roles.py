"""Issue 8, roles: central refuses an action the calling client's role may not call (`forbidden`),
seen by an outside client over a real Mosquitto. The broker's ACL (hallctl broker-config, its own
test) ties a client's topic level to its MQTT user; here the broker is open, so the test can speak
as any client, the way a misconfigured or hostile one would.

Before the roles, a window node's user opened another window and read kpi.summary with per-clerk
performance: any client could run any action.
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from hallkit import HALL, Observer, central

from hallctl.access.roles import ROLES, Client
from hallctl.bus.topics import Topics
from hallctl.central.config import parse_central_config
from hallctl.errors import ConfigError

T = Topics(HALL)
TEN = datetime(2026, 11, 23, 10, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
CLIENTS = (
    Client("kiosk-1", "kiosk"),
    Client("window-1", "window", ("1",)),
    Client("window-23", "window", ("2", "3")),
    Client("hall-manager", "dashboard"),
    Client("tech", "technician"),
    Client("board-1", "display"),
    Client("yuyue", "booking"),
)


def _req(request_id: str, **data) -> dict:
    return {"v": 1, "request_id": request_id, "data": data}


async def _ask(obs: Observer, client: str, action: str, request_id: str, **data) -> dict:
    res = T.central_res(client)
    earlier = sum(1 for d in obs.docs(res) if d.get("request_id") == request_id)
    await obs.publish(T.central_req(client, action), _req(request_id, **data))
    return (await obs.wait_for(res, lambda d: d.get("request_id") == request_id, count=earlier + 1))[-1]


def _forbidden(answer: dict) -> str:
    assert answer["status"] == "error", answer
    assert answer["error"]["code"] == "forbidden", answer
    return answer["error"]["message"]


async def test_a_window_node_acts_on_its_own_windows_only(mosquitto, tmp_path):
    host, port = mosquitto.host, mosquitto.port
    filters = [f"{T.base}/central/res/+", T.event_filter, T.window_state_filter]
    async with Observer(host, port, filters) as obs, central(host, port, tmp_path, clients=CLIENTS):
        ok = await _ask(obs, "window-1", "window.open", "w1-open", window="1")
        assert ok["status"] == "ok" and ok["data"]["window"]["state"] == "open"
        message = _forbidden(await _ask(obs, "window-1", "window.open", "w1-open-2", window="2"))
        assert "'window-1'" in message and "'2'" in message
        for w in ("2", "3"):  # a client with two windows has both
            assert (await _ask(obs, "window-23", "window.open", f"w23-{w}", window=w))["status"] == "ok"
        _forbidden(await _ask(obs, "window-23", "window.call_next", "w23-call-1", window="1"))
        # nothing was executed for the refused requests: window 2 was opened once, by window-23
        opened = [e["data"]["window"] for e in obs.docs(T.event("window.opened"))]
        assert sorted(opened) == ["1", "2", "3"]
        assert not obs.docs(T.event("ticket.called"))


async def test_each_role_calls_its_actions_and_is_refused_the_others(mosquitto, tmp_path):
    host, port = mosquitto.host, mosquitto.port
    async with Observer(host, port, [f"{T.base}/central/res/+", T.event_filter]) as obs, \
            central(host, port, tmp_path, clients=CLIENTS):
        issued = await _ask(obs, "kiosk-1", "ticket.issue", "k-issue", queue="a")
        assert issued["data"]["ticket"]["number"] == "A001"
        assert (await _ask(obs, "kiosk-1", "queue.status", "k-status"))["status"] == "ok"
        # a kiosk may not call a window, nor read the KPIs with per-clerk figures
        _forbidden(await _ask(obs, "kiosk-1", "window.call_next", "k-call", window="1"))
        _forbidden(await _ask(obs, "kiosk-1", "kpi.summary", "k-kpi"))
        _forbidden(await _ask(obs, "window-1", "kpi.summary", "w-kpi"))
        _forbidden(await _ask(obs, "tech", "staffing.advice", "t-staffing"))
        _forbidden(await _ask(obs, "board-1", "ticket.issue", "b-issue", queue="a"))
        # the hall manager reads them
        kpi = await _ask(obs, "hall-manager", "kpi.summary", "m-kpi")
        assert kpi["status"] == "ok" and "by_clerk" in kpi["data"]
        assert (await _ask(obs, "hall-manager", "staffing.advice", "m-staffing"))["status"] == "ok"
        _forbidden(await _ask(obs, "hall-manager", "window.open", "m-open", window="1"))
        # everyone reads a ticket's status (the kiosk's 查询, the board, a technician)
        for client in ("board-1", "tech", "hall-manager", "window-1"):
            got = await _ask(obs, client, "ticket.status", f"{client}-ts", ticket="A001")
            assert got["status"] == "ok" and got["data"]["ticket"]["number"] == "A001"
        # a client the hall does not list may do nothing, not even read
        message = _forbidden(await _ask(obs, "stranger", "queue.status", "s-status"))
        assert "[[client]]" in message
        assert len(obs.docs(T.event("ticket.issued"))) == 1, "a refused ticket.issue issued a ticket"


async def test_a_refusal_is_not_remembered_and_an_unknown_action_stays_unknown(mosquitto, tmp_path):
    """A retry with the same request_id after the hall's config grants the action runs (forbidden
    is never stored); an action central does not have is unknown_command for every role."""
    host, port = mosquitto.host, mosquitto.port
    async with Observer(host, port, [f"{T.base}/central/res/+"]) as obs, \
            central(host, port, tmp_path, clients=CLIENTS) as svc:
        _forbidden(await _ask(obs, "board-1", "ticket.issue", "b-1", queue="a"))
        svc.set_clients(CLIENTS + (Client("board-2", "display"),))
        _forbidden(await _ask(obs, "board-1", "ticket.issue", "b-1", queue="a"))
        svc.set_clients(tuple(c for c in CLIENTS if c.id != "board-1") + (Client("board-1", "kiosk"),))
        again = await _ask(obs, "board-1", "ticket.issue", "b-1", queue="a")
        assert again["status"] == "ok" and again["data"]["ticket"]["number"] == "A001"
        unknown = await _ask(obs, "kiosk-1", "ticket.print", "k-print")
        assert unknown["error"]["code"] == "unknown_command"


async def test_an_open_hall_lets_every_client_call_every_action(mosquitto, tmp_path, caplog):
    """No [[client]] in the config: the demo's and a bench's hall. Central says so in its log."""
    host, port = mosquitto.host, mosquitto.port
    async with Observer(host, port, [f"{T.base}/central/res/+"]) as obs, central(host, port, tmp_path):
        assert (await _ask(obs, "anyone", "kpi.summary", "a-kpi"))["status"] == "ok"
        assert (await _ask(obs, "anyone", "window.open", "a-open", window="3"))["status"] == "ok"
    assert any("every client may call every action" in r.getMessage() for r in caplog.records)


async def test_the_booking_system_books_and_cancels_a_kiosk_may_not(mosquitto, tmp_path):
    """Issue 9: appointments are booked by the hall's booking system (role booking), not by a
    kiosk or a window; the kiosk then issues the booking's ticket by its code."""
    host, port = mosquitto.host, mosquitto.port
    async with Observer(host, port, [f"{T.base}/central/res/+", T.event_filter]) as obs, \
            central(host, port, tmp_path, clients=CLIENTS, clock=lambda: TEN) as svc:
        slot = "2026-11-23T10:30:00+08:00"
        for client in ("kiosk-1", "window-1", "board-1", "hall-manager"):
            _forbidden(await _ask(obs, client, "appointment.book", f"{client}-book", code="YY0001", queue="a",
                                  slot=slot))
        booked = await _ask(obs, "yuyue", "appointment.book", "y-book", code="YY0001", queue="a", slot=slot)
        assert booked["status"] == "ok" and booked["data"]["appointment"]["status"] == "booked"
        _forbidden(await _ask(obs, "kiosk-1", "appointment.cancel", "k-cancel", code="YY0001"))
        # the booking system may read a ticket's status and the queues, but not issue or call
        _forbidden(await _ask(obs, "yuyue", "ticket.issue", "y-issue", appointment="YY0001"))
        _forbidden(await _ask(obs, "yuyue", "window.call_next", "y-call", window="1"))
        assert (await _ask(obs, "yuyue", "queue.status", "y-status"))["status"] == "ok"
        issued = await _ask(obs, "kiosk-1", "ticket.issue", "k-issue", appointment="YY0001")
        assert issued["data"]["ticket"]["priority"] == "appointment"
        used = await _ask(obs, "yuyue", "appointment.cancel", "y-cancel", code="YY0001")
        assert used["error"]["code"] == "conflict" and used["error"]["detail"]["reason"] == "used"
        assert svc.core.state.appointments["YY0001"].ticket == issued["data"]["ticket"]["id"]


async def test_an_online_code_reaches_the_window_that_calls_the_ticket_only(mosquitto, tmp_path):
    """The online application's code (网上件) is given to the window the ticket is called to, in
    its window actions' answers and its ticket.status, and to nobody else: not another window,
    not the board, not the kiosk that issued it, on no event."""
    host, port = mosquitto.host, mosquitto.port
    async with Observer(host, port, [f"{T.base}/#"]) as obs, central(host, port, tmp_path, clients=CLIENTS):
        issued = await _ask(obs, "kiosk-1", "ticket.issue", "k-online", queue="a", online_code="ZJWB20261123")
        assert "online_code" not in issued["data"]["ticket"] and issued["data"]["ticket"]["priority"] == "online"
        before = await _ask(obs, "window-1", "ticket.status", "w1-before", ticket="A001")
        assert "online_code" not in before["data"]["ticket"]  # not called yet: no window's
        await _ask(obs, "window-1", "window.open", "w1-open", window="1")
        called = await _ask(obs, "window-1", "window.call_next", "w1-call", window="1")
        assert called["data"]["ticket"]["online_code"] == "ZJWB20261123"
        started = await _ask(obs, "window-1", "window.start", "w1-start", window="1")
        assert started["data"]["ticket"]["online_code"] == "ZJWB20261123"
        mine = await _ask(obs, "window-1", "ticket.status", "w1-status", ticket="A001")
        assert mine["data"]["ticket"]["online_code"] == "ZJWB20261123"
        for client in ("window-23", "board-1", "kiosk-1", "tech", "hall-manager"):
            theirs = await _ask(obs, client, "ticket.status", f"{client}-status", ticket="A001")
            assert theirs["status"] == "ok" and "online_code" not in theirs["data"]["ticket"], client
        await obs.wait_for(T.event("ticket.started"))
    allowed = {T.central_res("window-1"), T.central_req("kiosk-1", "ticket.issue")}
    where = {topic for topic, payload, _ in obs.messages if b"ZJWB20261123" in payload}
    assert where and where <= allowed, f"the online code was published on {where - allowed}"


# -- the [[client]] section of central's config ------------------------------------------------

_BASE = {
    "central": {"hall": "h"},
    "queue": [{"id": "a", "prefix": "A", "name": "综合"}],
    "window": [{"id": "1", "name": "1号窗口"}, {"id": "2", "name": "2号窗口"}],
}


def _config(*clients: dict):
    return parse_central_config({**_BASE, "client": list(clients)}, file="central.toml")


def test_the_config_lists_clients_with_their_roles():
    cfg = _config({"id": "kiosk-1", "role": "kiosk"}, {"id": "window-2", "role": "window", "windows": ["2"]})
    assert cfg.clients == (Client("kiosk-1", "kiosk"), Client("window-2", "window", ("2",)))
    assert parse_central_config(_BASE).clients is None  # none listed: an open hall


@pytest.mark.parametrize("client, key, problem", [
    ({"id": "k", "role": "kisok"}, "client[0].role", "unknown role 'kisok'; did you mean 'kiosk'?"),
    ({"id": "w", "role": "window"}, "client[0].windows", "a window client needs the windows"),
    ({"id": "w", "role": "window", "windows": ["9"]}, "client[0].windows[0]", "unknown window '9'"),
    ({"id": "k", "role": "kiosk", "windows": ["1"]}, "client[0].windows", "only a window client has windows"),
    ({"id": "central", "role": "kiosk"}, "client[0].id", "central's own id"),
    ({"id": "Kiosk_1", "role": "kiosk"}, "client[0].id", "invalid id 'Kiosk_1'"),
])
def test_a_bad_client_entry_names_its_key(client, key, problem):
    with pytest.raises(ConfigError) as err:
        _config(client)
    assert err.value.key == key and problem in err.value.message, err.value.message


def test_two_clients_with_one_id_are_refused():
    with pytest.raises(ConfigError) as err:
        _config({"id": "k", "role": "kiosk"}, {"id": "k", "role": "display"})
    assert err.value.key == "client[1].id" and "duplicate client id 'k'" in err.value.message


def test_every_role_the_issue_names_exists():
    assert set(ROLES) == {"central", "outside-central", "kiosk", "window", "display", "sms", "technician",
                          "dashboard", "booking"}


def test_the_roles_table_in_topics_md_is_the_code_s():
    """docs/topics.md's roles table, read the way an integrator reads it, says what the code does."""
    import re
    from pathlib import Path

    from hallctl.access.roles import WINDOW_ACTIONS

    text = (Path(__file__).resolve().parent.parent / "docs" / "topics.md").read_text(encoding="utf-8")
    section = text.split("## Roles and access", 1)[1].split("\n## ", 1)[0]
    documented: dict[str, set[str]] = {}
    for row in re.findall(r"^\| (`.+?) \| (.+?) \|", section, flags=re.M):
        names, actions = row
        called = {a for a in re.findall(r"`([a-z_.*]+)`", actions) if "." in a}  # actions are dotted
        if "window.*" in called:
            called = (called - {"window.*"}) | WINDOW_ACTIONS
        for role in re.findall(r"`([a-z-]+)`", names):
            documented[role] = {"*"} if actions.startswith("all") else called
    assert documented == {name: set(role.actions) for name, role in ROLES.items()}
