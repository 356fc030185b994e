"""A device kind that hallctl does not ship, defined entirely here: a counter bell (a chime with a
button) that rings when its window calls a number. Its kind, driver, app and emulator are
registered through the public registries only; its profile is a file in a site folder.

Protocol (this test's own, line based over TCP, ASCII, CRLF):
    host -> bell   ``PING``        bell -> host ``PONG``
    host -> bell   ``RING <n>``    bell -> host ``OK <n>``  (1 <= n <= 9, else ``ERR``)
    bell -> host   ``BTN <b>``     (unsolicited, when button b is pressed)
    bell -> host   ``JAM``         (unsolicited; the kind declares no such event: a driver bug to catch)
"""

from __future__ import annotations

import asyncio
from typing import Any, Mapping

from hallctl.apps import register_app
from hallctl.apps.base import App
from hallctl.bus.topics import parse
from hallctl.errors import BadRequest, DeviceError, DeviceOffline, DeviceTimeout, UnknownCommand
from hallctl_drivers import Driver, Health, ProbeResult, register_driver, register_kind
from hallctl_drivers.kinds import Action, Kind

BELL = register_kind(Kind(
    name="test_bell",
    doc="a counter bell with a button",
    actions={
        "ring": Action("ring", "ring n times", {
            "type": "object", "properties": {"times": {"type": "integer", "minimum": 1, "maximum": 9}},
            "required": ["times"], "additionalProperties": False}),
        "chime_test": Action("chime_test", "ring once, for a technician", feature="chime_test", test=True),
    },
    events={"pressed": {"type": "object", "properties": {"button": {"type": "integer"}}}},
))


class BellEmulator:
    """The bell, on a TCP port on 127.0.0.1: what it heard, and a button a test can press."""

    def __init__(self) -> None:
        self.heard: list[str] = []
        self.rings = 0
        self.silent = False
        self._server: asyncio.AbstractServer | None = None
        self._writers: list[asyncio.StreamWriter] = []
        self.port = 0

    async def __aenter__(self) -> "BellEmulator":
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: Any) -> None:
        assert self._server is not None
        self._server.close()
        for w in self._writers:
            w.close()
        await self._server.wait_closed()

    async def press(self, button: int = 1) -> None:
        await self.say(f"BTN {button}")

    async def say(self, line: str) -> None:
        for w in self._writers:
            w.write(f"{line}\r\n".encode())
            await w.drain()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.append(writer)
        try:
            while line := await reader.readline():
                text = line.decode("ascii", "replace").strip()
                self.heard.append(text)
                if self.silent:
                    continue
                if text == "PING":
                    writer.write(b"PONG\r\n")
                elif text.startswith("RING ") and text[5:].isdigit() and 1 <= int(text[5:]) <= 9:
                    self.rings += int(text[5:])
                    writer.write(f"OK {text[5:]}\r\n".encode())
                else:
                    writer.write(b"ERR\r\n")
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            self._writers.remove(writer)


class TcpBell(Driver):
    kind = "test_bell"
    features = frozenset({"chime_test"})
    settings_schema = {"type": "object", "properties": {"reply_timeout_s": {"type": "number", "minimum": 0.05, "default": 0.5}},
                       "additionalProperties": False}
    options_schema = {"type": "object", "properties": {"port": {"type": "integer", "minimum": 1, "maximum": 65535}},
                      "required": ["port"], "additionalProperties": False}

    def __init__(self, settings: Mapping[str, Any], options: Mapping[str, Any], *, features: frozenset[str] | None = None) -> None:
        super().__init__(settings, options, features=features)
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._replies: asyncio.Queue[str] = asyncio.Queue()
        self._pump: asyncio.Task[None] | None = None

    async def start(self) -> None:
        try:
            self._reader, self._writer = await asyncio.open_connection("127.0.0.1", self.options["port"])
        except OSError as exc:
            raise DeviceOffline(f"bell not reachable: {exc}") from None
        self._pump = asyncio.create_task(self._read())
        await self._ask("PING")

    async def stop(self) -> None:
        if self._pump is not None:
            self._pump.cancel()
        if self._writer is not None:
            self._writer.close()
        self._pump = self._writer = None

    async def probe(self) -> ProbeResult:
        try:
            await self._ask("PING")
        except (DeviceTimeout, DeviceOffline) as exc:
            return ProbeResult(Health.FAULT, exc.message)
        return ProbeResult(Health.OK, "pong")

    async def execute(self, action: str, args: Mapping[str, Any]) -> dict[str, Any]:
        if action == "ring":
            times = args["times"]
        elif action == "chime_test" and self.supports("chime_test"):
            times = 1
        else:
            raise UnknownCommand(action)
        reply = await self._ask(f"RING {times}")
        if reply != f"OK {times}":
            raise DeviceError(f"bell answered {reply!r}")
        return {"rang": times}

    async def _read(self) -> None:
        assert self._reader is not None
        while line := await self._reader.readline():
            text = line.decode("ascii", "replace").strip()
            if text.startswith("BTN "):
                self.emit("pressed", {"button": int(text[4:])})
            elif text == "JAM":
                self.emit("jammed", {})
            else:
                self._replies.put_nowait(text)

    async def _ask(self, line: str) -> str:
        if self._writer is None:
            raise DeviceOffline("not started")
        self._writer.write(f"{line}\r\n".encode())
        await self._writer.drain()
        try:
            async with asyncio.timeout(self.settings["reply_timeout_s"]):
                return await self._replies.get()
        except TimeoutError:
            raise DeviceTimeout("the bell did not answer") from None


class BellRinger(App):
    """Rings twice whenever its window calls a new number; counts the button presses."""

    name = "bell_ringer"
    kinds = frozenset({"test_bell"})
    options_schema = {"type": "object", "properties": {"window": {"type": "string"}},
                      "required": ["window"], "additionalProperties": False}

    def __init__(self, ctx: Any, options: Mapping[str, Any]) -> None:
        super().__init__(ctx, options)
        self.rung_for: list[str] = []
        self.presses: list[int] = []
        self._called: asyncio.Queue[str] = asyncio.Queue()

    @classmethod
    def claim(cls, options: Mapping[str, Any]) -> str:
        return f"the bell of window {options['window']}"

    def subscriptions(self) -> list[str]:
        return [self.ctx.topics.window_state(self.options["window"])]

    def on_hall_message(self, topic: str, doc: Mapping[str, Any]) -> None:
        ticket = doc.get("ticket") or {}
        if parse(topic).kind == "window_state" and ticket.get("status") == "called":
            number = ticket.get("number")
            if number and number not in self.rung_for:
                self.rung_for.append(number)
                self._called.put_nowait(number)

    def on_device_event(self, type_: str, data: Mapping[str, Any]) -> None:
        if type_ == "pressed":
            self.presses.append(int(data["button"]))

    async def run(self) -> None:
        while True:
            await self._called.get()
            try:
                await self.ctx.submit("ring", {"times": 2})
            except BadRequest:
                raise
            except Exception as exc:  # the worker reports the device's health
                self.ctx.log.debug("bell not rung: %s", exc)


register_driver("test_bell_tcp", TcpBell)
register_app("bell_ringer", BellRinger)

PROFILE = """\
schema = 1
vendor = "Acme (test)"
name = "Bell-1"
source = "tests/devkit_bell.py, the protocol in its docstring"
kind = "test_bell"
driver = "test_bell_tcp"

[settings]
reply_timeout_s = 0.5
"""
