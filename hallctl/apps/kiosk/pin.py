"""The staff PIN that confirms a green-channel ticket (绿色通道) at the kiosk.

The kiosk's option holds a salted SHA-256 of the PIN, never the PIN: ``green_pin_sha256 =
"<salt>$<hex>"`` with ``hex = sha256(salt + pin)`` (docs/kiosk.md says how to make one without
hallctl). It keeps the PIN out of config files, backups and screenshots of them; a PIN of a few
digits is no secret against someone who has the file and a minute of CPU, so keep the file
readable by the kiosk's user only.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets

#: the option's form: a salt of 8-64 letters and digits, "$", 64 lower-case hex digits
PIN_HASH_RE = re.compile(r"^[0-9A-Za-z]{8,64}\$[0-9a-f]{64}$")
#: what the option must look like, as the node's error says it (never echoing the value)
PIN_HASH_HINT = "must be \"<salt>$<sha256 hex of salt+PIN>\" (8-64 letters or digits, '$', 64 hex digits; docs/kiosk.md)"
#: a staff PIN: 4 to 8 digits
PIN_RE = re.compile(r"^[0-9]{4,8}$")


def pin_hash(pin: str, salt: str | None = None) -> str:
    """The option's value for ``pin`` (a fresh random salt unless one is given)."""
    salt = salt or secrets.token_hex(8)
    return f"{salt}${hashlib.sha256((salt + pin).encode()).hexdigest()}"


def pin_matches(salted: str, pin: str) -> bool:
    """Whether ``pin`` is the PIN ``salted`` (the option's value) was made from; compared in
    constant time."""
    salt, _, digest = salted.partition("$")
    return hmac.compare_digest(hashlib.sha256((salt + pin).encode()).hexdigest(), digest)
