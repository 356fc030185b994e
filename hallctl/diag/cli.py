"""``hallctl diag``: what the hall's nodes and devices say about themselves, over MQTT.

Every option also comes from the environment (``HALLCTL_BROKER``, ``HALLCTL_HALL``,
``HALLCTL_USERNAME``, ``HALLCTL_PASSWORD_FILE``, ``HALLCTL_TLS_CA``, ``HALLCTL_CONFIG``,
``HALLCTL_TIMEOUT``); a node config (``-c``) gives the broker, the hall, the credentials and the
TLS settings of that node. A password is read from a file, never from the command line (where
``ps`` would show it).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from datetime import datetime, timezone
from typing import Any, Sequence

from hallctl.bus.topics import Topics, parse
from hallctl.diag.session import BrokerUnreachable, Connection, Session
from hallctl.diag.settings import connection_from, env_flag, positive_seconds

#: exit codes (also in ``hallctl diag --help``)
OK, PROBLEM, USAGE, NO_ANSWER, UNREACHABLE = 0, 1, 2, 3, 4

EPILOG = """\
settings: a command-line option wins, then the node config given with -c, then the environment
(HALLCTL_BROKER, HALLCTL_HALL, HALLCTL_CONFIG, HALLCTL_USERNAME, HALLCTL_PASSWORD_FILE,
HALLCTL_TLS_CA, HALLCTL_TIMEOUT, HALLCTL_JSON=1), then the defaults.

exit codes: 0 all well; 1 a problem was found (a node lost, a device not ok, an action answered
an error); 2 usage error (unknown node, device or action); 3 no answer in time; 4 broker
unreachable or credentials refused.

examples:
  hallctl diag devices                       every device with its health
  hallctl diag run window-3/display          the actions the device announces, with their arguments
  hallctl diag run window-3/display show 'lines=["测试", "3号窗口"]'
  hallctl diag events --follow --node window-3
  hallctl diag health --json
