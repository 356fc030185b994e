"""Issue 8: `hallctl conformance`, the check an outside integrator runs against a central, run as
they would run it (a subprocess) against hallctl's central on Mosquitto, and against test doubles:
hallctl's central with one promise deliberately broken."""

from __future__ import annotations

import asyncio
import dataclasses
import importlib.util
import json
import sys
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from conftest import spawn_env
from hallkit import HALL, Running, central, hall_spec

from hallctl.bus import messages
from hallctl.central.hours import OpeningHours
from hallctl.central.service import CentralService, MqttSettings
from hallctl.cli import main as hallctl_main
from hallctl.conformance import runner
from hallctl.conformance.checks import BY_ID, CHECKS
from hallctl.conformance.context import Step
from hallctl.conformance.report import line, summary
from hallctl.conformance.runner import BROKEN, KEPT, NOT_CHECKED, Report, Result
from hallctl.diag.session import Connection
from hallctl.sim.mosquitto import free_port


def _schemas_available() -> bool:
    try:
        return importlib.util.find_spec("hallctl.contract.validate") is not None
    except ModuleNotFoundError:
        return False


#: checks that cannot be made against hallctl's central here, and only these: the contract's JSON
#: Schemas until hallctl/contract/validate.py exists
EXPECTED_NOT_CHECKED = set() if _schemas_available() else {"schema-valid"}


async def _conformance(host: str, port: int, *args: str) -> tuple[int, str, str]:
    env = spawn_env()
    env.pop("HALLCTL_JSON", None)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "hallctl", "conformance", "--broker", f"{host}:{port}", "--hall", HALL, *args,
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    return proc.returncode, out.decode(), err.decode()


def _results(out: str) -> dict[str, dict]:
    doc = json.loads(out)
    return {c["id"]: c for c in doc["checks"]}


async def test_hallctl_central_keeps_every_promise(mosquitto, tmp_path):
    host, port = mosquitto.host, mosquitto.port
    async with central(host, port, tmp_path):
        rc, out, err = await _conformance(host, port, "--json")
        assert rc == 0, f"exit {rc}\n{out}\n{err}"
        doc = json.loads(out)
        results = _results(out)
        assert list(results) == [c.id for c in CHECKS], "every check, in order"
        broken = {i: r["detail"] for i, r in results.items() if r["result"] == BROKEN}
        assert broken == {}
        assert {i for i, r in results.items() if r["result"] == NOT_CHECKED} == EXPECTED_NOT_CHECKED
        assert doc["ok"] is True and doc["counts"][BROKEN] == 0
        assert doc["hall"] == HALL and doc["window"] == "1" and doc["queue"] == "a"
        assert "test hall" in doc["notice"]

        # again, as a person reads it: the tickets the first run left waiting do not matter
        rc, out, err = await _conformance(host, port)
        assert rc == 0, f"exit {rc}\n{out}\n{err}"
        lines = out.splitlines()
        assert lines[0].startswith(f"hallctl conformance: hall {HALL} on {host}:{port}")
        assert "issues tickets" in lines[1] and "opens window 1" in lines[1]
        verdicts = {ln.split()[1] if ln.startswith("KEPT") else ln.split()[2]: ln.split()[0]
                    for ln in lines if ln.startswith(("KEPT", "BROKEN", "NOT CHECKED"))}
        assert verdicts == {c.id: "NOT" if c.id in EXPECTED_NOT_CHECKED else "KEPT" for c in CHECKS}
        assert lines[-1].startswith(f"{len(CHECKS)} checks: {len(CHECKS) - len(EXPECTED_NOT_CHECKED)} kept, 0 broken")


async def test_a_central_that_runs_expired_requests_is_named_broken(mosquitto, tmp_path, monkeypatch):
    """The double: hallctl's central that ignores expires_at, and nothing else."""
    monkeypatch.setattr(messages.Request, "expired", lambda self, now=None: False)
    host, port = mosquitto.host, mosquitto.port
    async with central(host, port, tmp_path):
        rc, out, err = await _conformance(host, port, "--json")
    assert rc == 1, f"exit {rc}\n{out}\n{err}"
    results = _results(out)
    assert list(results) == [c.id for c in CHECKS], "the other checks still report"
    assert {i for i, r in results.items() if r["result"] == BROKEN} == {"expired"}
    assert {i for i, r in results.items() if r["result"] == KEPT} == set(BY_ID) - {"expired"} - EXPECTED_NOT_CHECKED
    expired = results["expired"]
    assert "expected error expired, got status ok" in expired["detail"]
    sent, got = expired["evidence"][0], expired["evidence"][1]
    assert sent["way"] == "sent" and sent["topic"].endswith("/ticket.issue") and "expires_at" in sent["payload"]
    assert got["way"] == "got" and got["topic"].endswith("/central/res/" + json.loads(out)["client"])
    assert json.loads(got["payload"])["status"] == "ok"


async def test_a_central_silent_to_unreadable_requests_is_named_broken(mosquitto, tmp_path, monkeypatch):
    """The double: hallctl's central that answers no request it could not read (request_id null)."""
    send = CentralService._send

    def silent(self, client, response, bus=None):
        if isinstance(response, dict) and response.get("request_id") is None:
            return
        send(self, client, response, bus)

    monkeypatch.setattr(CentralService, "_send", silent)
    host, port = mosquitto.host, mosquitto.port
    async with central(host, port, tmp_path):
        rc, out, err = await _conformance(host, port, "--only", "bad-json,unknown-action", "--timeout", "1")
    assert rc == 1, f"exit {rc}\n{out}\n{err}"
    lines = out.splitlines()
    assert any(ln.startswith("BROKEN") and " bad-json " in ln for ln in lines), out
    assert any(ln.startswith("KEPT") and " unknown-action " in ln for ln in lines), out
    assert "broken: no answer to a body that is not JSON" in out
    assert "sent hallctl/v1/test-hall/central/req/" in out, "the evidence shows what was sent"
    assert lines[-1].startswith("2 checks: 1 kept, 1 broken, 0 not checked")


