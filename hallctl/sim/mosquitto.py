"""A real Mosquitto broker as a child process on loopback, for tests and local runs.

Each :class:`MosquittoProcess` owns a temp directory holding its generated config, its persistence
file and its log. ``persistence true`` plus a graceful :meth:`~MosquittoProcess.stop` (SIGTERM:
mosquitto writes its database on the way out) means :meth:`~MosquittoProcess.restart` keeps
retained messages and persistent sessions with their queued QoS 1 messages, exactly like a
production broker restarted by systemd. :meth:`~MosquittoProcess.kill` (SIGKILL) loses whatever
was not yet saved, like a power cut.

It runs with the settings hallctl relies on (:data:`HALLCTL_SETTINGS`, the ones of
``config/mosquitto.example.conf``) unless ``stock=True``, which keeps Mosquitto's defaults (for
benchmarks that compare the two).

The API is synchronous (it spawns and waits for a process): from async code call it through
``asyncio.to_thread`` so the event loop keeps running while mosquitto starts or stops.
"""

from __future__ import annotations

import contextlib
import getpass
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

from hallctl.errors import HallctlError

__all__ = ["HALLCTL_SETTINGS", "MosquittoError", "MosquittoNotInstalled", "MosquittoProcess",
           "find_mosquitto", "free_port"]

#: mosquitto.conf lines hallctl relies on, as in config/mosquitto.example.conf (a test keeps the
#: two in step): without TCP_NODELAY the broker holds each small packet for the peer's delayed
#: ACK (~40 ms): ticket.issue took 44 ms instead of 3.5 (docs/benchmarks.md)
HALLCTL_SETTINGS = ("set_tcp_nodelay true",)

#: How long start() waits for mosquitto to answer MQTT, and stop() for the process to exit.
START_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 10.0
LOG_TAIL_LINES = 20


class MosquittoError(HallctlError, RuntimeError):
    """mosquitto would not start, stop, or rebind its port."""

    code = "internal"