"""


def add_parser(sub: Any) -> None:
    p = sub.add_parser("diag", help="the hall's nodes, devices, events and health, over MQTT",
                       description=__doc__, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--broker", metavar="HOST:PORT",
                        help="MQTT broker (else -c's, else env HALLCTL_BROKER, else 127.0.0.1:1883)")
    common.add_argument("--hall", help="hall id (else -c's, else env HALLCTL_HALL)")
    common.add_argument("-c", "--config", metavar="FILE",
                        help="take broker, hall, credentials and TLS from this node config (else env HALLCTL_CONFIG)")
    common.add_argument("--username", help="MQTT user (else -c's, else env HALLCTL_USERNAME)")
    common.add_argument("--password-file", metavar="FILE",
                        help="file holding the MQTT password (else env HALLCTL_PASSWORD_FILE)")
    common.add_argument("--tls-ca", metavar="FILE",
                        help="connect over TLS, verifying the broker against this CA certificate "
                             "(else -c's [mqtt] tls_ca, else env HALLCTL_TLS_CA)")
    common.add_argument("--timeout", type=positive_seconds, default=None, metavar="S",
                        help="seconds to wait for the broker and for answers (else env HALLCTL_TIMEOUT, else 5)")
    common.add_argument("--json", action="store_true", default=env_flag("HALLCTL_JSON"),
                        help="machine-readable output (env HALLCTL_JSON=1)")
    cmds = p.add_subparsers(dest="diag_command", metavar="WHAT", required=True)
    cmds.add_parser("nodes", parents=[common], help="nodes: online or lost, version, uptime, bd_seq, last seen")
    cmds.add_parser("devices", parents=[common], help="devices: kind, model, health with the reason and since when")
    ev = cmds.add_parser("events", parents=[common], help="queue and device events as they happen")
    ev.add_argument("--follow", "-f", action="store_true", help="keep printing until Ctrl-C")
    ev.add_argument("--node", help="only this node's device events")
    ev.add_argument("--device", help="only this device's events")
    ev.add_argument("--type", dest="type_", metavar="TYPE", help="only events of this type (ticket.called, pressed...)")
    ev.add_argument("--count", type=int, default=None, help="stop after N events")
    ev.add_argument("--duration", type=float, default=None, metavar="S", help="stop after S seconds (default without --follow: 10)")
    run = cmds.add_parser("run", parents=[common], help="run an action a device announces",
                          description="Run any action a device announces in its node's birth; without an "
                                      "action, list them with their arguments. Values are JSON when they parse "
                                      "as JSON (3, true, [\"a\"]), text otherwise.")
    run.add_argument("target", metavar="NODE/DEVICE")
    run.add_argument("action", nargs="?")
    run.add_argument("args", nargs="*", metavar="KEY=VALUE")
    cmds.add_parser("health", parents=[common], help="the hall summary central keeps: lost nodes, devices not ok")


def main(args: argparse.Namespace) -> int:
    if args.verbose == 0:  # the bus's reconnect warnings are for daemons; diag says it in one line
        logging.getLogger("hallctl.bus").setLevel(logging.ERROR)
    try:
        conn = connection_from(args)
    except ValueError as exc:
        print(f"hallctl diag: {exc}", file=sys.stderr)
        return USAGE
    handler = {"nodes": _nodes, "devices": _devices, "events": _events, "run": _run, "health": _health}[args.diag_command]
    try:
        return asyncio.run(handler(args, conn))
    except BrokerUnreachable as exc:
        print(f"hallctl diag: {exc}", file=sys.stderr)
        return UNREACHABLE
    except KeyboardInterrupt:
        return OK


# -- nodes and devices ---------------------------------------------------------------------------


async def _snapshot(conn: Connection, *filters: str) -> dict[str, Any]:
    async with Session(conn, list(filters)) as s:
        await s.settle()
        return dict(s.retained)


def _by_node(docs: dict[str, Any], kind: str) -> dict[str, Any]:
    out = {}
    for topic, doc in docs.items():
        p = parse(topic)
        if p is not None and p.kind == kind:
            out[p.node if kind != "dev_state" else (p.node, p.device)] = doc
    return out


async def halls_seen(conn: Connection) -> list[str]:
    """Every hall with a central or a node on this broker (a wrong --hall finds nothing)."""
    async with Session(conn, ["hallctl/v1/+/central/status", "hallctl/v1/+/node/+/status"]) as s:
        await s.settle(quiet=0.2)
        return sorted({t.split("/")[2] for t in s.retained})


async def _nothing_here(conn: Connection, what: str) -> int:
    halls = [h for h in await halls_seen(conn) if h != conn.hall]
    seen = f"halls on this broker: {', '.join(halls)}" if halls else "no hall has announced itself on this broker"
    print(f"no {what} in hall {conn.hall} on {conn.host}:{conn.port} ({seen})", file=sys.stderr)
    return PROBLEM


async def _nodes(args: argparse.Namespace, conn: Connection) -> int:
    t = Topics(conn.hall)
    docs = await _snapshot(conn, t.node_status_filter, t.node_birth_filter, t.central_health)
    status, births = _by_node(docs, "node_status"), _by_node(docs, "node_birth")
    # a will is made when the node connects, so its ts is not when the node was lost: central's
    # health document dates a loss it saw happen
    lost_since = {p["node"]: p.get("since") for p in (docs.get(t.central_health) or {}).get("problems", [])
                  if p.get("device") is None}
    rows = []
    now = datetime.now(timezone.utc)
    for node in sorted(set(status) | set(births)):
        st, birth = status.get(node, {}), births.get(node, {})
        started = birth.get("started")
        rows.append({
            "node": node, "state": st.get("state", "unknown"), "bd_seq": st.get("bd_seq"),
            "version": birth.get("version"), "devices": len(birth.get("devices", [])),
            "uptime_s": round((now - _time(started)).total_seconds()) if started and st.get("state") == "ready" else None,
            "since": lost_since.get(node) if st.get("state") != "ready" and lost_since.get(node) else st.get("ts"),
        })
    if args.json:
        _print_json({"hall": conn.hall, "nodes": rows})
    else:
        _table(["NODE", "STATE", "VERSION", "UPTIME", "BD_SEQ", "DEVICES", "SINCE"],
               [[r["node"], r["state"], r["version"] or "-", _duration(r["uptime_s"]), r["bd_seq"],
                 r["devices"], _local(r["since"])] for r in rows])
    if not rows:
        return await _nothing_here(conn, "node has announced itself")
    return PROBLEM if any(r["state"] != "ready" for r in rows) else OK


def device_rows(docs: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per device announced in a birth, with its latest state."""
    status, births, states = _by_node(docs, "node_status"), _by_node(docs, "node_birth"), _by_node(docs, "dev_state")
    rows = []
    for node in sorted(births):
        node_state = status.get(node, {}).get("state", "unknown")
        for dev in births[node].get("devices", []):
            st = states.get((node, dev.get("id")), {})
            model = dev.get("model") or {}
            health, reason = st.get("health", "unknown"), st.get("reason", "no state published")
            if node_state != "ready":  # the node is gone: its last device state is not the truth
                health, reason = "unknown", f"node {node} is {node_state}"
            rows.append({"node": node, "device": dev.get("id"), "kind": dev.get("kind"),
                         "model": " ".join(x for x in (model.get("vendor"), model.get("name")) if x) or dev.get("profile"),
                         "available": bool(st.get("available")) and node_state == "ready",
                         "health": health, "reason": reason, "since": st.get("since")})
    return rows


