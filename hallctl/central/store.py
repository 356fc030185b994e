"""The central's event store: one SQLite file, append-only events plus idempotency responses,
and a checkpoint of the core's state at the start of each business day (so that a start or a
reload replays days, not the hall's whole history).

``commit`` writes a command's events and its response in one transaction, so after a crash either
both are there or neither is: a request re-delivered by MQTT (QoS 1 is at-least-once) is answered
from :meth:`Store.response_for` and never runs twice, and a ticket never prints twice.

The file uses WAL with ``synchronous=FULL``: a committed transaction survives a power cut.
All methods block; call them off the event loop (``asyncio.to_thread``). One connection is shared
under a lock, so any thread may call.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterable, Iterator

from hallctl.central.model import Event
from hallctl.errors import ConfigError, HallctlError

#: schema version kept in ``PRAGMA user_version``
SCHEMA_VERSION = 1
#: rows fetched per query while loading events (keeps memory flat on long histories)
LOAD_BATCH = 1000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    seq  INTEGER PRIMARY KEY,
    type TEXT NOT NULL,
    ts   TEXT NOT NULL,
    data TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS responses (
    request_key TEXT PRIMARY KEY,
    response    TEXT NOT NULL,
    ts          TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS responses_ts ON responses (ts);
CREATE TABLE IF NOT EXISTS checkpoints (
    seq   INTEGER PRIMARY KEY,
    day   TEXT NOT NULL,
    state TEXT NOT NULL
);
"""


class StoreCorrupt(ConfigError):
    """The store file cannot be used (not a database, damaged, or from a newer hallctl).

    A config-class error on purpose: central must stop and a person must look at the file.
    """


class StoreError(HallctlError, RuntimeError):
    """A commit that must not happen: a gap or overlap in ``seq``, or a request already answered."""

    code = "internal"


class DuplicateRequest(StoreError):
    """``request_key`` was already committed; ``response`` is the stored answer."""

    def __init__(self, request_key: str, response: dict[str, Any]) -> None:
        super().__init__(f"request {request_key!r} was already answered", request_key=request_key)
        self.response = response


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True)


