"""Store-and-forward for messages that must survive a broker outage or a restart.

A publisher ``put``\\s a message (durable on disk when ``put`` returns), ``peek``\\s the oldest
ones, publishes them and ``ack``\\s each after the broker confirmed it. Because an item is only
deleted after the broker's PUBACK, a crash between publish and ack re-sends it: delivery is at
least once, which is why every request carries a ``request_id`` (topic contract v1).

Storage is SQLite in WAL mode with ``synchronous=FULL``: a power cut on a Pi loses nothing that
``put`` acknowledged. Ids come from ``AUTOINCREMENT`` so they are never reused; a late duplicate
``ack`` can therefore never delete a newer message.

The methods are synchronous (one fsync per ``put``); from async code use the ``a``-prefixed
wrappers, which run them in a worker thread so the event loop never waits on the disk.

Example::

    box = Outbox("/var/lib/hallctl/node-3.db")
    box.put("hallctl/v1/demo-hall/central/req/evaluation.submit", b'{"request_id": "r1"}')
    while True:
        await box.wait_nonempty()
        for item in await box.apeek():
            await client.publish(item.topic, item.payload, qos=item.qos, retain=item.retain)
            await box.aack(item.id)
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from hallctl.errors import StorageUnavailable

__all__ = ["Outbox", "OutboxItem", "storage_outage"]

log = logging.getLogger(__name__)

_SCHEMA_VERSION = 1
#: rows per INSERT/DELETE statement (5 values a row stays under old SQLite's 999 parameters)
ROWS_PER_STATEMENT = 100

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    topic   TEXT    NOT NULL,
    payload BLOB    NOT NULL,
    qos     INTEGER NOT NULL,
    retain  INTEGER NOT NULL,
    created REAL    NOT NULL
);
CREATE TABLE IF NOT EXISTS marks (
    key   TEXT PRIMARY KEY,
    value INTEGER NOT NULL
)
"""


#: SQLite primary result codes that mean the disk, not the file, is the problem
_SQLITE_OUTAGE = {
    13: "the disk is full",  # SQLITE_FULL
    8: "the disk or the file is read-only",  # SQLITE_READONLY
    10: "disk I/O error",  # SQLITE_IOERR (and every SQLITE_IOERR_* extended code)
    14: "the file cannot be opened",  # SQLITE_CANTOPEN
    5: "the database is locked by another process",  # SQLITE_BUSY
}
_ERRNO_OUTAGE = {
    errno.ENOSPC: "the disk is full",
    errno.EDQUOT: "the disk is full (quota)",
    errno.EROFS: "the file system is read-only",
    errno.EIO: "disk I/O error",
}


def storage_outage(exc: BaseException, path: str | Path) -> StorageUnavailable | None:
    """The :class:`StorageUnavailable` that ``exc`` amounts to, or None when it is something else
    (a damaged file, a bug). Used by every store, so "the disk is full" reads the same for all."""
    reason = None
    if isinstance(exc, sqlite3.Error):
        code = getattr(exc, "sqlite_errorcode", None)
        reason = _SQLITE_OUTAGE.get(code & 0xFF) if isinstance(code, int) else None
    elif isinstance(exc, OSError):
        reason = _ERRNO_OUTAGE.get(exc.errno or 0)
    if reason is None:
        return None
    return StorageUnavailable(f"cannot use {path}: {_disk_state(Path(path)) or reason} ({exc})", file=str(path))


def _disk_state(path: Path) -> str | None:
    """What the file system under ``path`` says, when SQLite's code is vaguer ("unable to open")."""
    for where in (path.parent, *path.parent.parents):
        try:
            fs = os.statvfs(where)
        except OSError:
            continue
        if fs.f_flag & os.ST_RDONLY:
            return "the file system is read-only"
        if fs.f_bavail == 0:
            return "the disk is full"
        return None
    return None


@dataclass(frozen=True)
class OutboxItem:
    """One stored message. ``created`` is a Unix timestamp (seconds)."""

    id: int
    topic: str
    payload: bytes
    qos: int
    retain: bool
    created: float


