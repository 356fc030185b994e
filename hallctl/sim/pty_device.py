"""Base for serial-device emulators on the master side of a pseudo-terminal.

The driver under test opens :attr:`PtyDevice.port` (the slave, e.g. ``/dev/pts/5``) with pyserial
exactly as it would open ``/dev/ttyUSB0``; the emulator reads what the driver wrote on the master
side, in a thread, and writes replies back. Subclasses implement :meth:`PtyDevice.handle`.

    class Echo(PtyDevice):
        def handle(self, chunk: bytes) -> bytes | None:
            return chunk

    with Echo() as dev:
        serial.Serial(dev.port).write(b"hi")
"""

from __future__ import annotations

import logging
import os
import pty
import select
import threading
import tty
from typing import Callable

log = logging.getLogger(__name__)


class PtyDevice:
    """A device on a pty: a reader thread feeds :meth:`handle` and writes what it returns.

    Thread safety: :meth:`handle` runs under :attr:`cond` (a Condition), which is notified after
    every chunk, so tests can wait on device state with :meth:`wait_for`. Subclasses that change
    state from outside the reader thread should hold ``cond`` too.

    Faults: :meth:`unplug` makes the device deaf and mute (bytes sent to it are lost, as on a
    pulled cable) until :meth:`replug`.
    """

    #: how often the reader thread looks at the stop flag (s)
    poll_interval = 0.05

    def __init__(self, *, name: str | None = None) -> None:
        self.name = name or type(self).__name__
        self._master, self._slave = pty.openpty()
        # raw: no echo, no line discipline, no CR/LF mangling; pyserial sets its own termios on
        # open too, but a raw default keeps a port usable before that.
        tty.setraw(self._slave)
        #: slave path to hand to pyserial
        self.port: str = os.ttyname(self._slave)
        self.cond = threading.Condition(threading.RLock())
        #: exceptions raised by handle(), kept so a test can fail loudly instead of timing out
        self.errors: list[BaseException] = []
        self._write_lock = threading.Lock()
        self._stop = threading.Event()
        self._unplugged = threading.Event()
        self._thread: threading.Thread | None = None
        self._closed = False

    # -- to override --------------------------------------------------------------------------

    def handle(self, chunk: bytes) -> bytes | None:
        """Process bytes from the host; return bytes to send back (or None). Runs in the
        reader thread, under :attr:`cond`."""
        raise NotImplementedError

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> "PtyDevice":
        """Start the reader thread (idempotent). ``with`` does this for you."""
        if self._closed:
            raise RuntimeError(f"{self.name} is closed")
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._run, name=f"{self.name}-reader", daemon=True
            )
            self._thread.start()
        return self

    def close(self) -> None:
        """Stop the thread and close both ends (idempotent). The host then sees the port die,
        like a USB adapter being pulled."""
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
        for fd in (self._master, self._slave):
            try:
                os.close(fd)
            except OSError:
                pass

    def __enter__(self) -> "PtyDevice":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- faults -------------------------------------------------------------------------------

    def unplug(self) -> None:
        """Stop hearing and answering (bytes written meanwhile are lost)."""
        self._unplugged.set()

    def replug(self) -> None:
        self._unplugged.clear()

    @property
    def unplugged(self) -> bool:
        return self._unplugged.is_set()

    # -- helpers ------------------------------------------------------------------------------

    def send(self, data: bytes) -> None:
        """Write unsolicited bytes to the host (e.g. a modem's RING). Dropped while unplugged."""
        if self._unplugged.is_set() or self._closed or not data:
            return
        with self._write_lock:
            view = memoryview(data)
            while view:
                n = os.write(self._master, view)
                view = view[n:]

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
        """Block until ``predicate()`` (evaluated under :attr:`cond`) is true; False on timeout."""
        with self.cond:
            return self.cond.wait_for(predicate, timeout)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                ready, _, _ = select.select([self._master], [], [], self.poll_interval)
                if not ready:
                    continue
                chunk = os.read(self._master, 4096)
            except OSError:
                # EIO while no process has the slave open on some kernels; keep listening
                # unless we are closing.
                if self._stop.wait(self.poll_interval):
                    return
                continue
            if not chunk or self._unplugged.is_set():
                continue
            with self.cond:
                try:
                    reply = self.handle(chunk)
                except Exception as exc:  # an emulator bug must not kill the device silently
                    log.exception("%s: handle() failed", self.name)
                    self.errors.append(exc)
                    reply = None
                self.cond.notify_all()
            if reply:
                try:
                    self.send(reply)
                except OSError:
                    if self._stop.is_set():
                        return
