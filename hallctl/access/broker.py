"""What ``hallctl broker-config`` writes for Mosquitto, made from central's config and the role
table (:mod:`hallctl.access.roles`): the password file, the ACL file and a ``mosquitto.conf``
snippet. Pure: no file is read or written here (:mod:`hallctl.access.cli` does that), so the
same inputs give the same text.

One credential per client: central itself (user = ``[central] id``, role ``central``) and every
``[[client]]``. A client's MQTT user name is its id, the ``<client>`` level of its request topic
and, for a node, the ``<node>`` level of its subtree; the ACL ties the three together.

A window client's ``windows`` are not in the ACL: the broker sees topics, not a request's data,
so central checks them (docs/access.md).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping

from hallctl.access.roles import COMMON, ROLES, Client
from hallctl.bus.topics import Topics

__all__ = ["PBKDF2_ITERATIONS", "Credential", "BrokerTls", "hash_password", "verify_password",
           "new_password", "hall_users", "passwd_text", "parse_passwd", "acl_text", "mosquitto_conf_text"]

#: mosquitto_passwd's own count (Mosquitto 2.0). The passwords are random (:func:`new_password`,
#: 192 bits), so stretching adds nothing, while every CONNECT pays it on the broker's one thread
#: (after a broker restart every client of the hall reconnects at once).
PBKDF2_ITERATIONS = 101
_SALT_BYTES = 12  # as mosquitto_passwd


@dataclass(frozen=True)
class Credential:
    """One MQTT user of the hall."""

    user: str
    role: str
    password: str = field(repr=False)  # never in logs or reprs


@dataclass(frozen=True)
class BrokerTls:
    """The broker's TLS files, as Mosquitto's ``cafile``, ``certfile`` and ``keyfile``."""

    ca: Path
    cert: Path
    key: Path


def new_password() -> str:
    """A random password: 32 URL-safe characters (no quoting trouble in a file or a shell)."""
    return secrets.token_urlsafe(24)


def hash_password(password: str, *, salt: bytes | None = None, iterations: int = PBKDF2_ITERATIONS) -> str:
    """Mosquitto's ``$7$`` hash (PBKDF2-HMAC-SHA512), as ``mosquitto_passwd`` writes it:
    ``$7$<iterations>$<base64 salt>$<base64 hash>``."""
    salt = secrets.token_bytes(_SALT_BYTES) if salt is None else salt
    digest = hashlib.pbkdf2_hmac("sha512", password.encode("utf-8"), salt, iterations)
    return f"$7${iterations}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def verify_password(password: str, hashed: str) -> bool:
    """True when ``hashed`` (a ``$7$`` hash) is ``password``'s; False for anything else."""
    parts = hashed.split("$")
    if len(parts) != 5 or parts[:2] != ["", "7"] or not parts[2].isdigit():
        return False
    try:
        salt, want = base64.b64decode(parts[3], validate=True), base64.b64decode(parts[4], validate=True)
    except ValueError:
        return False
    got = hashlib.pbkdf2_hmac("sha512", password.encode("utf-8"), salt, int(parts[2]))
    return hmac.compare_digest(got, want)


def hall_users(central_id: str, clients: Iterable[Client]) -> list[tuple[str, str]]:
    """(user, role) of every credential the hall needs: central first, then its clients."""
    return [(central_id, "central")] + [(c.id, c.role) for c in clients]


def passwd_text(credentials: Iterable[Credential], previous: Mapping[str, str] | None = None) -> str:
    """Mosquitto's password file. ``previous``: user -> hash from the file as it was; a hash that
    still matches the user's password is kept, so running again with nothing changed writes the
    same file."""
    lines = []
    for c in credentials:
        old = (previous or {}).get(c.user)
        hashed = old if old is not None and verify_password(c.password, old) else hash_password(c.password)
        lines.append(f"{c.user}:{hashed}")
    return "\n".join(lines) + "\n"


def parse_passwd(text: str) -> dict[str, str]:
    """user -> hash of a Mosquitto password file (comments and blank lines skipped)."""
    out = {}
    for line in text.splitlines():
        user, sep, hashed = line.strip().partition(":")
        if sep and user and not user.startswith("#"):
            out[user] = hashed
    return out


