"""Reading rules: how a call is said, as tokens (:mod:`hallctl_drivers.voice.tokens`). Pure.

A hall sets them in the voice device's options (``[device.options]``)::

    templates = {called = "请{number}号到{window_name}办理", recalled = "请{number}号到{window_name}办理"}
    numbers = "digits"          # A012: 零一二 (digits, default) or 十二 ("number")
    window_numbers = "number"   # 15号窗口: 十五 (default) or 一五
    chime = true                # 叮咚 first
    repeat = 2                  # the sentence twice, a pause between
    window_names = {"5" = "五号综合窗口"}   # what is said for a window instead of central's name

Fields of a template: ``{number}`` (the ticket, A012: letters as letters, then its digits by
``numbers``), ``{window}`` (the window's id, its digits by ``window_numbers``) and
``{window_name}`` (its name: digits by ``window_numbers``, letters as letters). Digits in the
template's own text are read as a number; punctuation is a pause.
"""

from __future__ import annotations

import string
from dataclasses import dataclass, field
from typing import Any, Mapping

from hallctl_drivers.voice.tokens import CHIME, PAUSE, UNITS, WORDS, is_text, segment, split_text, tidy

DEFAULT_TEMPLATE = "请{number}号到{window_name}办理"
FIELDS = ("number", "window", "window_name")
NUMBER_MODES = ("digits", "number")
#: the longest number read as a number; longer ones are read digit by digit (万 is not needed)
MAX_AS_NUMBER = 9999


@dataclass(frozen=True)
class ReadingRules:
    called: str = DEFAULT_TEMPLATE
    recalled: str = DEFAULT_TEMPLATE
    numbers: str = "digits"
    window_numbers: str = "number"
    chime: bool = True
    repeat: int = 2
    window_names: Mapping[str, str] = field(default_factory=dict)


def rules_from(options: Mapping[str, Any]) -> ReadingRules:
    """The rules of a device's (already checked) options; defaults for what they leave out."""
    templates = options.get("templates") or {}
    called = templates.get("called", DEFAULT_TEMPLATE)
    return ReadingRules(
        called=called,
        recalled=templates.get("recalled", called),
        numbers=options.get("numbers", "digits"),
        window_numbers=options.get("window_numbers", "number"),
        chime=bool(options.get("chime", True)),
        repeat=int(options.get("repeat", 2)),
        window_names=dict(options.get("window_names") or {}),
    )


def check_template(template: str) -> None:
    """ValueError saying what is wrong: an unknown field, bad braces, a format spec, nothing to say."""
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise ValueError(f"{template!r}: bad braces ({exc}); write {{{{ and }}}} for a brace") from None
    for _, name, spec, conversion in parsed:
        if name is None:
            continue
        if name not in FIELDS:
            raise ValueError(f"{template!r} uses {{{name}}}; fields: {', '.join('{' + f + '}' for f in FIELDS)}")
        if spec or conversion:
            raise ValueError(f"{template!r}: {{{name}}} takes no format or conversion")
    if not any(name for _, name, _, _ in parsed) and not [t for t in split_text(template) if t != PAUSE]:
        raise ValueError(f"{template!r} has nothing to say")


def as_number(digits: str) -> list[str]:
    """A string of digits read as a number: "012" -> 十, 2 (十二); "105" -> 1, 百, 0, 5 (一百零五).
    Longer than :data:`MAX_AS_NUMBER`: digit by digit."""
    value = int(digits)
    if value > MAX_AS_NUMBER:
        return list(digits)
    if value == 0:
        return ["0"]
    text = str(value)
    out: list[str] = []
    zero_due = False
    for i, d in enumerate(text):
        place = len(text) - 1 - i
        if d == "0":
            zero_due = bool(out)  # 一百零五: one 零 for any run of zeros inside the number
            continue
        if zero_due:
            out.append("0")
            zero_due = False
        if not (place == 1 and d == "1" and not out):  # 十二, not 一十二
            out.append(d)
        if place:
            out.append(UNITS[place - 1])
    return out


def read_digits(digits: str, mode: str) -> list[str]:
    return as_number(digits) if mode == "number" else list(digits)


def read_text(text: str, numbers: str) -> list[str]:
    """Text (a window name, a template's own words) as tokens, its digit runs read by ``numbers``."""
    out: list[str] = []
    run = ""
    for token in [*split_text(text), ""]:
        if token.isdigit() and token.isascii():
            run += token
            continue
        if run:
            out += read_digits(run, numbers)
            run = ""
        if token and is_text(token):
            out += _words(token)
        elif token:
            out.append(token)
    return out


def _words(text: str) -> list[str]:
    """Chinese as the fewest known words (窗口, 办理), else character by character; a clip voice
    joins them again and says them with the recordings it has."""
    found = segment(text, {*WORDS, *UNITS, *text})
    assert isinstance(found, list)  # every single character is allowed
    return found


def read_ticket(number: str, numbers: str) -> list[str]:
    """A ticket number: its letters one by one, its digits by ``numbers`` (A012 -> A 零一二)."""
    return read_text(number, numbers)


def window_name_of(rules: ReadingRules, window: str, name: str | None) -> str:
    """What is said for a window: the hall's own name for it, central's, else "<id>号窗口"."""
    return rules.window_names.get(window) or name or f"{window}号窗口"


def sentence(rules: ReadingRules, number: str, window: str, window_name: str | None = None,
             recalled: bool = False) -> list[str]:
    """One saying of the call, without chime or repeats."""
    template = rules.recalled if recalled else rules.called
    out: list[str] = []
    for literal, name, _, _ in string.Formatter().parse(template):
        if literal:
            out += read_text(literal, "number")
        if name == "number":
            out += read_ticket(number, rules.numbers)
        elif name == "window":
            out += read_text(window, rules.window_numbers)
        elif name == "window_name":
            out += read_text(window_name_of(rules, window, window_name), rules.window_numbers)
    return tidy(out)


def announcement(rules: ReadingRules, number: str, window: str, window_name: str | None = None,
                 recalled: bool = False) -> list[str]:
    """The whole announcement: the chime, then the sentence ``repeat`` times with a pause between."""
    said = sentence(rules, number, window, window_name, recalled)
    out = [CHIME] if rules.chime else []
    for i in range(rules.repeat):
        if i:
            out.append(PAUSE)
        out += said
    return out