async def test_a_central_that_publishes_the_token_is_named_broken(mosquitto, tmp_path, monkeypatch):
    """The double: hallctl's central with the ticket's token left in the public ticket.issued event
    (the status link's key, readable by anyone on the hall's bus)."""
    from hallctl.central import core

    monkeypatch.setattr(core, "SECRET", frozenset())
    host, port = mosquitto.host, mosquitto.port
    async with central(host, port, tmp_path):
        rc, out, err = await _conformance(host, port, "--only", "print-confirmed,catalogue-retained")
    assert rc == 1, f"exit {rc}\n{out}\n{err}"
    lines = out.splitlines()
    assert any(ln.startswith("BROKEN") and " print-confirmed " in ln for ln in lines), out
    assert any(ln.startswith("KEPT") and " catalogue-retained " in ln for ln in lines), out
    assert "a ticket's token appeared on hallctl/v1/test-hall/event/ticket.issued" in out, out


async def test_a_closed_hall_leaves_the_ticket_checks_not_checked_not_broken(mosquitto, tmp_path):
    """Outside opening hours central answers ticket.issue hall_closed: the checks that need a
    ticket say so; the rest (a reused request_id among them: hall_closed is stored too) are kept."""
    today = datetime.now(ZoneInfo("Asia/Shanghai")).date()
    closed = [str(today + timedelta(days=d)) for d in (-1, 0, 1)]
    spec = dataclasses.replace(hall_spec(), hours=OpeningHours.parse(["08:00-17:00"], closed_dates=closed))
    svc = CentralService(spec, str(tmp_path / "central.db"), MqttSettings(mosquitto.host, mosquitto.port, keepalive=5))
    run = Running(svc)
    try:
        await asyncio.wait_for(svc.ready.wait(), 10)
        conn = Connection(mosquitto.host, mosquitto.port, HALL, timeout=5.0)
        report = await runner.run(runner.Options(conn), list(CHECKS))
    finally:
        await run.stop()
    by_id = {r.id: r for r in report.results}
    assert not report.broken, [(r.id, r.detail) for r in report.broken]
    needs_ticket = {"ticket-issue", "duplicate-byte-for-byte", "phone-masked", "window-call", "print-confirmed"}
    not_checked = {r.id for r in report.results if r.result == NOT_CHECKED}
    # no ticket, no window opened: no event to see seq grow by
    assert not_checked == needs_ticket | {"event-seq"} | EXPECTED_NOT_CHECKED
    for check in needs_ticket:
        assert by_id[check].detail.startswith("the hall issues no tickets now (hall_closed; opens at ")
    assert by_id["request-id-reused"].result == KEPT and by_id["expired"].result == KEPT


def test_no_central_no_broker_and_unknown_checks_are_said_apart(mosquitto, capsys):
    """Exit 3 when no central answers (not a pile of broken promises), 4 without a broker, 2 for a
    check that does not exist; the JSON still parses."""
    base = ["conformance", "--hall", HALL, "--timeout", "0.5", "--json"]
    assert hallctl_main(base + ["--broker", f"{mosquitto.host}:{mosquitto.port}"]) == 3
    out = json.loads(capsys.readouterr().out)
    assert out["ok"] is False and out["exit"] == 3 and "queue.status" in out["error"]
    assert hallctl_main(base + ["--broker", f"127.0.0.1:{free_port()}"]) == 4
    assert json.loads(capsys.readouterr().out)["exit"] == 4
    assert hallctl_main(base + ["--only", "no-such-check"]) == 2
    assert "no-such-check" in capsys.readouterr().err


def test_a_broken_result_shows_its_evidence_with_the_phone_masked():
    sent = Step.of("sent", "hallctl/v1/h/central/req/c/ticket.issue",
                   b'{"v":1,"request_id":"r1","data":{"queue":"a","phone":"13800138000"}}')
    got = Step.of("got", "hallctl/v1/h/central/res/c", b'{"v":1,"request_id":"r1","status":"ok"}')
    result = Result("phone-masked", "a phone number ...", "Basics", BROKEN, "the event carries the phone", (sent, got))
    text = line(result)
    assert text.splitlines()[0].split()[:2] == ["BROKEN", "phone-masked"]
    assert "broken: the event carries the phone" in text
    assert "13800138000" not in text and "138****8000" in text
    assert "sent hallctl/v1/h/central/req/c/ticket.issue: " in text and "got  hallctl/v1/h/central/res/c: " in text
    report = Report("h:1", "h", "c", "1", "a", "central-1", "now", [result], 1.25)
    assert summary(report) == "1 checks: 0 kept, 1 broken, 0 not checked (1.2 s)"
    long = Step.of("got", "t", b"x" * 5000)
    assert len(long.payload) < 4100 and "5000 bytes" in long.payload
    shown = line(Result("x", "t", "s", BROKEN, "why", (long,))).splitlines()[-1]
    assert len(shown) < 400 and shown.endswith("...")
