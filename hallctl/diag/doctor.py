"""``hallctl doctor -c /etc/hallctl/node.toml``: what a technician checks on a node before
anything else, each failed check with the fix.

Checks, in order: the config (and the firmware profiles it names), each device's serial port
(present, a character device, readable and writable by this user), the GPIO chip when a device
needs one, a CJK font, the broker with the configured credentials, the clock against central's,
and room for the node's store. Exit 0 when nothing failed (warnings allowed), 1 otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import glob
import json
import os
import shutil
import stat
import subprocess
import sys

from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from hallctl.diag.settings import env_flag, positive_seconds

#: the store needs at least this much free space (a day of outbox at a busy hall is well under)
MIN_FREE_BYTES = 64 * 1024 * 1024
#: a clock further than this from central's makes expires_at and the day's numbering unreliable
MAX_CLOCK_SKEW_S = 2.0
CJK_FONT_HINTS = ("wqy", "notosanscjk", "noto sans cjk", "droidsansfallback", "sourcehansans", "simsun", "simhei")


@dataclass
class Check:
    name: str
    status: str  # ok | warn | fail | skip
    detail: str
    fix: str = ""


def add_parser(sub: Any) -> None:
    p = sub.add_parser("doctor", help="check this node: config, serial ports, GPIO, CJK font, broker, clock, disk",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-c", "--config", default=os.environ.get("HALLCTL_CONFIG", "/etc/hallctl/node.toml"),
                   help="node config (env HALLCTL_CONFIG; default /etc/hallctl/node.toml)")
    p.add_argument("--timeout", type=positive_seconds, default=None, metavar="S",
                   help="seconds to wait for the broker and central (else env HALLCTL_TIMEOUT, else 5)")
    p.add_argument("--json", action="store_true", default=env_flag("HALLCTL_JSON"),
                   help="machine-readable output (env HALLCTL_JSON=1)")


def main(args: argparse.Namespace) -> int:
    timeout = args.timeout
    if timeout is None:
        try:
            timeout = positive_seconds(os.environ.get("HALLCTL_TIMEOUT", "5"))
        except argparse.ArgumentTypeError as exc:
            print(f"hallctl doctor: HALLCTL_TIMEOUT: {exc}", file=sys.stderr)
            return 2
    checks = asyncio.run(run_checks(args.config, timeout))
    if args.json:
        print(json.dumps({"ok": not any(c.status == "fail" for c in checks), "checks": [asdict(c) for c in checks]},
                         ensure_ascii=False, indent=1))
    else:
        for c in checks:
            print(f"{c.status.upper():<5} {c.name:<12} {c.detail}")
            if c.fix and c.status in ("fail", "warn"):
                print(f"{'':<5} {'':<12} fix: {c.fix}")
    return 1 if any(c.status == "fail" for c in checks) else 0


async def run_checks(config: str, timeout: float) -> list[Check]:
    from hallctl.config import load_node_config
    from hallctl.errors import ConfigError
    from hallctl.node.plan import load_plugins, plan_node
    from hallctl.profiles import load_profiles

    try:
        cfg = load_node_config(config)
        load_plugins(cfg)
        plans = plan_node(cfg, load_profiles(cfg.profile_dirs))
    except ConfigError as exc:
        checks = [Check("config", "fail", exc.message, _config_fix(exc, config))]
        return checks + [Check(n, "skip", "needs a valid config") for n in ("devices", "broker", "hall", "clock", "store")]
    checks = [Check("config", "ok", f"{config}: node {cfg.id} in hall {cfg.hall}, {len(plans)} device(s)")]
    for plan in plans:
        checks.append(_profile_check(plan))
        checks += _port_checks(plan)
    checks.append(_gpio_check(plans))
    checks.append(_font_check())
    broker = await _broker_check(cfg, timeout)
    checks.append(broker)
    if broker.status == "ok":
        checks += await _hall_checks(cfg, plans, timeout)
        checks.append(await _clock_check(cfg, timeout))
    else:
        checks += [Check("hall", "skip", "needs the broker"), Check("clock", "skip", "needs the broker")]
    checks.append(_store_check(cfg.store.path))
    return checks


def _config_fix(exc: Any, config: str) -> str:
    if exc.problem == "file not found":
        return (f"copy config/node.example.toml to {exc.file or config} and set this node's id, hall, broker and "
                "devices (or point -c at the node's config)")
    if exc.key:
        return f"open {exc.file or config} and correct {exc.key} (docs/devices.md lists each device's options)"
    return f"open {exc.file or config} and correct it where the message says"


def _profile_check(plan: Any) -> Check:
    if plan.disabled is not None:
        return Check("profile", "fail", f"device {plan.id}: {plan.disabled.message}",
                     f"correct the profile file named in the message, or give device {plan.id} another profile "
                     "(firmware_profiles/ lists the shipped ones)")
    p = plan.profile
    return Check("profile", "ok", f"device {plan.id}: {p.id} ({p.vendor} {p.name}), kind {p.kind}, "
                                  f"features: {', '.join(sorted(p.features)) or 'none'}")


def _paths_of(plan: Any, fmt: str) -> list[tuple[str, str]]:
    """(option key, value) of the driver options whose schema says ``format: fmt``."""
    props = plan.driver.options_schema.get("properties", {}) if plan.driver else {}
    return [(k, str(plan.driver_options[k])) for k, prop in props.items()
            if prop.get("format") == fmt and k in plan.driver_options]


def _port_checks(plan: Any) -> list[Check]:
    out = []
    for key, path in _paths_of(plan, "device-path"):
        name = "serial port"
        where = f"device {plan.id} ({key} = {path})"
        if not os.path.exists(path):
            by_id = sorted(glob.glob("/dev/serial/by-id/*"))
            seen = f"; adapters present: {', '.join(by_id)}" if by_id else "; no USB serial adapter is present"
            out.append(Check(name, "fail", f"{where}: does not exist{seen}",
                             "plug the RS485/USB adapter in (check its LED), then set options.port in the node config "
                             "to its /dev/serial/by-id/... path, which survives re-plugging"))
            continue
        mode = os.stat(path).st_mode
        if not stat.S_ISCHR(mode):
            out.append(Check(name, "fail", f"{where}: is not a serial device", f"options.{key} must name a tty (/dev/ttyUSB0, /dev/serial/by-id/...)"))
        elif not os.access(path, os.R_OK | os.W_OK):
            out.append(Check(name, "fail", f"{where}: no permission to read and write",
                             "add the user hallctl runs as to the dialout group (usermod -aG dialout hallctl) and restart the service"))
        else:
            out.append(Check(name, "ok", f"{where}: present, read/write"))
    return out


def _gpio_check(plans: list[Any]) -> Check:
    users = [p.id for p in plans if _paths_of(p, "gpio-pin")]
    if not users:
        return Check("gpio", "ok", "no device uses GPIO")
    chips = sorted(glob.glob("/dev/gpiochip*"))
    if not chips:
        return Check("gpio", "fail", f"devices {', '.join(users)} use GPIO but there is no /dev/gpiochip*",
                     "run the node on the Raspberry Pi the buttons are wired to")
    if not all(os.access(c, os.R_OK | os.W_OK) for c in chips):
        return Check("gpio", "fail", f"no permission on {', '.join(chips)}",
                     "add the user hallctl runs as to the gpio group (usermod -aG gpio hallctl)")
    return Check("gpio", "ok", f"{', '.join(chips)} for {', '.join(users)}")


def _font_check() -> Check:
    found = _cjk_font()
    if found:
        return Check("font", "ok", f"CJK font: {found}")
    return Check("font", "warn", "no CJK font found: tickets and screens rendered here would show boxes for Chinese",
                 "apt-get install fonts-wqy-zenhei")


def _cjk_font() -> str | None:
    if shutil.which("fc-list"):
        try:
            out = subprocess.run(["fc-list", ":lang=zh", "file"], capture_output=True, text=True, timeout=10).stdout
        except (OSError, subprocess.SubprocessError):
            out = ""
        files = sorted(line.split(":")[0].strip() for line in out.splitlines() if line.strip())
        if files:
            return files[0]
    for root in ("/usr/share/fonts", "/usr/local/share/fonts", str(Path.home() / ".fonts")):
        for dirpath, _, names in os.walk(root):
            for n in names:
                if any(h in n.lower().replace("-", "").replace("_", "") for h in CJK_FONT_HINTS):
                    return os.path.join(dirpath, n)
    return None


async def _broker_check(cfg: Any, timeout: float) -> Check:
    from hallctl.bus.probe import probe_broker

    m = cfg.mqtt
    problem = await probe_broker(m.host, m.port, username=m.username, password=m.password, timeout=timeout,
                                 tls=m.tls)
    if problem is None:
        over = f" over TLS (CA {m.tls_ca})" if m.tls else ""
        return Check("broker", "ok", f"{m.host}:{m.port} accepts {m.username or 'anonymous'}{over}")
    if m.tls and ("certificate" in problem or "TLS" in problem):
        return Check("broker", "fail", problem,
                     f"[mqtt] tls_ca in {cfg.file} must be the hall's CA (the one that signed the broker's "
                     f"certificate), the certificate must name {m.host} in its subjectAltName, and [mqtt] port "
                     "must be the broker's TLS listener (8883); docs/access.md, \"Certificates\"")
    if "credentials" in problem:
        return Check("broker", "fail", problem,
                     f"set [mqtt] username and password_file in {cfg.file} to this node's account "
                     "and the credential hallctl broker-config wrote for it (docs/access.md)")
    return Check("broker", "fail", problem,
                 f"is Mosquitto running on {m.host}? (systemctl status mosquitto); check [mqtt] host and port "
                 f"in {cfg.file}; a firewall must let TCP {m.port} through")


async def _hall_checks(cfg: Any, plans: list[Any], timeout: float) -> list[Check]:
    """Is there a central for this node's hall, and does it publish what this node's apps follow
    (a display for a window central does not know would stay blank)?"""
    from hallctl.bus.topics import Topics, matches
    from hallctl.diag.session import Connection, Session

    topics = Topics(cfg.hall)
    conn = Connection(cfg.mqtt.host, cfg.mqtt.port, cfg.hall, cfg.mqtt.username, cfg.mqtt.password, timeout,
                      cfg.mqtt.tls)
    follows = [(plan.id, f) for plan in plans if plan.app is not None and not plan.disabled
               for f in plan.app(_NoContext(topics), plan.app_options).subscriptions()]
    async with Session(conn, ["hallctl/v1/+/central/status", *sorted({f for _, f in follows})]) as s:
        await s.settle(quiet=0.3, longest=timeout)
        central = s.retained.get(topics.central_status)
        halls = sorted({t.split("/")[2] for t in s.retained if t.endswith("/central/status")} - {cfg.hall})
    if central is None:
        seen = f"halls with a central on this broker: {', '.join(halls)}" if halls else "no central has ever connected to this broker"
        return [Check("hall", "fail", f"no central in hall {cfg.hall!r} ({seen})",
                      f"[node] hall in {cfg.file} must be central's [central] hall; or start central "
                      "(systemctl status hallctl-central)")]
    out = [Check("hall", "ok" if central.get("state") == "online" else "warn",
                 f"central of hall {cfg.hall} is {central.get('state')}",
                 "" if central.get("state") == "online" else "start central (systemctl status hallctl-central)")]
    if central.get("state") == "online":
        for device, topic_filter in follows:
            if "+" in topic_filter or "#" in topic_filter or any(matches(topic_filter, t) for t in s.retained):
                continue
            out.append(Check("hall", "fail", f"device {device}: its app follows {topic_filter}, which central does not publish",
                             f"the device's options in {cfg.file} name something central's config does not have "
                             "(a window id?): make them agree"))
    return out


class _NoContext:
    """Enough of an AppContext to ask an app what it follows."""

    def __init__(self, topics: Any) -> None:
        self.topics = topics
        self.node = self.device = ""
        self.submit = None
        self.log = None


async def _clock_check(cfg: Any, timeout: float) -> Check:
    """Ask central a read-only question; its answer carries central's time."""
    from hallctl.bus.client import Bus
    from hallctl.bus.requests import Requester
    from hallctl.bus.topics import Topics

    topics = Topics(cfg.hall)
    connection_id = f"doctor-{cfg.id}"[:63]  # not the node's own (node-<id>): that would take its session
    # the broker's ACL lets user U send only on central/req/U/... and read only central/res/U
    client = cfg.mqtt.username or connection_id
    requester = Requester(connection_id)
    bus = Bus(cfg.mqtt.host, cfg.mqtt.port, connection_id, subscriptions=[(topics.central_res(client), 1)],
              on_message=requester.on_message, clean_session=True,
              username=cfg.mqtt.username, password=cfg.mqtt.password, tls=cfg.mqtt.tls)
    requester.bus = bus
    task = asyncio.create_task(bus.run())
    try:
        async with asyncio.timeout(timeout):
            await bus.connected.wait()
        sent = datetime.now(timezone.utc)
        response = await requester.call(topics.central_req(client, "queue.status"), {}, timeout=timeout / 2, attempts=1)
        got = datetime.now(timezone.utc)
    except Exception:  # noqa: BLE001 - no central, or no answer: nothing to compare with
        return Check("clock", "warn", "central did not answer; the clock was not compared",
                     "start central (systemctl status hallctl-central); keep NTP on (timedatectl)")
    finally:
        await bus.close()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    ts = response.get("ts")
    if not ts:
        return Check("clock", "warn", "central's answer carries no time; the clock was not compared", "")
    theirs = datetime.fromisoformat(str(ts).replace("Z", "+00:00"))
    mid = sent + (got - sent) / 2
    skew = (mid - theirs).total_seconds()
    if abs(skew) > MAX_CLOCK_SKEW_S + (got - sent).total_seconds() / 2:
        return Check("clock", "fail", f"this node's clock is {skew:+.1f} s off central's",
                     "turn NTP on and point both at the same server (timedatectl set-ntp true; /etc/systemd/timesyncd.conf)")
    return Check("clock", "ok", f"within {abs(skew):.2f} s of central's")


def _store_check(path: Path) -> Check:
    folder = path.parent
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not os.access(existing, os.W_OK):
        return Check("store", "fail", f"{folder} is not writable by this user",
                     f"create it for the service user (install -d -o hallctl {folder})")
    free = shutil.disk_usage(existing).free
    if free < MIN_FREE_BYTES:
        return Check("store", "fail", f"{free // (1024 * 1024)} MiB free under {existing}; the store needs "
                                      f"{MIN_FREE_BYTES // (1024 * 1024)} MiB",
                     "free space (journalctl --vacuum-size=100M; apt-get clean; remove old logs)")
    return Check("store", "ok", f"{path}: {free // (1024 * 1024)} MiB free")