def acl_text(hall: str, users: Iterable[tuple[str, str]], *, source: str | None = None) -> str:
    """Mosquitto's ACL file for one hall: the common patterns (``%u``: a client's own requests,
    answers and node subtree), then per user its role's topics and the public ones (as ``topic``
    lines: Mosquitto warns of a pattern without ``%u``), all under the hall's own root (another
    hall on the same broker is out of reach)."""
    root = Topics(hall).base + "/"
    out = [
        f"# Mosquitto ACL of hall {hall}, written by `hallctl broker-config`"
        + (f" from {source}" if source else "") + ".",
        "# Do not edit: change [[client]] in central's config and run it again (docs/access.md).",
        "# The topics each role reads and writes are hallctl/access/roles.py's.",
        "#",
        "# Requests to central (central/req/#) carry citizens' phone numbers, and sms/# the SMS gateway's",
        "# traffic: only central (and an outside central) read the first, only they and the sms role the",
        "# second. Per-clerk figures travel only in a kpi.summary answer, on central/res/<client>: a",
        "# client reads its own answers only, and central answers kpi.summary to the dashboard role alone.",
        "# A window client's windows are not here: the broker sees a topic, not a request's data, so",
        "# central checks them (an action for another window is answered `forbidden`).",
        "",
        "# every client's own topics; %u is its MQTT user name, which is its client id (and a node's",
        "# node id)",
    ]
    out += _common(root, "pattern", with_user=True)
    public = _common(root, "topic", with_user=False)
    for user, role_name in users:
        role = ROLES[role_name]
        out += ["", f"# {user} ({role.name}): {role.doc}", f"user {user}"]
        out += [f"topic read {root}{t}" for t in role.reads]
        out += [f"topic readwrite {root}{t}" for t in role.readwrite]
        if "#" not in role.readwrite:  # else it has them already
            out += ["# and the public topics every client reads"] + public
    return "\n".join(out) + "\n"


def _common(root: str, kind: str, *, with_user: bool) -> list[str]:
    """ACL lines of :data:`COMMON`: those naming the user (``%u``) or the others."""
    lines = []
    for access, topics in (("read", COMMON.reads), ("write", COMMON.writes), ("readwrite", COMMON.readwrite)):
        lines += [f"{kind} {access} {root}{t}" for t in topics if ("%u" in t) is with_user]
    return lines


def mosquitto_conf_text(
    hall: str, passwd: Path, acl: Path, *, tls: BrokerTls | None, tls_port: int, local_port: int | None,
) -> str:
    """The snippet to include from /etc/mosquitto/conf.d/: logins and the ACL for every listener,
    a TLS listener for the hall's LAN and a plain one on loopback for central on the same host.
    Without ``tls`` only the loopback listener: passwords never cross the LAN in clear."""
    out = [
        f"# Mosquitto settings of hall {hall}, written by `hallctl broker-config` (docs/access.md).",
        "# Install as /etc/mosquitto/conf.d/hallctl.conf; do not edit: run it again.",
        "# Every listener takes the same logins and ACL, and nobody gets in without a login.",
        "per_listener_settings false",
        "allow_anonymous false",
        f"password_file {passwd}",
        f"acl_file {acl}",
        "",
    ]
    if tls is not None:
        out += [
            "# the hall's LAN (nodes, kiosks, clerks' PCs, tools): TLS only. Clients check the broker's",
            "# certificate against the hall's CA (their [mqtt] tls_ca) and its subjectAltName against",
            "# the host name or address they connect to.",
            f"listener {tls_port}",
            f"cafile {tls.ca}",
            f"certfile {tls.cert}",
            f"keyfile {tls.key}",
            "tls_version tlsv1.2",
            "",
        ]
    else:
        out += [
            "# No TLS files were given (--tls-cert, --tls-key, --tls-ca): there is no listener for the",
            "# hall's LAN, so nodes cannot connect yet. Make the certificates (docs/access.md,",
            "# \"Certificates\") and run hallctl broker-config again with them.",
            "",
        ]
    if local_port is not None:
        out += [
            "# central on this host, and a technician's tools run here: loopback only, plain",
            f"listener {local_port} 127.0.0.1",
            "",
        ]
    return "\n".join(out)