class MosquittoNotInstalled(MosquittoError, FileNotFoundError):
    """No mosquitto binary on this machine."""


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on ``host`` that nobody listens on right now (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def find_mosquitto() -> str:
    """Path of the mosquitto binary; it usually lives in /usr/sbin, which is not on every PATH."""
    found = shutil.which("mosquitto") or shutil.which("mosquitto", path="/usr/sbin:/usr/local/sbin")
    if not found:
        raise MosquittoNotInstalled(
            "mosquitto is not installed (looked on PATH and in /usr/sbin): apt-get install mosquitto"
        )
    return found


# CONNECT (MQTT 3.1.1, clean session, keepalive 10 s, client id "hallctl-probe") and DISCONNECT.
_PROBE_CONNECT = bytes([0x10, 25, 0, 4]) + b"MQTT" + bytes([4, 0x02, 0, 10, 0, 13]) + b"hallctl-probe"
_PROBE_DISCONNECT = bytes([0xE0, 0])
_CONNACK_ACCEPTED = bytes([0x20, 2, 0, 0])


def _mqtt_answers(host: str, port: int) -> bool:
    """True if an MQTT broker accepts a CONNECT on host:port.

    A bare TCP connect is not enough: something else may already hold the port while our
    mosquitto is still failing to bind it.
    """
    try:
        with socket.create_connection((host, port), timeout=1.0) as sock:
            sock.sendall(_PROBE_CONNECT)
            reply = b""
            while len(reply) < len(_CONNACK_ACCEPTED):
                chunk = sock.recv(len(_CONNACK_ACCEPTED) - len(reply))
                if not chunk:
                    return False
                reply += chunk
            with contextlib.suppress(OSError):
                sock.sendall(_PROBE_DISCONNECT)
            # any CONNACK proves it is mosquitto answering; "not authorised" (rc 5) included,
            # for brokers that refuse anonymous clients
            return reply[:3] == _CONNACK_ACCEPTED[:3]
    except OSError:
        return False


class MosquittoProcess:
    """One mosquitto on ``host``:``port`` with persistence in its own temp directory.

    Constructing it does no I/O; :meth:`start` creates the directory, writes the config and waits
    until it answers an MQTT CONNECT. The port is chosen once and kept across restarts, so
    clients reconnect to the same address.
    """

    def __init__(
        self, port: int | None = None, *, host: str = "127.0.0.1", binary: str | None = None,
        extra_config: tuple[str, ...] = (), stock: bool = False,
    ) -> None:
        """``extra_config``: more mosquitto.conf lines (e.g. ``allow_anonymous false``,
        ``password_file ...``, ``acl_file ...``); a later line overrides an earlier one.
        ``stock``: leave out :data:`HALLCTL_SETTINGS` (Mosquitto's defaults)."""
        self.host = host
        self.extra_config = tuple(extra_config)
        self.stock = stock
        self._port = port
        self._binary = binary
        self._dir: tempfile.TemporaryDirectory[str] | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    # -- properties -----------------------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._port is None:
            raise MosquittoError("mosquitto has no port yet: call start() first")
        return self._port

    @property
    def workdir(self) -> Path:
        """Temp directory with mosquitto.conf, the persistence database and mosquitto.log."""
        if self._dir is None:
            raise MosquittoError("mosquitto has no work directory yet: call start() first")
        return Path(self._dir.name)

    @property
    def log_path(self) -> Path:
        return self.workdir / "mosquitto.log"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self.running and self._proc else None

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self) -> None:
        """Start mosquitto (again) and return once it answers an MQTT CONNECT."""
        if self.running:
            return
        binary = self._binary or find_mosquitto()
        if self._dir is None:
            self._dir = tempfile.TemporaryDirectory(prefix="hallctl-mosquitto-")
        if self._port is None:
            self._port = free_port(self.host)
        conf = self.workdir / "mosquitto.conf"
        conf.write_text(self._config_text(), encoding="utf-8")
        # Append: the log of an earlier run stays readable after a restart.
        with open(self.log_path, "ab") as log:
            self._proc = subprocess.Popen(
                [binary, "-c", str(conf)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
                start_new_session=True,  # a Ctrl-C meant for the test run is not also sent to it
            )
        self._wait_until_listening()

    def stop(self) -> None:
        """Graceful stop (SIGTERM); mosquitto saves retained messages and sessions first."""
        self._end(signal.SIGTERM)

    def kill(self) -> None:
        """Abrupt stop (SIGKILL): nothing is saved, like pulling the plug."""
        self._end(signal.SIGKILL)

    def restart(self) -> None:
        """Graceful stop, then start on the same port with the same persistence file.

        The server side of connections closed by the stop sits in TIME_WAIT on this port;
        mosquitto sets SO_REUSEADDR on its listeners, so rebinding works at once.
        """
        self.stop()
        self.start()

    def close(self) -> None:
        """Kill the process if it is still running and delete the temp directory. Idempotent."""
        if self.running:
            with contextlib.suppress(MosquittoError):
                self.stop()
            if self.running:
                self.kill()
        if self._dir is not None:
            self._dir.cleanup()
            self._dir = None

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        """The last lines mosquitto wrote (config errors, bind failures, client connects)."""
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except (OSError, MosquittoError):
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def __enter__(self) -> MosquittoProcess:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = f"pid {self.pid}" if self.running else "stopped"
        return f"<MosquittoProcess {self.host}:{self._port} {state}>"

    # -- internals ------------------------------------------------------------------------------

    def _config_text(self) -> str:
        persistence = self.workdir / "persist"
        persistence.mkdir(exist_ok=True)
        return "\n".join(
            [
                "# generated by hallctl.sim.mosquitto",
                f"listener {self.port} {self.host}",
                "allow_anonymous true",
                "persistence true",
                # mosquitto wants the trailing slash: it concatenates location + file name.
                f"persistence_location {persistence}/",
                "persistence_file mosquitto.db",
                "log_dest stderr",
                "log_type error",
                "log_type warning",
                "log_type notice",
                "log_type information",
                "connection_messages true",
                "log_timestamp_format %H:%M:%S",
                # Running as root, mosquitto would switch to user 'mosquitto' and then be unable to
                # write into our temp dir. As any other user this line is ignored.
                f"user {getpass.getuser()}",
                *(() if self.stock else HALLCTL_SETTINGS),
                *self.extra_config,
                "",
            ]
        )

    def _wait_until_listening(self) -> None:
        assert self._proc is not None
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                code = self._proc.returncode
                self._proc = None
                raise MosquittoError(
                    f"mosquitto exited with status {code} while starting on {self.host}:{self.port}; "
                    f"log tail:\n{self.log_tail()}",
                    port=self.port,
                )
            if _mqtt_answers(self.host, self.port):
                return
            time.sleep(0.02)
        self.kill()
        raise MosquittoError(
            f"mosquitto did not answer MQTT on {self.host}:{self.port} within "
            f"{START_TIMEOUT_S:.0f}s; log tail:\n{self.log_tail()}",
            port=self.port,
        )

    def _end(self, sig: signal.Signals) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, sig)
        try:
            proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise MosquittoError(
                f"mosquitto (pid {proc.pid}) ignored {sig.name} for {STOP_TIMEOUT_S:.0f}s and was killed; "
                f"log tail:\n{self.log_tail()}",
            ) from None
