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
import logging
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Outbox", "OutboxItem"]

log = logging.getLogger(__name__)

_SCHEMA_VERSION = 1

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
        self._lock = threading.Lock()
        self._waiters: set[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = set()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: we issue BEGIN/COMMIT ourselves so each put is one transaction.
        self._db: sqlite3.Connection | None = sqlite3.connect(
            str(self.path), isolation_level=None, check_same_thread=False
        )
        try:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(_SCHEMA)
            version = self._db.execute("PRAGMA user_version").fetchone()[0]
            if version == 0:
                self._db.execute(f"PRAGMA user_version={_SCHEMA_VERSION}")
            elif version != _SCHEMA_VERSION:
                raise RuntimeError(
                    f"{self.path}: outbox schema version {version}, this hallctl reads {_SCHEMA_VERSION}"
                )
            self._count = self._db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0]
        except BaseException:
            self._db.close()
            self._db = None
            raise

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
                for topic, payload, qos, retain in items:
                    cur = db.execute(
                        "INSERT INTO outbox (topic, payload, qos, retain, created) VALUES (?, ?, ?, ?, ?)",
                        (topic, bytes(payload), qos, int(bool(retain)), now),
                    )
                    ids.append(int(cur.lastrowid or 0))
                if mark is not None:
                    db.execute("INSERT OR REPLACE INTO marks (key, value) VALUES (?, ?)", (mark[0], int(mark[1])))
                excess = self._count + len(items) - self.max_items
                if excess > 0:
                    dropped = db.execute(
                        "DELETE FROM outbox WHERE id IN (SELECT id FROM outbox ORDER BY id LIMIT ?)",
                        (excess,),
                    ).rowcount
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
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
        with self._lock:
            deleted = self._conn().execute("DELETE FROM outbox WHERE id = ?", (int(id),)).rowcount
            self._count -= deleted

    def __len__(self) -> int:
        with self._lock:
            return self._count

    def close(self) -> None:
        """Close the database. Idempotent."""
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    def __enter__(self) -> "Outbox":
        return self

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

    async def aput(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> int:
        """:meth:`put` in a worker thread (the fsync stays off the event loop)."""
        return await asyncio.to_thread(self.put, topic, payload, qos, retain)

    async def apeek(self, limit: int = 50) -> list[OutboxItem]:
        """:meth:`peek` in a worker thread."""
        return await asyncio.to_thread(self.peek, limit)

    async def aack(self, id: int) -> None:  # noqa: A002
        """:meth:`ack` in a worker thread."""
        await asyncio.to_thread(self.ack, id)

    # -- internals -------------------------------------------------------------------------

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            raise RuntimeError(f"outbox {self.path} is closed")
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


def _resolve(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)