async def _devices(args: argparse.Namespace, conn: Connection) -> int:
    t = Topics(conn.hall)
    rows = device_rows(await _snapshot(conn, t.node_status_filter, t.node_birth_filter, t.dev_state_filter))
    if args.json:
        _print_json({"hall": conn.hall, "devices": rows})
    else:
        _table(["NODE", "DEVICE", "KIND", "MODEL", "HEALTH", "SINCE", "REASON"],
               [[r["node"], r["device"], r["kind"] or "-", r["model"] or "-", r["health"], _local(r["since"]), r["reason"]]
                for r in rows])
    if not rows:
        return await _nothing_here(conn, "device has been announced")
    return PROBLEM if any(r["health"] != "ok" for r in rows) else OK


# -- events --------------------------------------------------------------------------------------


async def _events(args: argparse.Namespace, conn: Connection) -> int:
    t = Topics(conn.hall)
    filters = [t.dev_event_filter] if args.node or args.device else [t.event_filter, t.dev_event_filter]
    seen = 0
    done = asyncio.Event()

    def on_live(topic: str, doc: Any) -> None:
        nonlocal seen
        p = parse(topic)
        if p is None or p.kind not in ("event", "dev_event"):
            return
        if (args.node and p.node != args.node) or (args.device and p.device != args.device) \
                or (args.type_ and p.name != args.type_):
            return
        if args.count is not None and seen >= args.count:
            return  # --count N prints N, even when more arrive in one batch before it stops
        seen += 1
        if args.json:
            print(json.dumps({"topic": topic, "node": p.node, "device": p.device, "type": p.name, "doc": doc},
                             ensure_ascii=False), flush=True)
        else:
            where = f"{p.node}/{p.device}" if p.kind == "dev_event" else "central"
            data = doc.get("data") if isinstance(doc, dict) else doc
            print(f"{_local(doc.get('ts') if isinstance(doc, dict) else None)}  {where:<24} {p.name:<20} "
                  f"{json.dumps(data, ensure_ascii=False)}", flush=True)
        if args.count is not None and seen >= args.count:
            done.set()

    if args.node or args.device:
        births = _by_node(await _snapshot(conn, t.node_birth_filter), "node_birth")
        known = {(n, d.get("id")) for n, b in births.items() for d in b.get("devices", [])}
        if (args.node and args.node not in births) or (args.device and not any(
                d == args.device and (not args.node or n == args.node) for n, d in known)):
            print(f"hallctl diag events: no such node or device in hall {conn.hall} "
                  f"(devices: {', '.join(sorted(f'{n}/{d}' for n, d in known)) or 'none'})", file=sys.stderr)
            return USAGE
    duration = args.duration if args.duration is not None else (None if args.follow else 10.0)
    if not args.json:
        print(f"waiting for events in hall {conn.hall}"
              + (" (Ctrl-C to stop)" if duration is None else f" for {duration:g} s"), file=sys.stderr, flush=True)
    async with Session(conn, filters, on_live=on_live):
        try:
            async with asyncio.timeout(duration):
                await done.wait()
        except TimeoutError:
            pass
    return OK


# -- run -----------------------------------------------------------------------------------------


