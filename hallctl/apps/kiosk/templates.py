"""The kiosk's texts: Simplified Chinese defaults shipped in templates.toml, a hall's own file on top.

A hall's file may leave keys out (they keep the default) and may add per-queue places under
``[where]`` (``house = "二楼东侧 不动产登记区"``); its ``[grounds]`` (the green channel's, 绿色通道),
if given, replaces the shipped list, in its order. Anything else unknown, or a field the kiosk
does not fill, is refused when the node starts (the node exits 78 naming the key), never on a
citizen's ticket.
"""

from __future__ import annotations

import re
import string
import tomllib
from pathlib import Path
from typing import Any, Mapping

DEFAULTS_FILE = Path(__file__).with_name("templates.toml")

#: the fields each section's texts may use
FIELDS: dict[str, frozenset[str]] = {
    "screen": frozenset({"hall_name", "number", "where", "people_ahead", "wait", "opens_at", "hours",
                         "next_kiosk", "reason", "status_text", "day", "left", "ground"}),
    "status": frozenset(),
    "ticket": frozenset({"hall_name", "matter_name", "queue_name", "where", "people_ahead", "wait", "time",
                         "phone_masked", "number"}),
    "where": frozenset({"queue_name"}),
    "grounds": frozenset(),
}
#: sections whose keys are the hall's own (queue ids, ground ids), not a fixed list
OPEN_SECTIONS = frozenset({"where", "grounds"})
#: a green channel ground's id (it is a touch's ``id`` on the page)
GROUND_ID_RE = re.compile(r"^[a-z][a-z0-9_]{0,31}$")

Texts = dict[str, dict[str, str]]


class TemplateError(ValueError):
    """A hall's template file is wrong: ``key`` says where."""

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"{key}: {problem}")
        self.key, self.problem = key, problem


def _read(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except OSError as exc:
        raise TemplateError("templates_file", f"cannot read {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise TemplateError("templates_file", f"{path}: {exc}") from None


def load_texts(path: str | Path | None = None) -> Texts:
    """The defaults, with the hall's file (if any) on top, every text checked."""
    texts: Texts = {section: dict(values) for section, values in _read(DEFAULTS_FILE).items()}
    if path is not None:
        merge(texts, _read(Path(path)))
    if not texts["grounds"]:
        raise TemplateError("grounds", "at least one ground is needed (or leave [grounds] out for the defaults)")
    for key in texts["grounds"]:
        if not GROUND_ID_RE.match(key):
            raise TemplateError(f"grounds.{key}", "a ground's id is a lower-case name ([a-z][a-z0-9_]*, up to 32)")
    for section, values in texts.items():
        for key, text in values.items():
            check_text(f"{section}.{key}", text, FIELDS[section])
    return texts


def merge(texts: Texts, override: Mapping[str, Any]) -> None:
    for section, values in override.items():
        if section not in FIELDS:
            raise TemplateError(section, f"unknown section (sections: {', '.join(FIELDS)})")
        if not isinstance(values, Mapping):
            raise TemplateError(section, "must be a table of key = \"text\"")
        if section == "grounds":  # a list, not texts: the hall's replaces ours whole
            texts[section] = {}
        for key, text in values.items():
            if section not in OPEN_SECTIONS and key not in texts[section]:
                raise TemplateError(f"{section}.{key}", f"unknown text (known: {', '.join(texts[section])})")
            texts[section][key] = text


def check_text(key: str, text: Any, fields: frozenset[str]) -> None:
    if not isinstance(text, str):
        raise TemplateError(key, "must be a string")
    try:
        used = {name for _, name, _, _ in string.Formatter().parse(text) if name is not None}
    except ValueError as exc:
        raise TemplateError(key, f"bad braces ({exc})") from None
    unknown = sorted(used - fields)
    if unknown:
        raise TemplateError(key, f"unknown field {{{unknown[0]}}}; fields: "
                                 + (", ".join("{" + f + "}" for f in sorted(fields)) or "none"))


def fill(text: str, **fields: Any) -> str:
    """``text`` with its fields filled; a field given as None prints as empty."""
    return text.format(**{k: "" if v is None else v for k, v in fields.items()})
