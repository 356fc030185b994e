"""Personal data masking, for every caller: phone and ID card numbers never appear unmasked in
logs, open topics, error messages or board text (138****8000, 110***********123X, 张*)."""

from __future__ import annotations

import re
from typing import Any, Mapping

#: a mainland mobile number (also +86/0086-prefixed, or split by '-' or spaces), or an 18-character
#: resident ID number, inside any text; full-width digits are read as digits first
_PERSONAL = re.compile(
    r"(?<![0-9])(?:(?:\+|00)86[- ]?)?1[3-9][0-9](?:[- ]?[0-9]){8}(?![0-9])"
    r"|(?<![0-9])[1-9][0-9]{16}[0-9Xx](?![0-9])"
)
_FULLWIDTH_DIGITS = str.maketrans("０１２３４５６７８９＋", "0123456789+")


def _mask(m: re.Match[str]) -> str:
    text = m[0]
    return f"{text[:3]}{'*' * max(len(text) - 7, 4)}{text[-4:]}"


def scrub(value: Any) -> Any:
    """``value`` with every phone or ID card number in it masked (138****8000,
    110***********123X): in a text, or in the texts and integers of a list or mapping."""
    if isinstance(value, str):
        if _PERSONAL.search(value.translate(_FULLWIDTH_DIGITS)) is None:
            return value
        return _PERSONAL.sub(_mask, value.translate(_FULLWIDTH_DIGITS))
    if isinstance(value, int) and not isinstance(value, bool):
        masked = scrub(str(value))
        return value if masked == str(value) else masked
    if isinstance(value, Mapping):
        return {k: scrub(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [scrub(v) for v in value]
    return value


def mask_phone(phone: str) -> str:
    """``"13800138000"`` -> ``"138****8000"``. Anything too short to mask safely is fully hidden."""
    if not isinstance(phone, str) or len(phone) < 8:
        return "****"
    return f"{phone[:3]}{'*' * (len(phone) - 7)}{phone[-4:]}"


def mask_name(name: str) -> str:
    """``"张三"`` -> ``"张*"``, ``"欧阳娜娜"`` -> ``"欧***"``: the surname's first character stays."""
    if not isinstance(name, str) or not name.strip():
        return "*"
    name = name.strip()
    return name[0] + "*" * max(len(name) - 1, 1)
