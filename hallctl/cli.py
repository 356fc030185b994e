"""``hallctl``: command line entry point. Parsing and output only; the work is elsewhere."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from typing import Any, Awaitable, Callable, Sequence

import hallctl
from hallctl.runtime.tasks import cancel_and_wait

DESCRIPTION = """\
hallctl runs the devices of a government service hall (政务服务中心) on Raspberry Pi nodes and the
hall's queue logic, coordinated over MQTT (topic contract v1, docs/topics.md).

  hallctl demo                 a whole simulated hall in one command (no hardware, no broker)
  hallctl central -c FILE      the hall's queue engine (tickets, calls, retained window state)
  hallctl node -c FILE         one node's devices (window displays, ...)
  hallctl diag devices         what every device says about its health (a technician's tool)
  hallctl doctor -c FILE       check a node: config, ports, font, broker, clock, disk
  hallctl broker-config -c FILE --out DIR   Mosquitto's logins, ACL and TLS listener from central's config
  hallctl conformance --hall ID             check a central (ours or another vendor's) against the contract
"""


def _build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="hallctl", description=DESCRIPTION,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--version", action="version", version=f"hallctl {hallctl.__version__}")
    p.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv for debug)")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    node = sub.add_parser("node", help="run a node's devices (config: config/node.example.toml)",
                          description="Run the devices listed in a node config; systemd Type=notify aware.")
    node.add_argument("-c", "--config", required=True, help="node config (TOML)")

    central = sub.add_parser("central", help="run the hall's queue engine (config: config/central.example.toml)",
                             description="Run central: ticketing, calling, retained window and board state.")
    central.add_argument("-c", "--config", required=True, help="central config (TOML)")
    central.add_argument("--check", action="store_true",
                         help="check the config and print the hall it describes, then exit (before a reload)")

    from hallctl.access import cli as access_cli
    from hallctl.conformance import cli as conformance_cli
    from hallctl.diag import cli as diag_cli, doctor

    diag_cli.add_parser(sub)
    doctor.add_parser(sub)
    access_cli.add_parser(sub)
    conformance_cli.add_parser(sub)

    demo = sub.add_parser("demo", help="run a simulated hall: broker, central, nodes, emulated displays, traffic",
                          description="A whole simulated hall in one process. Uses an embedded broker "
                                      "unless --broker is given.")
    demo.add_argument("--duration", type=float, default=None, metavar="N",
                      help="stop after N seconds and print a summary (default: run until Ctrl-C)")
    demo.add_argument("--windows", type=int, default=4, metavar="N", help="window nodes to simulate (default 4)")
    demo.add_argument("--broker", metavar="HOST:PORT", help="use this MQTT broker (e.g. Mosquitto) instead of the embedded one")
    demo.add_argument("--rate", type=float, default=1.0, metavar="R", help="tickets issued per second (default 1)")
    demo.add_argument("--service", type=float, default=3.0, metavar="S", help="mean service time in seconds (default 3)")
    demo.add_argument("--seed", type=int, default=None, help="random seed for reproducible traffic")
    demo.add_argument("--quiet", action="store_true", help="print only the summary")
    demo.add_argument("--out", metavar="DIR", help="save every printed ticket in DIR as PNG and as the raw bytes (.bin), "
                      "every board frame in DIR/board (PNG), every announcement in DIR/voice (WAV)")
    demo.add_argument("--kiosk-port", type=int, default=8080, metavar="PORT",
                      help="the kiosk page's port (default 8080, any free one when it is taken; 0: any)")
    demo.add_argument("--board-port", type=int, default=8081, metavar="PORT",
                      help="the call-order board's page (default 8081, any free one when it is taken; 0: any)")
    return p


def _setup_logging(verbose: int) -> None:
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    env = os.environ.get("HALLCTL_LOG_LEVEL")
    if env:
        level = getattr(logging, env.upper(), level)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)


def _dump_tasks() -> None:
    for task in asyncio.all_tasks():
        print(f"--- task {task.get_name()}", file=sys.stderr)
        task.print_stack(limit=8, file=sys.stderr)
    sys.stderr.flush()


async def _serve(
    run: Callable[[], Awaitable[Any]],
    stop: Callable[[], Awaitable[Any]],
    reload: Callable[[], Awaitable[Any]] | None = None,
    *,
    reload_now: bool = False,
) -> None:
    """Run until SIGTERM/SIGINT, then stop cleanly (final status published, clean DISCONNECT).
    SIGHUP runs ``reload`` (one at a time) when given; ``reload_now``: one came during start-up."""
    loop = asyncio.get_running_loop()
    task = asyncio.create_task(run())
    stopping = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    loop.add_signal_handler(signal.SIGUSR1, _dump_tasks)  # for a technician: what is it waiting on?
    if reload is not None:
        lock = asyncio.Lock()
        reloads: set[asyncio.Task[Any]] = set()

        async def one_reload() -> None:
            async with lock:
                await reload()

        def on_hup() -> None:
            t = asyncio.create_task(one_reload())
            reloads.add(t)
            t.add_done_callback(reloads.discard)

        loop.add_signal_handler(signal.SIGHUP, on_hup)
        if reload_now:
            on_hup()
    waiter = asyncio.create_task(stopping.wait())
    await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
    if task.done():
        waiter.cancel()
        task.result()  # re-raise a crash: systemd restarts us
        return
    await stop()
    await cancel_and_wait(task)


def _run_node(args: argparse.Namespace) -> int:
    from hallctl.config import load_node_config
    from hallctl.node.daemon import Node

    cfg = load_node_config(args.config)

    async def main() -> None:
        node = Node(cfg)
        await _serve(node.run, node.stop)

    asyncio.run(main())
    return 0


def _run_central(args: argparse.Namespace) -> int:
    from hallctl.central.config import load_central_config
    from hallctl.central.hallconfig import hall_from_config
    from hallctl.central.service import central_from_config
    from hallctl.errors import ConfigError

    cfg = load_central_config(args.config)
    if args.check:
        print(_describe_hall(hall_from_config(cfg)))
        return 0
    log = logging.getLogger("hallctl.central")

    async def main() -> None:
        # a `systemctl reload` while the event log replays must not kill central (SIGHUP's
        # default); it is remembered and done once central serves
        hups: list[int] = []
        signal.signal(signal.SIGHUP, lambda *_: hups.append(1))
        service = central_from_config(cfg)

        async def reload() -> None:
            """SIGHUP: the hall's queues, windows, matters, hours and policy from the file again.
            A bad file or a refused change is logged and the hall runs on as it was."""
            try:
                new = load_central_config(args.config)
                await service.reload(hall_from_config(new))
                service.set_clients(new.clients)
            except ConfigError as exc:
                log.error("config reload failed; running on the previous config: %s", exc.message)
                await service.note_reload(False, exc.message)
                return
            except Exception:  # noqa: BLE001 - a reload must never stop the hall
                log.exception("config reload failed; running on the previous config")
                await service.note_reload(False, "internal error; see central's log")
                return
            later = (new.mqtt, new.store, new.id) != (cfg.mqtt, cfg.store, cfg.id)
            if later:
                log.warning("config reload: [central] id, [mqtt] and [store] take effect at the next restart")
            await service.note_reload(True, "reloaded" + ("; [central] id, [mqtt] and [store] at the next restart" if later else ""))

        await _serve(service.run, service.stop, reload, reload_now=bool(hups))

    asyncio.run(main())
    return 0


def _describe_hall(hall: Any) -> str:
    """What a technician checks after editing central's config: the hall as central will run it."""
    lines = [f"hall {hall.hall_id}: config OK (policy {hall.policy}, day starts {hall.day_reset_hour:02d}:00 {hall.tz})"]
    for q in hall.queues.values():
        matters = [m.name for m in hall.matters.values() if m.queue == q.id]
        lines.append(f"  queue {q.id} ({q.prefix}, {q.name}): {len(matters)} matters"
                     + (f": {', '.join(matters)}" if matters else ""))
    for w in hall.windows.values():
        skills = "every queue" if w.universal else ", ".join(w.queues)
        lines.append(f"  window {w.id} ({w.name}, {w.kind}): {skills}")
    if hall.hours is not None:
        days = ",".join(str(d) for d in sorted(hall.hours.weekdays))
        lines.append(f"  tickets issued {' and '.join(hall.hours.describe())} on weekdays {days}; "
                     f"{len(hall.hours.closed_dates)} holidays, {len(hall.hours.open_dates)} make-up days")
    else:
        lines.append("  tickets issued at any time (no [hall] hours)")
    if hall.class_prefix:
        lines.append("  numbered on their own: " + ", ".join(f"{c} {p}" for c, p in hall.class_prefix.items()))
    return "\n".join(lines)


def _run_demo(args: argparse.Namespace) -> int:
    from hallctl.sim.demo import DemoOptions, DemoUnavailable, run_demo

    opts = DemoOptions(duration=args.duration, windows=args.windows, broker=args.broker, rate=args.rate,
                       service_s=args.service, seed=args.seed, quiet=args.quiet, out=args.out,
                       kiosk_port=args.kiosk_port, board_port=args.board_port)
    try:
        return asyncio.run(run_demo(opts))
    except KeyboardInterrupt:
        return 130
    except DemoUnavailable as exc:
        print(f"hallctl demo: {exc}", file=sys.stderr)
        return 69  # EX_UNAVAILABLE


def main(argv: Sequence[str] | None = None) -> int:
    parser = _build_parser()
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return 2
    _setup_logging(args.verbose)
    from hallctl.errors import ConfigError, StorageUnavailable

    try:
        from hallctl.access import cli as access_cli
        from hallctl.conformance import cli as conformance_cli
        from hallctl.diag import cli as diag_cli, doctor

        commands = {"node": _run_node, "central": _run_central, "demo": _run_demo, "diag": diag_cli.main,
                    "doctor": doctor.main, "broker-config": access_cli.main,
                    "conformance": conformance_cli.main}
        return commands[args.command](args)
    except ConfigError as exc:
        print(f"hallctl {args.command}: configuration error: {exc.message}", file=sys.stderr)
        return 78  # EX_CONFIG: systemd's RestartPreventExitStatus can name it
    except StorageUnavailable as exc:
        print(f"hallctl {args.command}: storage unavailable: {exc.message} (an outage, not a configuration "
              "error: systemd restarts the daemon, which serves again once the disk is usable)", file=sys.stderr)
        return 75  # EX_TEMPFAIL: an outage that a restart can outlive
