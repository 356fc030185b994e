"""The device side of a serial line, on a pseudo-terminal: the base of serial-device emulators.

The driver under test opens :attr:`PtyDevice.port` with pyserial exactly as it would open
``/dev/ttyUSB0``; the emulator reads what the driver wrote on the master side, in a thread, and
writes replies back. Subclasses implement :meth:`PtyDevice.handle`. Tests and the demo use it;
no production module imports it.

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
import queue
import re
import select
import shutil
import tempfile
import threading
import tty
from typing import Callable

log = logging.getLogger(__name__)


class PtyDevice:
    """A device on a pty: a reader thread feeds :meth:`handle` and writes what it returns.

    :attr:`port` is a symlink to the current ``/dev/pts/N``, as udev's
    ``/dev/serial/by-id/usb-...`` is to ``/dev/ttyUSB0``: :meth:`unplug` pulls the USB adapter
    (the path vanishes and the host's open handle fails with EIO), :meth:`replug` puts it back at
    the same path (a new pts behind it, so the host must open it again).

    Thread safety: :meth:`handle` runs under :attr:`cond` (a Condition), which is notified after
    every chunk, so tests can wait on device state with :meth:`wait_for`. Subclasses that change
    state from outside the reader thread should hold ``cond`` too. The pty's file descriptors
    change only in the reader thread (or before it starts / after it stops), so it never reads a
    descriptor number that was closed and reused meanwhile.
    """

    #: how often the reader thread looks at the stop flag (s)
    poll_interval = 0.05

    def __init__(self, *, name: str | None = None) -> None:
        self.name = name or type(self).__name__
        self._dir = tempfile.mkdtemp(prefix="hallctl-pty-")
        #: the path to hand to pyserial
        self.port: str = os.path.join(self._dir, re.sub(r"[^\w.-]", "_", self.name))
        self.cond = threading.Condition(threading.RLock())
        #: exceptions raised by handle(), kept so a test can fail loudly instead of timing out
        self.errors: list[BaseException] = []
        self._fd_lock = threading.Lock()  # send() from other threads vs. unplug/close
        self._master: int | None = None
        self._slave: int | None = None
        self._wake_r, self._wake_w = os.pipe()  # interrupts the reader's select
        self._requests: queue.SimpleQueue[tuple[Callable[[], None], threading.Event]] = (
            queue.SimpleQueue()
        )
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._closed = False
        self._plug()

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
        as if the adapter were pulled for good."""
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        os.write(self._wake_w, b"x")
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
        self._pull()
        for fd in (self._wake_r, self._wake_w):
            os.close(fd)
        shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> "PtyDevice":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- faults -------------------------------------------------------------------------------

    def unplug(self) -> None:
        """Pull the USB adapter: :attr:`port` vanishes, the host's handle fails, bytes are lost."""
        self._in_reader(self._pull)

    def replug(self) -> None:
        """Plug it back in: :attr:`port` exists again (the host has to reopen it)."""
        self._in_reader(self._plug)

    @property
    def unplugged(self) -> bool:
        return self._master is None

    # -- helpers ------------------------------------------------------------------------------

    def send(self, data: bytes) -> None:
        """Write unsolicited bytes to the host (e.g. a modem's RING). Lost while unplugged."""
        if not data:
            return
        with self._fd_lock:
            if self._master is None:
                return
            view = memoryview(data)
            while view:
                n = os.write(self._master, view)
                view = view[n:]

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
        """Block until ``predicate()`` (evaluated under :attr:`cond`) is true; False on timeout."""
        with self.cond:
            return self.cond.wait_for(predicate, timeout)

    # -- internals ----------------------------------------------------------------------------

    def _plug(self) -> None:
        with self._fd_lock:
            if self._master is not None or self._closed:
                return
            master, slave = pty.openpty()
            # raw: no echo, no line discipline, no CR/LF mangling; pyserial sets its own termios
            # on open too, but a raw default keeps a port usable before that. Keeping the slave
            # open ourselves means reads on the master never see EIO when the host closes it.
            tty.setraw(slave)
            link = self.port + ".new"
            os.symlink(os.ttyname(slave), link)
            os.replace(link, self.port)  # atomic: the path never points at a dead pts
            self._master, self._slave = master, slave

    def _pull(self) -> None:
        with self._fd_lock:
            master, slave, self._master, self._slave = self._master, self._slave, None, None
            try:
                os.unlink(self.port)
            except FileNotFoundError:
                pass
            for fd in (master, slave):
                if fd is not None:
                    os.close(fd)  # closing the master hangs up the host's end of the pts

    def _in_reader(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` in the reader thread (which owns the descriptors) and wait for it."""
        thread = self._thread
        if thread is None or not thread.is_alive() or thread is threading.current_thread():
            fn()
            return
        done = threading.Event()
        self._requests.put((fn, done))
        os.write(self._wake_w, b"x")
        if not done.wait(5):
            raise RuntimeError(f"{self.name}: the reader thread did not answer")

    def _run(self) -> None:
        while not self._stop.is_set():
            master = self._master
            watch = [self._wake_r] if master is None else [self._wake_r, master]
            ready, _, _ = select.select(watch, [], [], self.poll_interval)
            if self._wake_r in ready:
                os.read(self._wake_r, 512)
                while not self._requests.empty():
                    fn, done = self._requests.get()
                    try:
                        fn()
                    except Exception as exc:  # keep serving; the test sees it in .errors
                        log.exception("%s: %s failed", self.name, fn.__name__)
                        self.errors.append(exc)
                    done.set()
                continue
            if master is None or master not in ready:
                continue
            try:
                chunk = os.read(master, 4096)
            except OSError:
                if self._stop.wait(self.poll_interval):
                    return
                continue
            if not chunk:
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
