"""The one id rule for everything that can appear in an MQTT topic: hall, node, device, window,
queue, client. Config, the central model and the topic builder all check with it, so an id that
passes the config check can never be refused later when a topic is built (a restart loop under
systemd)."""

from __future__ import annotations

import re

#: 1-63 characters of [a-z0-9-], starting with a letter or digit (``-n1`` is not an id: a
#: leading dash reads as an option on every command line a technician types it into)
ID_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,62})$")
ID_RULE = "1-63 characters of [a-z0-9-], starting with a letter or digit"


def id_problem(value: object) -> str | None:
    """None when ``value`` is a valid id, else what is wrong with it (for error messages)."""
    if isinstance(value, str) and ID_RE.match(value):
        return None
    return f"invalid id {value!r}: {ID_RULE}"


def is_id(value: object) -> bool:
    return id_problem(value) is None
