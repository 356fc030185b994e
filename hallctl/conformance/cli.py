"""``hallctl conformance``: play an outside client against whatever central runs on a broker
(hallctl's or another vendor's) and report each promise of topic contract v1 kept or broken.

A run issues tickets and opens, calls at and closes a window: run it against a test hall or
outside opening hours (docs/conformance.md). A password is read from a file, never from the
command line (where ``ps`` would show it).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from typing import Any

from hallctl.diag.cli import NO_ANSWER, OK, PROBLEM, UNREACHABLE, USAGE
from hallctl.diag.settings import connection_from, env_flag, positive_seconds
from hallctl.diag.session import BrokerUnreachable
from hallctl.ids import id_problem

EPILOG = """\
settings: an option wins, then the environment (HALLCTL_BROKER, HALLCTL_HALL, HALLCTL_USERNAME,
HALLCTL_PASSWORD_FILE, HALLCTL_TLS_CA, HALLCTL_TIMEOUT, HALLCTL_JSON=1), then the defaults.

exit codes: 0 no promise broken; 1 a promise is broken; 2 usage error; 3 no central answers for
the hall (central/status offline or missing and queue.status unanswered); 4 broker unreachable or
credentials refused.

examples:
  hallctl conformance --broker 192.168.1.10:1883 --hall test-hall
  hallctl conformance --hall test-hall --username outside-central --password-file pw --json
  hallctl conformance --hall test-hall --only duplicate-byte-for-byte,expired
  hallctl conformance --list
"""


def add_parser(sub: Any) -> None:
    p = sub.add_parser("conformance", help="check a central (ours or another vendor's) against the topic contract",
                       description=__doc__, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--broker", metavar="HOST:PORT", help="MQTT broker (else env HALLCTL_BROKER, else 127.0.0.1:1883)")
    p.add_argument("--hall", help="hall id (else env HALLCTL_HALL)")
    p.add_argument("--username", help="MQTT user (else env HALLCTL_USERNAME)")
    p.add_argument("--password-file", metavar="FILE", help="file holding the MQTT password (else env HALLCTL_PASSWORD_FILE)")
    p.add_argument("--tls-ca", metavar="FILE",
                   help="connect over TLS, verifying the broker against this CA certificate (else env HALLCTL_TLS_CA)")
    p.add_argument("--client", metavar="ID",
                   help="the <client> level of the request topics (default: the user name, else conformance-<random>)")
    p.add_argument("--window", metavar="ID",
                   help="a window the run may open, call at and close (default: the first free one queue.status lists)")
    p.add_argument("--queue", metavar="ID", help="the queue to issue tickets in (default: the first queue.status lists)")
    p.add_argument("--timeout", type=positive_seconds, default=None, metavar="S",
                   help="seconds to wait for the broker and for each answer (else env HALLCTL_TIMEOUT, else 5)")
    p.add_argument("--only", action="append", default=[], metavar="IDS", help="run only these checks (comma-separated)")
    p.add_argument("--skip", action="append", default=[], metavar="IDS", help="leave these checks out (comma-separated)")
    p.add_argument("--list", action="store_true", help="list the checks and exit")
    p.add_argument("--json", action="store_true", default=env_flag("HALLCTL_JSON"),
                   help="machine-readable output (env HALLCTL_JSON=1)")


def main(args: argparse.Namespace) -> int:
    from hallctl.conformance import report as fmt
    from hallctl.conformance.checks import CHECKS
    from hallctl.conformance.runner import CentralNotOnline, Options, run

    if getattr(args, "verbose", 0) == 0:  # the bus's reconnect warnings are for daemons
        logging.getLogger("hallctl.bus").setLevel(logging.ERROR)
    try:
        checks = _selected(CHECKS, args.only, args.skip)
    except ValueError as exc:
        print(f"hallctl conformance: {exc}", file=sys.stderr)
        return USAGE
    if args.list:
        for c in checks:
            print(f"{c.id:<30} {c.title} (docs/topics.md: {c.section})")
        return OK
    try:
        conn = connection_from(args)
        opts = Options(conn, _id(args.client or conn.username, "client"), _id(args.window, "window"), _id(args.queue, "queue"))
    except ValueError as exc:
        print(f"hallctl conformance: {exc}", file=sys.stderr)
        return USAGE

    def started(report: Any) -> None:
        if not args.json:
            print(fmt.header(report, checks), flush=True)

    def checked(result: Any) -> None:
        if not args.json:
            print(fmt.line(result), flush=True)

    try:
        report = asyncio.run(run(opts, checks, on_start=started, on_result=checked))
    except (BrokerUnreachable, CentralNotOnline) as exc:
        code = UNREACHABLE if isinstance(exc, BrokerUnreachable) else NO_ANSWER
        if args.json:
            print(json.dumps(fmt.failure_json(str(exc), code, conn.hall, f"{conn.host}:{conn.port}"), ensure_ascii=False))
        print(f"hallctl conformance: {exc}", file=sys.stderr)
        return code
    except KeyboardInterrupt:
        return 130
    if args.json:
        print(json.dumps(fmt.as_json(report, checks), ensure_ascii=False, indent=1))
    else:
        print(fmt.summary(report))
    return PROBLEM if report.broken else OK


def _selected(checks: Any, only: list[str], skip: list[str]) -> list[Any]:
    """The checks to run, in their order; an unknown id is a usage error naming the known ones."""
    known = [c.id for c in checks]
    wanted = {i.strip() for arg in only for i in arg.split(",") if i.strip()}
    left_out = {i.strip() for arg in skip for i in arg.split(",") if i.strip()}
    unknown = sorted((wanted | left_out) - set(known))
    if unknown:
        raise ValueError(f"no check {', '.join(unknown)}; the checks are: {', '.join(known)}")
    return [c for c in checks if (not wanted or c.id in wanted) and c.id not in left_out]


def _id(value: str | None, what: str) -> str | None:
    if value is not None and (problem := id_problem(value)) is not None:
        raise ValueError(f"{what}: {problem}")
    return value
