"""``hallctl broker-config -c /etc/hallctl/central.toml --out DIR``: the Mosquitto files that make
the broker enforce the hall's roles, from central's config (``[[client]]``) and the role table.

Writes DIR/passwd (one login per client, and central's), DIR/acl, DIR/mosquitto.conf (a snippet
for /etc/mosquitto/conf.d/) and DIR/credentials/<client>.password (mode 600), then prints what
to copy where. Running it again keeps every existing credential (no node is locked out); a client
no longer in the config loses its login and its credential file. docs/access.md explains it all.

Exit 0 written; 2 a usage error (TLS files); 73 DIR cannot be written; 78 central's config is wrong.
"""

from __future__ import annotations

import argparse
import contextlib
import grp
import os
import ssl
import sys
import tempfile
from pathlib import Path
from typing import Any

from hallctl.access.broker import (
    BrokerTls,
    Credential,
    acl_text,
    hall_users,
    mosquitto_conf_text,
    new_password,
    parse_passwd,
    passwd_text,
)

USAGE, CANT_CREATE = 2, 73
#: the group Debian's mosquitto runs as: it must read the password and ACL files
BROKER_GROUP = "mosquitto"


def add_parser(sub: Any) -> None:
    p = sub.add_parser("broker-config", help="write Mosquitto's password file, ACL and TLS listener from central's config",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    # not HALLCTL_CONFIG: the tools read a node's config from it
    p.add_argument("-c", "--config", default="/etc/hallctl/central.toml",
                   help="central's config, with the hall's [[client]] list (default /etc/hallctl/central.toml)")
    p.add_argument("--out", required=True, metavar="DIR",
                   help="where to write passwd, acl, mosquitto.conf and credentials/ (e.g. /etc/mosquitto/hallctl)")
    p.add_argument("--tls-cert", metavar="FILE", help="the broker's certificate (PEM)")
    p.add_argument("--tls-key", metavar="FILE", help="its private key (PEM)")
    p.add_argument("--tls-ca", metavar="FILE", help="the hall's CA certificate, which signed it (PEM)")
    p.add_argument("--tls-port", type=_port, default=8883, metavar="N",
                   help="the TLS listener for the hall's LAN (default 8883)")
    p.add_argument("--local-port", type=_port_or_off, default=1883, metavar="N",
                   help="a plain listener on 127.0.0.1 for central on the broker's host (default 1883; 0: none)")


def main(args: argparse.Namespace) -> int:
    from hallctl.errors import ConfigError

    cfg = _load_central_config(args.config)  # ConfigError: exit 78
    if cfg.clients is None:
        raise ConfigError("lists no [[client]]: the broker would let only central in. List the hall's nodes "
                          "and tools with their roles first (docs/access.md)", file=cfg.file, key="client")
    try:
        tls = _tls(args)
    except ValueError as exc:
        print(f"hallctl broker-config: {exc}", file=sys.stderr)
        return USAGE
    local_port = args.local_port or None
    if tls is None and local_port is None:
        print("hallctl broker-config: without TLS files and with --local-port 0 the broker would have no "
              "listener at all", file=sys.stderr)
        return USAGE
    out = Path(args.out).resolve()
    try:
        report = _write(out, cfg, tls, args.tls_port, local_port)
    except OSError as exc:
        print(f"hallctl broker-config: cannot write {exc.filename or out}: {exc.strerror or exc}", file=sys.stderr)
        return CANT_CREATE
    print(_summary(out, cfg, tls, args.tls_port, local_port, report))
    return 0


def _load_central_config(path: str) -> Any:
    """Central's config, checked as central checks it, except for the files its [mqtt] names:
    central's own credential is one of the files this command writes (and its CA may be made
    alongside), so they need not exist yet."""
    from hallctl.central.config import parse_central_config
    from hallctl.config.reader import read_toml

    data, file = read_toml(path)
    mqtt = data.get("mqtt")
    if isinstance(mqtt, dict):
        data = {**data, "mqtt": {k: v for k, v in mqtt.items() if k not in _MQTT_FILES}}
    return parse_central_config(data, file=file)


_MQTT_FILES = ("password_file", "tls_ca", "tls_cert", "tls_key")


# -- arguments -----------------------------------------------------------------------------------


def _port(text: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise argparse.ArgumentTypeError(f"a TCP port 1..65535, got {text!r}")
    return int(text)


def _port_or_off(text: str) -> int:
    return 0 if text == "0" else _port(text)


def _tls(args: argparse.Namespace) -> BrokerTls | None:
    """The three TLS files, loaded as Mosquitto will load them; all three or none."""
    given = {"--tls-cert": args.tls_cert, "--tls-key": args.tls_key, "--tls-ca": args.tls_ca}
    if not any(given.values()):
        return None
    missing = [k for k, v in given.items() if not v]
    if missing:
        raise ValueError(f"TLS needs all three of --tls-cert, --tls-key and --tls-ca (missing {', '.join(missing)})")
    tls = BrokerTls(Path(args.tls_ca).resolve(), Path(args.tls_cert).resolve(), Path(args.tls_key).resolve())
    for option, path in (("--tls-ca", tls.ca), ("--tls-cert", tls.cert), ("--tls-key", tls.key)):
        if not path.is_file():
            raise ValueError(f"{option}: no such file: {path}")
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        server.load_verify_locations(cafile=str(tls.ca))
    except (OSError, ssl.SSLError) as exc:
        raise ValueError(f"--tls-ca: {tls.ca} is not a PEM CA certificate: {getattr(exc, 'reason', None) or exc}") from None
    try:
        server.load_cert_chain(str(tls.cert), str(tls.key))
    except (OSError, ssl.SSLError) as exc:
        raise ValueError(f"--tls-cert/--tls-key: {tls.cert} and {tls.key} are not a PEM certificate and its "
                         f"key: {getattr(exc, 'reason', None) or exc}") from None
    return tls


# -- files ---------------------------------------------------------------------------------------


class _Report:
    def __init__(self) -> None:
        self.new: list[str] = []
        self.kept: list[str] = []
        self.removed: list[str] = []
        self.unshared: list[Path] = []  # files the broker's group could not be given


def _write(out: Path, cfg: Any, tls: BrokerTls | None, tls_port: int, local_port: int | None) -> _Report:
    report = _Report()
    creds_dir = out / "credentials"
    out.mkdir(parents=True, exist_ok=True)
    creds_dir.mkdir(mode=0o700, exist_ok=True)
    os.chmod(creds_dir, 0o700)
    users = hall_users(cfg.id, cfg.clients)
    credentials = []
    for user, role in users:
        path = creds_dir / f"{user}.password"
        password = _read_secret(path)
        if password is None:
            password = new_password()
            _write_file(path, password + "\n", 0o600)
            report.new.append(user)
        else:
            report.kept.append(user)
        credentials.append(Credential(user, role, password))
    current = {f"{user}.password" for user, _ in users}
    for stale in sorted(creds_dir.glob("*.password")):
        if stale.name not in current:
            stale.unlink()
            report.removed.append(stale.name.removesuffix(".password"))
    previous = parse_passwd(_read_text(out / "passwd") or "")
    report.removed = sorted(set(report.removed) | (set(previous) - {u for u, _ in users}))
    passwd, acl = out / "passwd", out / "acl"
    _write_file(passwd, passwd_text(credentials, previous), 0o640)
    _write_file(acl, acl_text(cfg.hall, users, source=cfg.file), 0o640)
    for path in (passwd, acl):
        if not _share_with_broker(path):
            report.unshared.append(path)
    _write_file(out / "mosquitto.conf",
                mosquitto_conf_text(cfg.hall, passwd, acl, tls=tls, tls_port=tls_port, local_port=local_port), 0o644)
    return report


def _read_text(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None


def _read_secret(path: Path) -> str | None:
    text = _read_text(path)
    secret = text.strip() if text is not None else ""
    return secret or None


def _write_file(path: Path, text: str, mode: int) -> None:
    """Replace ``path`` at once (a broker reloading mid-write never reads half a file), created
    with ``mode`` from the start (a secret is never readable by others, not even briefly)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _share_with_broker(path: Path) -> bool:
    """Give the file to the broker's group (run as root on the broker's host), so Mosquitto reads
    it without it being readable by everyone. False when that group or the right is missing."""
    try:
        gid = grp.getgrnam(BROKER_GROUP).gr_gid
    except KeyError:
        return False
    if path.stat().st_gid == gid:
        return True
    try:
        os.chown(path, -1, gid)
    except OSError:
        return False
    return True


# -- what was done, and what to do next ----------------------------------------------------------


def _summary(out: Path, cfg: Any, tls: BrokerTls | None, tls_port: int, local_port: int | None, r: _Report) -> str:
    creds = out / "credentials"
    lines = [
        f"hall {cfg.hall}: {len(r.new) + len(r.kept)} logins (central {cfg.id} and {len(cfg.clients)} clients)",
        f"  wrote {out / 'passwd'}: {len(r.kept)} kept, {len(r.new)} new"
        + (f" ({', '.join(r.new)})" if r.new else "")
        + (f"; removed {', '.join(r.removed)}" if r.removed else ""),
        f"  wrote {out / 'acl'}: the roles of hallctl/access/roles.py under hallctl/v1/{cfg.hall}/",
        f"  wrote {out / 'mosquitto.conf'}: "
        + (f"TLS on port {tls_port}" if tls else "no TLS listener (no --tls-* files): nodes cannot connect yet")
        + (f", plain on 127.0.0.1:{local_port}" if local_port else ""),
        f"  credentials in {creds}/ (mode 600): " + ", ".join(f"{u}.password" for u in r.new + r.kept),
    ]
    if tls is not None and (names := _cert_names(tls.cert)):
        lines.append(f"  the broker's certificate names {', '.join(names)}: a client's [mqtt] host must be one of them")
    lines += ["", "next steps (docs/access.md):"]
    steps = [f"install -m 644 {out / 'mosquitto.conf'} /etc/mosquitto/conf.d/hallctl.conf "
             f"(it names {out}/passwd and acl: leave them there)"]
    if r.unshared:
        steps.append(f"let Mosquitto read them: chgrp {BROKER_GROUP} {' '.join(str(p) for p in r.unshared)}")
    steps.append("systemctl restart mosquitto the first time; after a change, systemctl reload mosquitto")
    central_port = local_port or tls_port
    steps.append(f"central: install -D -m 600 -o hallctl {creds / (cfg.id + '.password')} "
                 f"/etc/hallctl/credentials/{cfg.id}.password, "
                 f"and in {cfg.file} [mqtt] username = \"{cfg.id}\", password_file = "
                 f"\"/etc/hallctl/credentials/{cfg.id}.password\""
                 + (f", host = \"127.0.0.1\", port = {local_port}" if local_port else f", tls_ca, port = {tls_port}")
                 + "; then restart it")
    if cfg.mqtt.username != cfg.id or cfg.mqtt.port != central_port:
        steps.append(f"(central's [mqtt] now says user {cfg.mqtt.username or '(none)'} port {cfg.mqtt.port}: "
                     "it will be refused until it says the above)")
    clients = [c.id for c in cfg.clients if c.id in r.new] or ["<client>"]
    steps.append(f"each new client ({', '.join(clients)}): copy {creds}/<id>.password to "
                 "/etc/hallctl/credentials/<id>.password on it (mode 600, owned by the user hallctl runs as); "
                 "its [mqtt]: username = \"<id>\", password_file = \"/etc/hallctl/credentials/<id>.password\""
                 + (f", tls_ca = \"/etc/hallctl/hall-ca.crt\" (a copy of {tls.ca}), port = {tls_port}" if tls else "")
                 + "; then restart hallctl there")
    if r.removed:
        steps.append(f"removed clients ({', '.join(r.removed)}) are refused once Mosquitto reloads")
    steps.append("on each node: hallctl doctor -c /etc/hallctl/node.toml checks the login")
    lines += [f"  {i}. {s}" for i, s in enumerate(steps, 1)]
    return "\n".join(lines)


def _cert_names(cert: Path) -> list[str]:
    """The certificate's subjectAltName entries (DNS:..., IP:...); empty when they cannot be read
    (it is only advice)."""
    try:
        decoded = ssl._ssl._test_decode_cert(str(cert))  # type: ignore[attr-defined]
    except Exception:  # noqa: BLE001 - a private helper of the ssl module: advice only
        return []
    return [f"{'IP' if kind == 'IP Address' else kind}:{value}" for kind, value in decoded.get("subjectAltName", ())]
