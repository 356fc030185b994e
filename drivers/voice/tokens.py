"""The words an announcement is made of: what the reading rules (``hallctl.apps.voice.reading``)
produce and every engine reads.

An announcement is a list of tokens: ``"chime"``, ``","`` (a short pause), one ASCII digit or
capital letter, a unit of a number read as a number (``"十"``, ``"百"``, ``"千"``), or Chinese
text (``"请"``, ``"号"``, ``"窗口"``). A digit token is the spoken digit (``"0"`` is 零): the
rules decide whether ``012`` is read 零一二 (digits) or 十二 (a number, tokens ``"十", "2"``).
A text-to-speech engine joins the tokens into a sentence; a clip engine plays one recording per
token, splitting Chinese it has no single recording for into the words it has.
"""

from __future__ import annotations

import string
import unicodedata
from typing import Collection, Iterable

CHIME = "chime"
PAUSE = ","
DIGITS: tuple[str, ...] = tuple(string.digits)
LETTERS: tuple[str, ...] = tuple(string.ascii_uppercase)
#: 十, 百, 千: a number up to 9,999 read as a number (万 is not needed for a day's tickets)
UNITS: tuple[str, ...] = ("十", "百", "千")
#: the words of the default template, 请{number}号到{window_name}办理, and of "5号窗口"
WORDS: tuple[str, ...] = ("请", "号", "到", "窗口", "办理")
#: every token the default reading rules can produce, letters aside (a hall's queues use a few)
STANDARD: tuple[str, ...] = (CHIME, *DIGITS, *UNITS, *WORDS)
#: a digit as the Chinese numeral a speech engine reads unambiguously (espeak-ng reads "012" as 零十二)
DIGIT_CHARS = dict(zip(DIGITS, "零一二三四五六七八九"))
_PAUSE_CHARS = frozenset("，。、；：！？,.;:!?…")


def is_special(token: str) -> bool:
    """A token that is no text: the chime or a pause."""
    return token in (CHIME, PAUSE)


def is_text(token: str) -> bool:
    """Chinese (or other) text: neither special nor a single digit or letter."""
    return not is_special(token) and not (len(token) == 1 and token in string.ascii_letters + string.digits)


def split_text(text: str) -> list[str]:
    """Plain text as tokens: each ASCII letter (upper-cased) and digit alone, punctuation a pause,
    white space and control characters dropped, any other run (Chinese) one token.
    ``split_text("请A012号，谢谢")`` is ``["请", "A", "0", "1", "2", "号", ",", "谢谢"]``; a pause
    at either end is kept (the text may be part of a sentence: :func:`tidy` the whole)."""
    out: list[str] = []
    run: list[str] = []

    def flush() -> None:
        if run:
            out.append("".join(run))
            run.clear()

    for ch in text:
        if ch.isascii() and ch.isalnum():
            flush()
            out.append(ch.upper())
        elif ch in _PAUSE_CHARS:
            flush()
            out.append(PAUSE)
        elif ch.isspace() or unicodedata.category(ch)[0] in "CZ":
            flush()
        else:
            run.append(ch)
    flush()
    return tidy(out, ends=False)


def tidy(tokens: list[str], ends: bool = True) -> list[str]:
    """One pause where several follow each other; with ``ends``, none at the start or the end."""
    out: list[str] = []
    for token in tokens:
        if token == PAUSE and ((out and out[-1] == PAUSE) or (ends and not out)):
            continue
        out.append(token)
    while ends and out and out[-1] == PAUSE:
        out.pop()
    return out


def segment(text: str, words: Collection[str]) -> list[str] | int:
    """``text`` as the fewest ``words`` that spell it (窗口 over 窗 + 口), or the index of the
    first character no segmentation can cover."""
    if not text:
        return []
    longest = max((len(w) for w in words), default=0)
    best: list[list[str] | None] = [None] * (len(text) + 1)
    best[0] = []
    for end in range(1, len(text) + 1):
        for size in range(1, min(longest, end) + 1):
            before = best[end - size]
            piece = text[end - size:end]
            if before is not None and piece in words and (best[end] is None or len(before) + 1 < len(best[end])):
                best[end] = [*before, piece]
    if best[-1] is not None:
        return best[-1]
    reached = max(i for i, b in enumerate(best) if b is not None)
    return reached


def text_of(tokens: Iterable[str]) -> str:
    """The tokens as one sentence for a speech engine: digits as Chinese numerals, letters apart,
    Chinese joined (no pause tokens or chimes: the engine renders those itself)."""
    out: list[str] = []
    for token in tokens:
        if is_special(token):
            continue
        if token in DIGIT_CHARS:
            out.append(DIGIT_CHARS[token])
        elif len(token) == 1 and token.isascii() and token.isalpha():
            out.append(f" {token.upper()} ")
        else:
            out.append(token)
    return " ".join("".join(out).split())
