"""The contract's parsers: garbage in gives a coded error (never a crash), good input round-trips."""

from __future__ import annotations

import json
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hallctl.bus import messages
from hallctl.bus.topics import ROOT, Topics, check_id, parse
from hallctl.errors import BadRequest

ids = st.from_regex(r"\A[a-z0-9][a-z0-9-]{0,20}\Z")
names = st.from_regex(r"\A[a-z][a-z0-9_]{0,8}(\.[a-z][a-z0-9_]{0,8}){0,2}\Z")
json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=10),
                           lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=5), c, max_size=3),
                           max_leaves=10)


@given(st.binary(max_size=300))
def test_parse_request_never_crashes_on_garbage(raw):
    try:
        req = messages.parse_request(raw)
    except BadRequest as exc:
        assert exc.code == "bad_request" and exc.message
    else:
        assert messages.REQUEST_ID_RE.match(req.request_id) and isinstance(req.data, dict)


@given(json_values)
def test_parse_request_on_any_json_document(doc):
    raw = json.dumps(doc).encode()
    with pytest.raises(BadRequest):
        messages.parse_request(raw)  # none of these has v=1 and a request_id


@given(st.from_regex(r"\A[A-Za-z0-9._:-]{1,64}\Z"), st.dictionaries(st.text(max_size=8), json_values, max_size=4))
def test_request_round_trip(rid, data):
    req = messages.parse_request(messages.encode(messages.request(rid, data)))
    assert req.request_id == rid and req.data == data


@given(st.binary(max_size=200))
def test_request_id_of_garbage_is_none_or_valid(raw):
    rid = messages.request_id_of(raw)
    assert rid is None or messages.REQUEST_ID_RE.match(rid)


def test_bad_request_messages_say_what_is_wrong():
    cases = {
        b"": "empty",
        b"[1]": "object",
        b'{"v": 2, "request_id": "a"}': "version",
        b'{"v": 1}': "request_id",
        b'{"v": 1, "request_id": "a", "data": []}': "data",
        b'{"v": 1, "request_id": "a", "extra": 1}': "extra",
        "中文".encode("gb2312"): "UTF-8",
    }
    for raw, word in cases.items():
        with pytest.raises(BadRequest, match=word):
            messages.parse_request(raw)


def test_payloads_keep_chinese_readable():
    assert "请" in messages.encode({"text": "请"}).decode("utf-8")


@given(ids, ids, ids, names, names)
def test_topics_round_trip(hall, node, dev, action, client_name):
    t = Topics(hall)
    assert parse(t.dev_cmd(node, dev, action)) == parse(t.dev_cmd(node, dev, action))
    p = parse(t.dev_cmd(node, dev, action))
    assert (p.kind, p.hall, p.node, p.device, p.name) == ("dev_cmd", hall, node, dev, action)
    p = parse(t.central_req(node, action))
    assert (p.kind, p.client, p.name) == ("central_req", node, action)
    assert parse(t.window_state(dev)).window == dev
    assert parse(t.node_status(node)).kind == "node_status"
    assert parse(t.event(client_name)).name == client_name


@given(st.text(max_size=80))
def test_parse_any_topic_never_crashes(topic):
    p = parse(topic)
    assert p is None or topic.startswith(ROOT + "/")


@pytest.mark.parametrize("bad", ["", "A", "a b", "a/b", "+", "#", "-a", "x" * 64, "窗口"])
def test_ids_that_would_break_topics_are_refused(bad):
    with pytest.raises(BadRequest):
        check_id(bad)


def test_docs_topics_md_names_every_code_action_and_topic():
    """docs/topics.md is the contract other systems read: whatever the code can answer or publish
    must be in it."""
    from pathlib import Path

    from hallctl.bus import topics
    from hallctl.central.core import Central
    from hallctl.central.service import CentralService
    from hallctl.errors import CODES

    doc = (Path(__file__).resolve().parent.parent / "docs" / "topics.md").read_text()
    missing = [f"code {c}" for c in CODES if f"`{c}`" not in doc]
    missing += [f"action {a}" for a in (*Central.ACTIONS, *CentralService.QUERIES) if f"`{a}`" not in doc]
    for kind, pattern in topics._PATTERNS.items():
        suffix = pattern.pattern.split(")/", 1)[1].rstrip("$")
        shown = suffix.replace("([^/]+)", "<x>")
        if not any(shown == re.sub(r"<[a-z]+>", "<x>", t) for t in re.findall(r"^\| `([^`]+)`", doc, re.M)):
            missing.append(f"topic {kind}")
    assert not missing, missing


def test_request_ids_never_read_as_a_phone_number(monkeypatch):
    """pid 15454 and random bytes 53 95 05 once gave "demo-kiosk-15454-539505-1": 154 5453 9505 with
    dashes, which the masker (and the schemas' privacy rule) read as a mobile number."""
    import os

    from hallctl.bus.requests import Requester
    from hallctl.privacy import scrub

    monkeypatch.setattr(os, "getpid", lambda: 15454)
    monkeypatch.setattr(os, "urandom", lambda n: bytes.fromhex("539505138001")[:n])
    requester = Requester("kiosk-13")
    ids = [requester.new_id() for _ in range(12)]
    assert all(scrub(i) == i for i in ids), ids
