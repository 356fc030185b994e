"""How a conformance run is shown: one line per check for a person, one JSON document for a
machine (docs/conformance.md, "JSON output")."""

from __future__ import annotations

from typing import Any

from hallctl.conformance.checks import PHONE_MASKED, Check
from hallctl.conformance.runner import BROKEN, KEPT, NOT_CHECKED, Report, Result

#: an evidence payload is cut to this many characters for a person (--json has more)
SHOWN_CHARS = 300
LABELS = {KEPT: "KEPT", BROKEN: "BROKEN", NOT_CHECKED: "NOT CHECKED"}
#: what a run does to the hall: said before it starts and in the JSON
_ISSUES = {"ticket-issue", "duplicate-byte-for-byte", "request-id-reused", "phone-masked", "window-call"}


def notice(report: Report, checks: list[Check]) -> str:
    """What this run does to the hall it runs against."""
    ids = {c.id for c in checks}
    acts = []
    if ids & _ISSUES:
        acts.append(f"issues tickets in queue {report.queue}" + (
            f" (one with the phone number {PHONE_MASKED}, the contract's example)" if "phone-masked" in ids else ""))
    if "window-call" in ids:
        acts.append(f"opens window {report.window}, calls a ticket there and completes it, then leaves the window "
                    "as it found it")
    if not acts:
        return ""
    return ("this run " + "; ".join(acts) + ": run it against a test hall or outside opening hours "
            "(the tickets it issues and does not call stay waiting until the day ends)")


def header(report: Report, checks: list[Check]) -> str:
    lines = [f"hallctl conformance: hall {report.hall} on {report.broker}, central {report.instance or '(unknown)'}, "
             f"as client {report.client}"]
    said = notice(report, checks)
    if said:
        lines.append(f"note: {said}")
    return "\n".join(lines)


def line(result: Result) -> str:
    """One check for a person: the verdict, the id, the title, and what was found."""
    out = [f"{LABELS[result.result]:<12} {result.id:<30} {result.title}"]
    if result.detail:
        label = {KEPT: "", BROKEN: "broken: ", NOT_CHECKED: "not checked: "}[result.result]
        out.append(f"{'':<12} {'':<30} {label}{result.detail}")
    for step in result.evidence:
        retained = " (retained)" if step.retain else ""
        shown = step.payload if len(step.payload) <= SHOWN_CHARS else step.payload[:SHOWN_CHARS] + "..."
        out.append(f"{'':<12} {'':<30} {step.way:<4} {step.topic}{retained}: {shown}")
    return "\n".join(out)


def summary(report: Report) -> str:
    return (f"{len(report.results)} checks: {report.count(KEPT)} kept, {report.count(BROKEN)} broken, "
            f"{report.count(NOT_CHECKED)} not checked ({report.duration_s:.1f} s)")


def as_json(report: Report, checks: list[Check]) -> dict[str, Any]:
    return {
        "v": 1,
        "ok": not report.broken,
        "hall": report.hall,
        "broker": report.broker,
        "client": report.client,
        "central": report.instance,
        "window": report.window,
        "queue": report.queue,
        "started": report.started,
        "duration_s": round(report.duration_s, 3),
        "notice": notice(report, checks),
        "counts": {k: report.count(k) for k in (KEPT, BROKEN, NOT_CHECKED)},
        "checks": [result_json(r) for r in report.results],
    }


def result_json(result: Result) -> dict[str, Any]:
    return {
        "id": result.id,
        "title": result.title,
        "section": result.section,
        "result": result.result,
        "detail": result.detail,
        "evidence": [s.to_dict() for s in result.evidence],
        "duration_s": result.duration_s,
    }


def failure_json(message: str, exit_code: int, hall: str | None, broker: str | None) -> dict[str, Any]:
    """The JSON of a run that could not check anything (no broker, no central)."""
    return {"v": 1, "ok": False, "hall": hall, "broker": broker, "error": message, "exit": exit_code, "checks": []}
