"""Reading rules (what a call sounds like, as tokens), the calls waiting to be said (which are
dropped, and why), the volume schedule and the voice app's options: pure functions, with
hypothesis for numbers and names no example list covers."""

from __future__ import annotations

import re
from datetime import datetime, time, timedelta, timezone

import pytest
from hypothesis import given, settings, strategies as st

from hallctl.apps.daily_schedule import parse_schedule
from hallctl.apps.voice import reading
from hallctl.apps.voice.app import VoiceCallerApp, volume_at
from hallctl.apps.voice.calls import CallQueue
from hallctl.config import parse_node_config
from hallctl.errors import ConfigError
from hallctl.node.plan import plan_node
from hallctl.profiles import load_profiles
from hallctl_drivers.kinds import get_kind
from hallctl_drivers.schema import check
from hallctl_drivers.voice.tokens import CHIME, PAUSE

R = reading.ReadingRules()
T0 = datetime(2026, 11, 30, 9, 0, tzinfo=timezone(timedelta(hours=8)))


# -- reading rules --------------------------------------------------------------------------------


def test_the_default_reading_of_a_call():
    said = ["请", "A", "0", "1", "2", "号", "到", "5", "号", "窗口", "办理"]
    assert reading.announcement(R, "A012", "5", "5号窗口") == [CHIME, *said, PAUSE, *said]


def test_numbers_windows_names_chime_and_repeats_follow_the_halls_rules():
    rules = reading.ReadingRules(numbers="number", window_numbers="digits", chime=False, repeat=1,
                                 window_names={"12": "12号综合窗口"})
    assert reading.announcement(rules, "B105", "12", "12号窗口") == \
        ["请", "B", "1", "百", "0", "5", "号", "到", "1", "2", "号", "综", "合", "窗口", "办理"]
    assert reading.announcement(reading.ReadingRules(repeat=3), "A1", "15", None).count(PAUSE) == 2
    # no name from central: "<id>号窗口"; a window's id read as a number by default
    assert reading.sentence(R, "A001", "15", None)[-5:] == ["十", "5", "号", "窗口", "办理"]
    recall = reading.rules_from({"templates": {"recalled": "{number}号，请到{window}号窗口"}, "chime": False, "repeat": 1})
    assert reading.announcement(recall, "A7", "3", "3号窗口", recalled=True) == \
        ["A", "7", "号", PAUSE, "请", "到", "3", "号", "窗口"]
    assert reading.announcement(recall, "A7", "3", "3号窗口") == reading.sentence(R, "A7", "3", "3号窗口")


@pytest.mark.parametrize("digits, said", [
    ("0", "零"), ("7", "七"), ("10", "十"), ("012", "十二"), ("20", "二十"), ("100", "一百"), ("101", "一百零一"),
    ("110", "一百一十"), ("1001", "一千零一"), ("1010", "一千零一十"), ("2005", "二千零五"), ("9999", "九千九百九十九"),
    ("10000", "一零零零零"),
])
def test_numbers_read_as_numbers(digits, said):
    chars = dict(zip("0123456789", "零一二三四五六七八九"))
    assert "".join(chars.get(t, t) for t in reading.as_number(digits)) == said


def _value_of(tokens: list[str]) -> int:
    """An independent reader of a Chinese numeral written with digit tokens and 十/百/千."""
    units = {"十": 10, "百": 100, "千": 1000}
    total, digit = 0, None
    for t in tokens:
        if t in units:
            total += (1 if digit is None else digit) * units[t]
            digit = None
        else:
            digit = int(t) if t != "0" else None
    return total + (digit or 0)


@given(st.integers(min_value=0, max_value=99999))
def test_a_number_reads_back_to_its_value(value):
    tokens = reading.as_number(str(value))
    if value > reading.MAX_AS_NUMBER:
        assert tokens == list(str(value))
    else:
        assert _value_of(tokens) == value
        assert value == 0 or (tokens[-1] != "0" and "00" not in "".join(tokens)), "one 零 inside at most, none at the end"
        assert tokens[0] != "1" or len(tokens) == 1 or tokens[1] != "十", "十二, not 一十二"


TOKEN = get_kind("voice_caller").actions["announce"].args["properties"]["parts"]["items"]


@settings(max_examples=300)
@given(number=st.from_regex(r"\A[A-Z]{1,3}[0-9]{1,6}\Z"), window=st.from_regex(r"\A[a-z0-9][a-z0-9-]{0,10}\Z"),
       name=st.one_of(st.none(), st.text(max_size=30)), numbers=st.sampled_from(reading.NUMBER_MODES),
       window_numbers=st.sampled_from(reading.NUMBER_MODES), repeat=st.integers(1, 3), recalled=st.booleans())