def parse_value(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


async def _run(args: argparse.Namespace, conn: Connection) -> int:
    node, _, device = args.target.partition("/")
    if not node or not device:
        print(f"hallctl diag run: the target is NODE/DEVICE (e.g. window-3/display), got {args.target!r}", file=sys.stderr)
        return USAGE
    data: dict[str, Any] = {}
    for item in args.args:
        key, eq, value = item.partition("=")
        if not eq or not key:
            print(f"hallctl diag run: arguments are KEY=VALUE, got {item!r}", file=sys.stderr)
            return USAGE
        data[key] = parse_value(value)
    t = Topics(conn.hall)
    try:
        filters = [t.node_birth(node), t.node_status(node), t.dev_state(node, device), t.dev_res_filter(node, device)]
    except Exception as exc:  # an id the topic rule refuses
        print(f"hallctl diag run: {getattr(exc, 'message', exc)}", file=sys.stderr)
        return USAGE
    async with Session(conn, filters) as s:
        await s.settle(quiet=0.2)
        birth = s.retained.get(t.node_birth(node))
        if birth is None:
            print(f"hallctl diag run: node {node!r} has not announced itself in hall {conn.hall}", file=sys.stderr)
            return USAGE
        dev = next((d for d in birth.get("devices", []) if d.get("id") == device), None)
        if dev is None:
            known = ", ".join(d.get("id", "?") for d in birth.get("devices", []))
            print(f"hallctl diag run: node {node} has no device {device!r} (devices: {known})", file=sys.stderr)
            return USAGE
        specs = dev.get("action_specs") or {a: {} for a in dev.get("actions", [])}
        node_state = s.retained.get(t.node_status(node), {}).get("state", "unknown")
        if args.action is None or args.action not in specs:
            if args.action is not None:
                print(f"hallctl diag run: {node}/{device} has no action {args.action!r}", file=sys.stderr)
            _list_actions(node, device, dev, specs, args.json)
            return USAGE if args.action is not None else OK
        if node_state != "ready":
            print(f"hallctl diag run: node {node} is {node_state}: nothing there to answer "
                  f"(check its power and network, then `systemctl status hallctl-node` on it)", file=sys.stderr)
            return NO_ANSWER
        try:
            response = await s.command(node, device, args.action, data)
        except TimeoutError:
            print(f"hallctl diag run: no answer from {node}/{device} within {conn.timeout:g} s", file=sys.stderr)
            return NO_ANSWER
    if args.json:
        _print_json(response)
    elif response.get("status") == "ok":
        print(f"ok: {json.dumps(response.get('data', {}), ensure_ascii=False)}")
    else:
        err = response.get("error", {})
        print(f"error {err.get('code')}: {err.get('message')}")
        if err.get("code") == "bad_request" and data:
            print("  (values are JSON when they parse as JSON: lines='[\"请A001号\", \"到3号窗口\"]' level=8)")
    return OK if response.get("status") == "ok" else PROBLEM


def _list_actions(node: str, device: str, dev: dict[str, Any], specs: dict[str, Any], as_json: bool) -> None:
    from hallctl_drivers.schema import describe

    if as_json:
        _print_json({"node": node, "device": device, "kind": dev.get("kind"), "actions": specs})
        return
    print(f"{node}/{device} ({dev.get('kind')}) actions:")
    for name in sorted(specs, key=lambda n: (not specs[n].get("test"), n)):
        spec = specs[name]
        test = " [test]" if spec.get("test") else ""
        print(f"  {name:<12} {spec.get('doc', '')}{test}")
        if spec.get("args", {}).get("properties"):
            print(f"  {'':<12} args: {describe(spec['args'])}")


# -- health --------------------------------------------------------------------------------------


async def _health(args: argparse.Namespace, conn: Connection) -> int:
    t = Topics(conn.hall)
    docs = await _snapshot(conn, t.central_health, t.central_status)
    health, central = docs.get(t.central_health), docs.get(t.central_status)
    if health is None:
        print(f"hallctl diag health: central publishes no health for hall {conn.hall} "
              f"(central status: {(central or {}).get('state', 'never seen')})", file=sys.stderr)
        return NO_ANSWER
    if args.json:
        _print_json({**health, "central": (central or {}).get("state")})
    else:
        c = health.get("counts", {})
        print(f"hall {conn.hall}: {'OK' if health.get('ok') else 'PROBLEMS'} - central {(central or {}).get('state', '?')}, "
              f"{c.get('nodes_ready', 0)}/{c.get('nodes', 0)} nodes ready, {c.get('devices_ok', 0)}/{c.get('devices', 0)} devices ok")
        if health.get("problems"):
            _table(["NODE", "DEVICE", "HEALTH", "SINCE", "REASON"],
                   [[p.get("node"), p.get("device") or "-", p.get("health"), _local(p.get("since")), p.get("reason")]
                    for p in health["problems"]])
    return OK if health.get("ok") and (central or {}).get("state") == "online" else PROBLEM


# -- output --------------------------------------------------------------------------------------


def _print_json(doc: Any) -> None:
    print(json.dumps(doc, ensure_ascii=False, indent=1))


def _table(header: Sequence[str], rows: list[list[Any]]) -> None:
    cells = [[str(x) if x is not None else "-" for x in row] for row in rows]
    widths = [max([_width(h)] + [_width(r[i]) for r in cells]) for i, h in enumerate(header)]
    for row in [list(header)] + cells:
        print("  ".join(c + " " * (w - _width(c)) for c, w in zip(row, widths)).rstrip())


def _width(text: str) -> int:
    """Terminal columns: CJK characters take two."""
    return sum(2 if ord(ch) > 0x2E80 else 1 for ch in text)


def _time(text: str) -> datetime:
    return datetime.fromisoformat(str(text).replace("Z", "+00:00"))


def _local(text: Any) -> str:
    if not text:
        return "-"
    try:
        return _time(text).astimezone().strftime("%m-%d %H:%M:%S")
    except ValueError:
        return str(text)


def _duration(seconds: Any) -> str:
    if seconds is None:
        return "-"
    s = int(seconds)
    return f"{s // 86400}d{s % 86400 // 3600:02d}h" if s >= 86400 else f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 \
        else f"{s // 60}m{s % 60:02d}s"