def _utc_iso(when: datetime) -> str:
    """Fixed-width UTC text, so ``ts`` columns sort and compare as strings."""
    if when.tzinfo is None:
        raise ValueError("timestamps must be timezone-aware")
    return when.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Store:
    """Open (creating if needed) the store at ``path``.

    Raises :class:`StoreCorrupt` if the file is not a usable hallctl store.
    """

    def __init__(self, path: str | Path, *, check: bool = True) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._closed = False
        try:
            # isolation_level=None: we issue BEGIN/COMMIT ourselves
            self._db = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False, timeout=30.0
            )
        except sqlite3.Error as exc:
            raise StoreCorrupt(f"cannot open: {exc}", file=str(self.path)) from None
        try:
            self._setup(check)
        except sqlite3.DatabaseError as exc:
            self._db.close()
            self._closed = True
            raise StoreCorrupt(
                f"not a usable hallctl store ({exc}); move it aside and restore a backup",
                file=str(self.path),
            ) from None
        except StoreCorrupt:
            self._db.close()
            self._closed = True
            raise

    def _setup(self, check: bool) -> None:
        db = self._db
        mode = db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise StoreCorrupt(f"cannot switch to WAL (journal_mode={mode})", file=str(self.path))
        db.execute("PRAGMA synchronous=FULL")
        if check:
            problems = [row[0] for row in db.execute("PRAGMA quick_check")]
            if problems != ["ok"]:
                raise StoreCorrupt(
                    "damaged: " + "; ".join(problems[:3]) + "; move it aside and restore a backup",
                    file=str(self.path),
                )
        version = db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise StoreCorrupt(
                f"written by a newer hallctl (schema {version}, this one reads {SCHEMA_VERSION})",
                file=str(self.path),
            )
        db.execute("BEGIN IMMEDIATE")
        try:
            for statement in filter(None, (s.strip() for s in _SCHEMA.split(";"))):
                db.execute(statement)
            db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise

    # -- writing ------------------------------------------------------------------------------

    def commit(
        self,
        events: Iterable[Event],
        request_key: str | None = None,
        response: dict[str, Any] | None = None,
        *,
        now: datetime | None = None,
        checkpoint: tuple[int, str, dict[str, Any]] | None = None,
    ) -> None:
        """Append ``events`` and remember ``response`` for ``request_key``, atomically; with them
        ``checkpoint`` (seq, day, state) when one of the events started a day.

        ``events`` must continue the stored sequence without gaps (seq = last_seq()+1, +2, ...).
        Raises :class:`DuplicateRequest` if ``request_key`` was already committed (nothing is
        written) and :class:`StoreError` on a sequence gap or overlap.
        """
        events = list(events)
        if (request_key is None) != (response is None):
            raise ValueError("request_key and response go together")
        if not events and request_key is None and checkpoint is None:
            return
        rows = [(e.seq, e.type, e.ts, _dumps(e.data)) for e in events]
        stamp = _utc_iso(now or datetime.now(timezone.utc))
        with self._lock:
            self._check_open()
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            try:
                if request_key is not None:
                    row = db.execute(
                        "SELECT response FROM responses WHERE request_key=?", (request_key,)
                    ).fetchone()
                    if row is not None:
                        raise DuplicateRequest(request_key, json.loads(row[0]))
                if events:
                    last = db.execute("SELECT COALESCE(MAX(seq), 0) FROM events").fetchone()[0]
                    expected = list(range(last + 1, last + 1 + len(events)))
                    if [e.seq for e in events] != expected:
                        raise StoreError(
                            f"events {events[0].seq}..{events[-1].seq} do not follow stored seq {last}",
                            last_seq=last,
                        )
                    db.executemany("INSERT INTO events (seq, type, ts, data) VALUES (?, ?, ?, ?)", rows)
                if request_key is not None:
                    db.execute(
                        "INSERT INTO responses (request_key, response, ts) VALUES (?, ?, ?)",
                        (request_key, _dumps(response), stamp),
                    )
                if checkpoint is not None:
                    seq, day, state = checkpoint
                    db.execute(
                        "INSERT OR REPLACE INTO checkpoints (seq, day, state) VALUES (?, ?, ?)",
                        (seq, day, _dumps(state)),
                    )
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise

    def prune_responses(self, older_than_days: float, *, now: datetime | None = None) -> int:
        """Forget idempotency responses older than ``older_than_days``; returns how many."""
        cutoff = (now or datetime.now(timezone.utc)) - timedelta(days=older_than_days)
        with self._lock:
            self._check_open()
            cur = self._db.execute("DELETE FROM responses WHERE ts < ?", (_utc_iso(cutoff),))
            return cur.rowcount

    # -- reading ------------------------------------------------------------------------------

    def response_for(self, request_key: str) -> dict[str, Any] | None:
        """The stored response of an already-committed request, or None."""
        with self._lock:
            self._check_open()
            row = self._db.execute(
                "SELECT response FROM responses WHERE request_key=?", (request_key,)
            ).fetchone()
        return None if row is None else json.loads(row[0])

    def load_events(self, after: int = 0) -> Iterator[Event]:
        """Every stored event with ``seq > after``, in order (fetched in batches)."""
        last = after
        while True:
            with self._lock:
                self._check_open()
                rows = self._db.execute(
                    "SELECT seq, type, ts, data FROM events WHERE seq > ? ORDER BY seq LIMIT ?",
                    (last, LOAD_BATCH),
                ).fetchall()
            for seq, type_, ts, data in rows:
                yield Event(seq=seq, type=type_, ts=ts, data=json.loads(data))
            if len(rows) < LOAD_BATCH:
                return
            last = rows[-1][0]

    #: a checkpoint counts only where its seq holds the day.started of the same day: a row left
    #: behind by events removed from the log never stands for a state it was not taken from
    #: (CROSS JOIN keeps SQLite walking the few checkpoints, not the many events)
    _VALID_CHECKPOINTS = (
        "FROM checkpoints c CROSS JOIN events e ON e.seq = c.seq AND e.type = 'day.started'"
        " AND json_extract(e.data, '$.day') = c.day"
    )

    def latest_checkpoint(self) -> tuple[int, str, dict[str, Any]] | None:
        """The newest valid checkpoint: (seq, day, state). A state that is not readable JSON
        comes back as ``{}``, which the core refuses, so central replays the whole log."""
        with self._lock:
            self._check_open()
            row = self._db.execute(
                f"SELECT c.seq, c.day, c.state {self._VALID_CHECKPOINTS} ORDER BY c.seq DESC LIMIT 1"
            ).fetchone()
        if row is None:
            return None
        try:
            state = json.loads(row[2])
        except ValueError:
            state = {}
        return row[0], row[1], state if isinstance(state, dict) else {}

    def day_start_seq(self, day: str) -> int | None:
        """The seq of the ``day.started`` that began ``day``, or of the newest checkpointed day
        before it; None when no day up to ``day`` has a checkpoint (replay from the start)."""
        with self._lock:
            self._check_open()
            row = self._db.execute(
                f"SELECT MAX(c.seq) {self._VALID_CHECKPOINTS} WHERE c.day <= ?", (day,)
            ).fetchone()
        return None if row is None or row[0] is None else int(row[0])

    def checkpoint_at(self, seq: int) -> dict[str, Any] | None:
        """The state of the valid checkpoint at ``seq``, None if there is none or it is unreadable."""
        with self._lock:
            self._check_open()
            row = self._db.execute(
                f"SELECT c.state {self._VALID_CHECKPOINTS} WHERE c.seq = ?", (seq,)
            ).fetchone()
        try:
            state = json.loads(row[0]) if row is not None else None
        except ValueError:
            return None
        return state if isinstance(state, dict) else None

    def nth_newest_day_start(self, n: int) -> int | None:
        """The seq of the day.started of the ``n``-th newest checkpointed day (1 = the newest);
        None when fewer days have one."""
        with self._lock:
            self._check_open()
            row = self._db.execute(
                f"SELECT c.seq {self._VALID_CHECKPOINTS} ORDER BY c.seq DESC LIMIT 1 OFFSET ?", (n - 1,)
            ).fetchone()
        return None if row is None else int(row[0])

    def add_checkpoints(self, checkpoints: Iterable[tuple[int, str, dict[str, Any]]]) -> None:
        """Store (or replace) checkpoints in one transaction (a store written before them gets
        one per day at its first start)."""
        rows = [(seq, day, _dumps(state)) for seq, day, state in checkpoints]
        if not rows:
            return
        with self._lock:
            self._check_open()
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            try:
                db.executemany("INSERT OR REPLACE INTO checkpoints (seq, day, state) VALUES (?, ?, ?)", rows)
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise

    def last_seq(self) -> int:
        with self._lock:
            self._check_open()
            return self._db.execute("SELECT COALESCE(MAX(seq), 0) FROM events").fetchone()[0]

    # -- lifetime -----------------------------------------------------------------------------

    def close(self) -> None:
        """Close the file. Safe to call twice."""
        with self._lock:
            if not self._closed:
                self._closed = True
                self._db.close()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError(f"store {self.path} is closed")