def test_any_call_reads_as_valid_tokens_that_keep_the_number(number, window, name, numbers, window_numbers, repeat,
                                                             recalled):
    rules = reading.ReadingRules(numbers=numbers, window_numbers=window_numbers, repeat=repeat)
    tokens = reading.announcement(rules, number, window, name, recalled)
    for t in tokens:
        check(TOKEN, t)
    assert tokens[0] == CHIME and tokens.count(PAUSE) >= repeat - 1
    letters = re.match(r"[A-Z]+", number).group()
    spoken = reading.read_ticket(number, numbers)
    assert spoken[: len(letters)] == list(letters)
    digits, rest = spoken[len(letters):], number[len(letters):]
    if numbers == "digits" or int(rest) > reading.MAX_AS_NUMBER:
        assert digits == list(rest)
    else:
        assert _value_of(digits) == int(rest)
    assert tokens[1: 1 + len(spoken) + 1] == ["请", *spoken]


@pytest.mark.parametrize("template, problem", [
    ("请{numbr}号", "uses {numbr}; fields: {number}, {window}, {window_name}"),
    ("请{number号", "bad braces"),
    ("{number:>5}", "takes no format"),
    ("，。", "nothing to say"),
])
def test_a_bad_template_is_refused_saying_why(template, problem):
    with pytest.raises(ValueError, match=re.escape(problem)):
        reading.check_template(template)


# -- options, checked when the node starts ----------------------------------------------------------


def _plan(tmp_path, **options):
    cfg = parse_node_config({"node": {"id": "voice-node", "hall": "test-hall"}, "mqtt": {"host": "127.0.0.1", "port": 1},
                             "store": {"path": str(tmp_path / "n.db")},
                             "device": [{"id": "voice", "profile": "espeak-ng-mandarin", "app": "voice_caller",
                                         "options": {"out_dir": str(tmp_path), **options}}]})
    return plan_node(cfg, load_profiles())


@pytest.mark.parametrize("options, key, problem", [
    ({"templates": {"called": "请{ticket}号"}}, "options.templates.called", "uses {ticket}"),
    ({"templates": {"calld": "请{number}号"}}, "options.templates.calld", "unknown key 'calld'; did you mean 'called'?"),
    ({"numbers": "roman"}, "options.numbers", "must be one of 'digits', 'number'"),
    ({"repeat": 5}, "options.repeat", "must be 1..3"),
    ({"windows": ["Window 5"]}, "options.windows[0]", "a window id as in central's config"),
    ({"volume": [{"at": "8:00", "volume": 50}]}, "options.volume[0].at", 'a time of day as HH:MM, e.g. "08:00"'),
    ({"volume": [{"at": "08:00", "volume": 50}, {"at": "08:00", "volume": 20}]}, "options.volume[1].at", "given twice"),
    ({"volume": [{"at": "08:00", "volume": 150}]}, "options.volume[0].volume", "must be 0..100"),
    ({"window_names": {"Five": "五号窗口"}}, "options.window_names.Five", "not a window id"),
    ({"default_volume": -1}, "options.default_volume", "must be 0..100"),
])
def test_bad_options_are_config_errors_naming_the_key(tmp_path, options, key, problem):
    with pytest.raises(ConfigError) as err:
        _plan(tmp_path, **options)
    assert err.value.key == f"device[0].{key}" and problem in err.value.message, err.value


def test_good_options_split_between_the_app_and_the_driver(tmp_path):
    (plan,) = _plan(tmp_path, windows=["1", "2"], repeat=1, default_volume=80,
                    volume=[{"at": "08:00", "volume": 90}, {"at": "12:00", "volume": 40}])
    assert plan.app is VoiceCallerApp and plan.app_options["windows"] == ["1", "2"]
    assert plan.driver_options == {"out_dir": str(tmp_path), "default_volume": 80}
    assert sorted(plan.actions) == ["announce", "probe", "say"] and plan.actions["say"].test


def test_the_volume_schedule_holds_across_midnight():
    schedule = parse_schedule([{"at": "12:00", "volume": 40}, {"at": "08:00", "volume": 90},
                               {"at": "18:30", "volume": 10}], "volume", value_key="volume")
    assert [volume_at(schedule, time(h, m)) for h, m in ((7, 59), (8, 0), (11, 59), (12, 0), (18, 29), (18, 30), (23, 0))] \
        == [10, 90, 90, 40, 40, 10, 10]
    assert volume_at((), time(9, 0)) is None


# -- which calls are said -------------------------------------------------------------------------


def ev(seq: int, type_: str, ticket: str, window: str = "5", at: datetime = T0, **data) -> dict:
    number = ticket.rsplit("-", 1)[-1]
    return {"v": 1, "seq": seq, "type": type_, "ts": at.isoformat(),
            "data": {"ticket": ticket, "number": number, "queue": "a", "window": window, **data}}


def called(seq: int, number: str, window: str = "5", at: datetime = T0, **data) -> dict:
    return ev(seq, "ticket.called", f"2026-11-30-{number}", window, at, window_name=f"{window}号窗口", **data)


def state(window: str, number: str, status: str, called_at: datetime) -> dict:
    """A retained window state (docs/topics.md, "Window state")."""
    return {"v": 1, "window": window, "state": "open", "ticket": {
        "number": number, "queue": "a", "status": status, "called_at": called_at.isoformat(), "recalls": 0}}


def said(q: CallQueue, now: datetime = T0) -> list[str]:
    out = []
    while True:
        call, _ = q.take(now)
        if call is None:
            return out
        out.append(call.label)


