"""What the call board shows, from what the hall publishes: pure, no I/O.

Inputs: the retained ``board/state`` (calls newest last, waiting and predicted waits per queue),
``central/catalogue`` (the hall's name, queue names in the hall's order, opening hours),
``central/status`` (online or offline) and whether the node has its broker connection. Output:
the ``show`` action's arguments of the ``call_board`` kind (calls newest first, text as shown).

All citizen-facing text comes from templates a hall can change (device option ``templates``);
fields in braces are filled in, and a field a template may not use is refused at start.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from hallctl.privacy import mask_name

#: template -> the fields it may use
FIELDS: dict[str, tuple[str, ...]] = {
    "title": ("hall_name",),
    "call": ("number", "window", "window_name", "name"),
    "col_number": (), "col_window": (), "col_name": (),
    "col_section": (), "col_count": (), "col_wait": (),
    "wait": ("minutes",),
    "wait_now": (),
    "wait_none": (),
    "hours": ("periods",),
    "notice": (),
    "central_offline": (),
    "link_lost": (),
    "page_lost": (),
}

DEFAULT_TEMPLATES: dict[str, str] = {
    "title": "{hall_name}叫号信息",
    "call": "请{number}号到{window_name}办理",
    "col_number": "号码",
    "col_window": "窗口",
    "col_name": "姓名",
    "col_section": "业务类别",
    "col_count": "等候人数",
    "col_wait": "预计等待",
    "wait": "约{minutes}分钟",
    "wait_now": "无需等待",
    "wait_none": "—",  # no window open for the section
    "hours": "办理时间：{periods}",
    "notice": "请留意叫号信息，听到叫号后请到相应窗口办理；过号请重新取号。",
    "central_offline": "暂停服务：与中心的连接中断",
    "link_lost": "暂停服务：网络连接中断",
    "page_lost": "本屏与叫号系统的连接中断，请以窗口显示屏为准",
}

#: the kind's limits (drivers/kinds.py, call_board show): longer text is cut here, never refused
MAX_CALLS = 20
MAX_SECTIONS = 16
_LIMITS = {"title": 64, "banner": 64, "announce": 64, "hours": 128, "notice": 256, "number": 16,
           "window_name": 32, "name": 16, "at": 40, "section": 32, "wait": 16, "label": 16, "lost": 64}


class TemplateError(ValueError):
    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"{key}: {problem}")
        self.key, self.problem = key, problem


def check_templates(templates: Any) -> dict[str, str]:
    """The hall's templates over the defaults; :class:`TemplateError` names the bad key."""
    if templates is None:
        return dict(DEFAULT_TEMPLATES)
    if not isinstance(templates, Mapping):
        raise TemplateError("templates", "must be a table of name = \"text\"")
    for key, text in templates.items():
        if key not in FIELDS:
            raise TemplateError(f"templates.{key}", f"unknown template; templates: {', '.join(FIELDS)}")
        if not isinstance(text, str):
            raise TemplateError(f"templates.{key}", "must be a string")
        fields = {f: "x" for f in FIELDS[key]}
        try:
            text.format(**fields)
        except (KeyError, IndexError, ValueError) as exc:
            allowed = ", ".join("{" + f + "}" for f in FIELDS[key]) or "none"
            raise TemplateError(f"templates.{key}", f"{text!r} uses an unknown field or bad braces ({exc}); "
                                                    f"fields: {allowed}") from None
    return {**DEFAULT_TEMPLATES, **templates}


@dataclass
class HallView:
    """What the app has heard; None: not heard yet."""

    board: Mapping[str, Any] | None = None
    catalogue: Mapping[str, Any] | None = None
    central_online: bool | None = None
    #: the node's broker connection
    link_up: bool = False


def build(view: HallView, templates: Mapping[str, str], queues: Sequence[str] | None = None) -> dict[str, Any]:
    """The ``show`` arguments for the board now."""
    t = templates
    board = view.board or {}
    cat = view.catalogue or {}
    calls = [c for c in board.get("calls") or [] if isinstance(c, Mapping) and c.get("number")][-MAX_CALLS:]
    shown = []
    for i, call in enumerate(reversed(calls)):
        row = {"number": _cut(call["number"], "number"), "window_name": _cut(_window_name(call), "window_name"),
               "at": _cut(call.get("at", ""), "at")}
        if call.get("name"):  # not in board/state today; masked whatever central sends
            row["name"] = _cut(mask_name(str(call["name"])), "name")
        if i == 0:
            row["highlight"] = True
        shown.append(row)
    content: dict[str, Any] = {
        "title": _cut(t["title"].format(hall_name=(cat.get("hall") or {}).get("name") or ""), "title"),
        "banner": _cut(_banner(view, t), "banner"),
        "announce": "",
        "calls": shown,
        "waiting": _waiting(board, cat, t, queues),
        "labels": {"number": _cut(t["col_number"], "label"), "window": _cut(t["col_window"], "label"),
                   "name": _cut(t["col_name"], "label"), "section": _cut(t["col_section"], "label"),
                   "count": _cut(t["col_count"], "label"), "wait": _cut(t["col_wait"], "label"),
                   "lost": _cut(t["page_lost"], "lost")},
        "hours": _cut(_hours(cat, t), "hours"),
        "notice": _cut(t["notice"], "notice"),
    }
    if calls:
        newest = calls[-1]
        content["announce"] = _cut(t["call"].format(number=newest["number"], window=newest.get("window", ""),
                                                     window_name=_window_name(newest),
                                                     name=shown[0].get("name", "")), "announce")
    return content


def _banner(view: HallView, t: Mapping[str, str]) -> str:
    if not view.link_up:
        return t["link_lost"]
    if view.central_online is False:
        return t["central_offline"]
    return ""


def _window_name(call: Mapping[str, Any]) -> str:
    return str(call.get("window_name") or call.get("window") or "")


def _waiting(board: Mapping[str, Any], cat: Mapping[str, Any], t: Mapping[str, str],
             only: Sequence[str] | None) -> list[dict[str, Any]]:
    counts = board.get("waiting") if board else cat.get("waiting")
    waits = board.get("predicted_wait_min") if board else cat.get("predicted_wait_min")
    counts, waits = counts or {}, waits or {}
    names = {q.get("id"): q.get("name") or q.get("id") for q in cat.get("queues") or [] if isinstance(q, Mapping)}
    order = list(only) if only else (list(names) or sorted(counts))
    rows = []
    for qid in order[:MAX_SECTIONS]:
        if qid not in names and qid not in counts:
            continue
        count = counts.get(qid, 0)
        rows.append({"section": _cut(names.get(qid) or qid, "section"),
                     "count": int(count) if isinstance(count, (int, float)) and count >= 0 else 0,
                     "wait": _cut(_wait(waits.get(qid), t), "wait")})
    return rows


def _wait(minutes: Any, t: Mapping[str, str]) -> str:
    if not isinstance(minutes, (int, float)) or isinstance(minutes, bool):
        return t["wait_none"]
    if minutes < 1:
        return t["wait_now"]
    return t["wait"].format(minutes=math.ceil(minutes))


def _hours(cat: Mapping[str, Any], t: Mapping[str, str]) -> str:
    hours = cat.get("hours")
    if not isinstance(hours, Mapping) or not hours.get("periods"):
        return ""
    return t["hours"].format(periods="  ".join(str(p) for p in hours["periods"]))


def _cut(text: Any, what: str) -> str:
    text = " ".join(str(text or "").split())  # one line
    limit = _LIMITS[what]
    return text if len(text) <= limit else text[: limit - 1] + "…"
