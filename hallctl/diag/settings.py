"""Where the hall's tools (``hallctl diag``, ``hallctl conformance``) take their connection from: an
option, else a node config (``-c``, diag only), else the environment (``HALLCTL_BROKER``,
``HALLCTL_HALL``, ``HALLCTL_USERNAME``, ``HALLCTL_PASSWORD_FILE``, ``HALLCTL_TLS_CA``,
``HALLCTL_TIMEOUT``), else the default. A password comes from a file, never from the command
line (where ``ps`` would show it). Every problem is a ValueError a CLI prints as a usage error.
"""

from __future__ import annotations

import argparse
import os
import ssl
from pathlib import Path

from hallctl.bus.tls import MQTT_TLS_PORT, TlsSettings
from hallctl.diag.session import Connection
from hallctl.ids import id_problem

__all__ = ["connection_from", "env_flag", "positive_seconds"]


def env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"seconds expected, got {text!r}") from None
    if not 0 < value <= 3600:
        raise argparse.ArgumentTypeError(f"must be more than 0 and at most 3600 seconds, got {text!r}")
    return value


def connection_from(args: argparse.Namespace) -> Connection:
    """The connection ``args`` (``broker``, ``hall``, ``username``, ``password_file``, ``tls_ca``,
    ``timeout`` and, where the tool has it, ``config``) and the environment describe."""
    env = os.environ.get
    host, port, hall, username, password = "127.0.0.1", None, env("HALLCTL_HALL"), env("HALLCTL_USERNAME"), None
    broker = env("HALLCTL_BROKER")
    config = getattr(args, "config", None) or ("config" in vars(args) and env("HALLCTL_CONFIG")) or None
    tls = TlsSettings(Path(env("HALLCTL_TLS_CA", ""))) if env("HALLCTL_TLS_CA") else None
    if config:
        from hallctl.config import load_node_config

        cfg = load_node_config(config)
        broker = None  # the file's broker beats the environment's
        host, port, hall, username, password = cfg.mqtt.host, cfg.mqtt.port, cfg.hall, cfg.mqtt.username, cfg.mqtt.password
        tls = cfg.mqtt.tls
    password_file = args.password_file
    if password_file is None and password is None:  # the file's password beats the environment's
        password_file = env("HALLCTL_PASSWORD_FILE")
    if args.tls_ca:  # another CA; a client certificate from -c stays
        tls = TlsSettings(Path(args.tls_ca), tls.cert if tls else None, tls.key if tls else None)
    broker = args.broker or broker
    if broker:
        h, _, p = broker.rpartition(":")
        if not p.isdigit() or "/" in h or not 0 < int(p) < 65536:
            raise ValueError(f"the broker is HOST:PORT (e.g. 192.168.1.10:1883), got {broker!r}")
        host, port = h or host, int(p)
    if port is None:
        port = MQTT_TLS_PORT if tls else 1883
    hall = args.hall or hall
    if not hall:
        raise ValueError("which hall? give --hall ID (or HALLCTL_HALL" + (", or -c a node config)" if "config" in vars(args) else ")"))
    if (problem := id_problem(hall)) is not None:
        raise ValueError(f"hall: {problem}")
    username = args.username or username
    if password_file:
        try:
            password = Path(password_file).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ValueError(f"cannot read the password file: {exc.strerror or exc}") from None
    if tls is not None:
        try:
            tls.context()
        except (OSError, ssl.SSLError) as exc:
            raise ValueError(f"cannot use the TLS CA {tls.ca}: {getattr(exc, 'strerror', None) or exc}") from None
    timeout = args.timeout
    if timeout is None:
        try:
            timeout = positive_seconds(env("HALLCTL_TIMEOUT", "5"))
        except argparse.ArgumentTypeError as exc:
            raise ValueError(f"HALLCTL_TIMEOUT: {exc}") from None
    return Connection(host, port, hall, username, password, timeout, tls)