def test_calls_are_said_in_centrals_order_once_each():
    q = CallQueue()
    for doc in (called(3, "A003", "2"), called(1, "A001", "1"), called(2, "A002", "3"), called(1, "A001", "1")):
        q.on_event(doc)
    assert said(q) == ["A001-w1", "A002-w3", "A003-w2"], "a redelivered event (same seq) is dropped"


def test_a_call_that_is_no_longer_true_is_dropped_with_its_reason():
    q = CallQueue()
    for doc in (called(1, "A001", "1"), called(2, "A002", "2"), called(3, "A003", "3"), called(4, "A004", "4"),
                called(5, "A005", "6")):
        q.on_event(doc)
    completed = q.on_event(ev(6, "ticket.completed", "2026-11-30-A001", "1"))
    assert [d.reason for d in completed] == ["completed before its turn"]
    assert [d.call.label for d in q.on_event(called(7, "A002", "9"))] == ["A002-w2"], "called again elsewhere"
    assert [d.call.label for d in q.on_event(called(8, "A008", "3"))] == ["A003-w3"], "the window called another"
    assert [d.reason for d in q.on_event({"v": 1, "seq": 9, "type": "window.paused", "ts": T0.isoformat(),
                                          "data": {"window": "4"}})] == ["window paused"]
    assert [d.reason for d in q.on_event(ev(10, "ticket.no_show", "2026-11-30-A005", "6"))] == ["no-show before its turn"]
    assert said(q) == ["A002-w9", "A008-w3"]
    # an ending older than the call (the ticket's earlier visit to a window) cancels nothing
    q.on_event(called(12, "A001", "7"))
    assert q.on_event(ev(11, "ticket.transferred", "2026-11-30-A001", "1", from_queue="b")) == []
    assert said(q) == ["A001-w7"]


def test_a_recall_while_the_call_waits_is_said_once_and_a_day_start_clears_all():
    q = CallQueue()
    q.on_event(called(1, "A001", "1"))
    q.on_event(ev(2, "ticket.recalled", "2026-11-30-A001", "1", window_name="1号窗口", recalls=1))
    assert said(q) == ["A001-w1"]
    q.on_event(ev(3, "ticket.recalled", "2026-11-30-A001", "1", window_name="1号窗口", recalls=2))
    assert said(q) == ["A001-w1-r2"]
    q.on_event(called(4, "A002", "1"))
    dropped = q.on_event({"v": 1, "seq": 5, "type": "day.started", "ts": T0.isoformat(),
                          "data": {"day": "2026-12-01", "expired": []}})
    assert [d.reason for d in dropped] == ["a new business day started"] and len(q) == 0


def test_the_window_state_drops_a_call_only_when_it_is_surely_newer():
    q = CallQueue()
    q.on_event(called(1, "A001", "1"))
    # the retained state still shows the ticket served before (it travels apart from the events)
    q.on_window_state("1", state("1", "A000", "serving", T0 - timedelta(minutes=5)))
    assert said(q) == ["A001-w1"]
    q.on_event(called(2, "A002", "1"))
    q.on_window_state("1", state("1", "A002", "serving", T0))
    call, dropped = q.take(T0)
    assert call is None and [d.reason for d in dropped] == ["already being served"]
    q.on_event(called(3, "A003", "1"))
    q.on_window_state("1", state("1", "A004", "called", T0 + timedelta(seconds=1)))
    call, dropped = q.take(T0)
    assert call is None and [d.reason for d in dropped] == ["window 1 has called A004 since"]


def test_zones_and_age():
    q = CallQueue(windows=["1", "2"], max_age_s=60)
    q.on_event(called(1, "A001", "1"))
    q.on_event(called(2, "A002", "3"))  # another zone's window
    q.on_event(called(3, "A003", "2", at=T0 - timedelta(seconds=61)))
    call, _ = q.take(T0)
    assert call is not None and call.label == "A001-w1"
    call, dropped = q.take(T0)
    assert call is None and [d.reason for d in dropped] == ["61 s old, over max_age_s 60"]
    # an event of a window this speaker does not follow still cancels its calls (called elsewhere)
    q.on_event(called(4, "A004", "2"))
    assert [d.call.label for d in q.on_event(called(5, "A004", "3"))] == ["A004-w2"]


@settings(max_examples=200)
@given(st.lists(st.fixed_dictionaries({"seq": st.integers(-2, 40), "type": st.sampled_from([
    "ticket.called", "ticket.recalled", "ticket.completed", "window.closed", "day.started", "x"]),
    "ts": st.one_of(st.just(T0.isoformat()), st.text(max_size=8), st.none()),
    "data": st.one_of(st.none(), st.dictionaries(st.sampled_from(["ticket", "number", "window", "window_name", "recalls"]),
                                                 st.one_of(st.text(max_size=6), st.integers(), st.none()), max_size=5))}),
    max_size=30))
def test_garbage_events_never_break_the_queue(events):
    q = CallQueue()
    for doc in events:
        q.on_event(doc)
    assert [c.seq for c in q.pending] == sorted(c.seq for c in q.pending)
    said(q)