class Outbox:
    """A durable FIFO of MQTT messages in one SQLite file.

    ``max_items`` bounds the file on a node that stays cut off for days: when a ``put`` would
    exceed it, the oldest items are dropped and the number dropped is logged at WARNING (and
    counted in :attr:`dropped`); nothing is ever dropped silently.

    Thread-safe: one connection guarded by a lock, so the ``a``-wrappers may run concurrently.
    """

    def __init__(self, path: str | Path, *, max_items: int = 100_000) -> None:
        if max_items < 1:
            raise ValueError(f"max_items must be at least 1, got {max_items}")
        self.path = Path(path)
        self.max_items = max_items
        #: items dropped by the cap since this Outbox was opened
        self.dropped = 0
        # reentrant: a first call that needs the file opens it while holding the lock
        self._lock = threading.RLock()
        self._waiters: set[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = set()
        self._db: sqlite3.Connection | None = None
        self._closed = False
        self._count = 0

    def open(self) -> "Outbox":
        """Open (creating if needed) the file; a no-op when open. Raises StorageUnavailable when
        the disk is full, read-only or failing."""
        with self._lock:
            if self._closed:
                raise RuntimeError(f"outbox {self.path} is closed")
            if self._db is None:
                try:
                    self._db = self._connect()
                except (sqlite3.Error, OSError) as exc:
                    raise storage_outage(exc, self.path) or exc
        return self

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: we issue BEGIN/COMMIT ourselves so each put is one transaction.
        db = sqlite3.connect(str(self.path), isolation_level=None, check_same_thread=False)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            db.executescript(_SCHEMA)
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version == 0:
                db.execute(f"PRAGMA user_version={_SCHEMA_VERSION}")
            elif version != _SCHEMA_VERSION:
                raise RuntimeError(
                    f"{self.path}: outbox schema version {version}, this hallctl reads {_SCHEMA_VERSION}"
                )
            self._count = db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0]
        except BaseException:
            db.close()
            raise
        return db

    # -- synchronous API -------------------------------------------------------------------

    def put(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> int:
        """Store one message; it is on disk when this returns. Returns its id. Wakes waiters."""
        return self.put_many([(topic, payload, qos, retain)])[0]

    def put_many(
        self,
        items: list[tuple[str, bytes, int, bool]],
        *,
        mark: tuple[str, int] | None = None,
    ) -> list[int]:
        """Store several messages (topic, payload, qos, retain) and optionally set a mark, all in
        one transaction: a producer can record "everything up to N is in the outbox" so that after
        a crash it knows exactly what is still to be put (see :meth:`mark`)."""
        for topic, payload, qos, _ in items:
            if not isinstance(topic, str) or not topic:
                raise ValueError("topic must be a non-empty string")
            if not isinstance(payload, (bytes, bytearray, memoryview)):
                raise TypeError(f"payload must be bytes, got {type(payload).__name__}")
            if qos not in (0, 1, 2):
                raise ValueError(f"qos must be 0, 1 or 2, got {qos!r}")
        dropped = 0
        ids: list[int] = []
        with self._lock:
            db = self._conn()
            db.execute("BEGIN IMMEDIATE")
            try:
                now = time.time()
                # many rows per statement: one SQLite step (and one GIL hand-over) per chunk
                for i in range(0, len(items), ROWS_PER_STATEMENT):
                    chunk = items[i:i + ROWS_PER_STATEMENT]
                    cur = db.execute(
                        "INSERT INTO outbox (topic, payload, qos, retain, created) VALUES "
                        + ",".join(["(?, ?, ?, ?, ?)"] * len(chunk)),
                        [v for topic, payload, qos, retain in chunk
                         for v in (topic, bytes(payload), qos, int(bool(retain)), now)],
                    )
                    last = int(cur.lastrowid or 0)  # the rows of one statement get consecutive ids
                    ids.extend(range(last - len(chunk) + 1, last + 1))
                if mark is not None:
                    db.execute("INSERT OR REPLACE INTO marks (key, value) VALUES (?, ?)", (mark[0], int(mark[1])))
                excess = self._count + len(items) - self.max_items
                if excess > 0:
                    dropped = db.execute(
                        "DELETE FROM outbox WHERE id IN (SELECT id FROM outbox ORDER BY id LIMIT ?)",
                        (excess,),
                    ).rowcount
                db.execute("COMMIT")
            except BaseException as exc:
                _rollback(db)
                raise (storage_outage(exc, self.path) or exc) if isinstance(exc, sqlite3.Error) else exc
            self._count += len(items) - dropped
            self.dropped += dropped
        if dropped:
            log.warning(
                "outbox %s is full (%d items): dropped the %d oldest message(s), %d dropped so far",
                self.path, self.max_items, dropped, self.dropped,
            )
        if items:
            self._wake()
        return ids

    def mark(self, key: str) -> int | None:
        """The value last set with ``put_many(..., mark=(key, value))``, or None."""
        with self._lock:
            row = self._conn().execute("SELECT value FROM marks WHERE key = ?", (key,)).fetchone()
        return None if row is None else int(row[0])

    def peek(self, limit: int = 50) -> list[OutboxItem]:
        """The oldest ``limit`` items, oldest first. Does not remove them."""
        with self._lock:
            rows = self._conn().execute(
                "SELECT id, topic, payload, qos, retain, created FROM outbox ORDER BY id LIMIT ?",
                (max(0, int(limit)),),
            ).fetchall()
        return [OutboxItem(r[0], r[1], bytes(r[2]), r[3], bool(r[4]), r[5]) for r in rows]

    def ack(self, id: int) -> None:  # noqa: A002 - "id" is the name the callers use
        """Delete an item once the broker confirmed it. Acking an unknown id is a no-op."""
        self.ack_many([id])

    def ack_many(self, ids: list[int]) -> None:
        """Delete several confirmed items in one transaction (one fsync for a whole batch)."""
        if not ids:
            return
        with self._lock:
            db = self._conn()
            db.execute("BEGIN IMMEDIATE")
            try:
                deleted = 0
                for i in range(0, len(ids), ROWS_PER_STATEMENT):
                    chunk = [int(x) for x in ids[i:i + ROWS_PER_STATEMENT]]
                    deleted += db.execute(
                        f"DELETE FROM outbox WHERE id IN ({','.join('?' * len(chunk))})", chunk).rowcount
                db.execute("COMMIT")
            except BaseException as exc:
                _rollback(db)
                raise (storage_outage(exc, self.path) or exc) if isinstance(exc, sqlite3.Error) else exc
            self._count -= deleted

    def __len__(self) -> int:
        with self._lock:
            self._conn()
            return self._count

    def close(self) -> None:
        """Close the database (waiting for a transaction another thread is in). Idempotent."""
        with self._lock:
            self._closed = True
            if self._db is not None:
                self._db.close()
                self._db = None

    def __enter__(self) -> "Outbox":
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- asyncio ---------------------------------------------------------------------------

    async def wait_nonempty(self) -> None:
        """Return as soon as the outbox holds at least one item.

        Safe whether ``put`` runs on this loop, on another thread or through :meth:`aput`:
        the waiter is registered before the emptiness check, so a wake-up cannot be lost.
        """
        loop = asyncio.get_running_loop()
        while True:
            fut: asyncio.Future[None] = loop.create_future()
            entry = (loop, fut)
            with self._lock:
                self._waiters.add(entry)
            try:
                if len(self) > 0:
                    return
                await fut
            finally:
                with self._lock:
                    self._waiters.discard(entry)

    async def aopen(self) -> "Outbox":
        """:meth:`open` in a worker thread."""
        return await asyncio.to_thread(self.open)

    async def aput(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> int:
        """:meth:`put` in a worker thread (the fsync stays off the event loop)."""
        return await asyncio.to_thread(self.put, topic, payload, qos, retain)

    async def apeek(self, limit: int = 50) -> list[OutboxItem]:
        """:meth:`peek` in a worker thread."""
        return await asyncio.to_thread(self.peek, limit)

    async def aack(self, id: int) -> None:  # noqa: A002
        """:meth:`ack` in a worker thread."""
        await asyncio.to_thread(self.ack, id)

    async def aack_many(self, ids: list[int]) -> None:
        """:meth:`ack_many` in a worker thread."""
        await asyncio.to_thread(self.ack_many, ids)

    # -- internals -------------------------------------------------------------------------

    def _conn(self) -> sqlite3.Connection:
        """The connection, opening the file at the first use (callers hold the lock)."""
        if self._db is None:
            self.open()
        assert self._db is not None
        return self._db

    def _wake(self) -> None:
        with self._lock:
            waiters = list(self._waiters)
        for loop, fut in waiters:
            try:
                # call_soon_threadsafe works from the loop's own thread too.
                loop.call_soon_threadsafe(_resolve, fut)
            except RuntimeError:  # that loop is closed; its waiter is gone with it
                pass


def _rollback(db: sqlite3.Connection) -> None:
    """Roll back if a transaction is open (a failed BEGIN leaves none); the first error is the one
    that counts, so a failing rollback is not raised over it."""
    if db.in_transaction:
        try:
            db.execute("ROLLBACK")
        except sqlite3.Error:
            log.warning("rollback failed", exc_info=True)


def _resolve(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)
