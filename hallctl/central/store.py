"""The central's event store: one SQLite file, append-only events plus idempotency responses,
and a checkpoint of the core's state at the start of each business day (so that a start or a
reload replays days, not the hall's whole history).

``commit`` writes a command's events and its response in one transaction, so after a crash either
both are there or neither is: a request re-delivered by MQTT (QoS 1 is at-least-once) is answered
from :meth:`Store.response_for` and never runs twice, and a ticket never prints twice.

``commit_batch`` does the same for many requests at once (central's group commit): one
transaction, one fsync, for every request that arrived while the previous batch was committing.

A response is kept as the exact JSON text that was sent (a duplicate is answered with the same
bytes, :meth:`Store.answers_for`) and with the action it answered, so a request_id reused with
another action is not taken for a duplicate. Schema 1 kept no action: such a store is migrated in
place when it is opened (its answers keep ``action`` NULL, "unknown").

The file uses WAL with ``synchronous=FULL``: a committed transaction survives a power cut.
All methods block; call them off the event loop (``asyncio.to_thread``). One connection is shared
under a lock, so any thread may call. Constructing a Store touches nothing: :meth:`Store.open` (or
the first call that needs the file) opens it. A disk that is full, read-only or failing raises
:class:`~hallctl.errors.StorageUnavailable` (an outage: the daemon exits 75 and systemd retries);
only a file that is not a usable store raises :class:`StoreCorrupt` (a person must look at it).
"""

from __future__ import annotations

import json
import sqlite3
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterable, Iterator, NamedTuple

from hallctl.central.model import Event
from hallctl.errors import ConfigError, HallctlError
from hallctl.runtime.outbox import storage_outage

#: schema version kept in ``PRAGMA user_version``. 2: responses keep their action (issue 8)
SCHEMA_VERSION = 2
#: rows fetched per query while loading events (keeps memory flat on long histories)
LOAD_BATCH = 1000
#: keys looked up per query by ``responses_for`` (SQLite's bound-parameter limit is 999 on old builds)
KEYS_PER_QUERY = 500

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
    ts          TEXT NOT NULL,
    action      TEXT
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


class StoredAnswer(NamedTuple):
    """A stored response: the action it answered (None: stored before schema 2, unknown) and the
    exact JSON text that was sent."""

    action: str | None
    payload: bytes


def _response_text(response: dict[str, Any] | bytes | str) -> str:
    """A response as stored: the text that was sent when given, else as the bus encodes it (key
    order kept, Chinese as is, compact), so what is re-sent is what was sent."""
    if isinstance(response, (bytes, bytearray)):
        return bytes(response).decode("utf-8")
    if isinstance(response, str):
        return response
    return json.dumps(response, ensure_ascii=False, separators=(",", ":"))


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True)


def _utc_iso(when: datetime) -> str:
    """Fixed-width UTC text, so ``ts`` columns sort and compare as strings."""
    if when.tzinfo is None:
        raise ValueError("timestamps must be timezone-aware")
    return when.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Store:
    """The store at ``path``; :meth:`open` opens it (creating it if needed).

    ``open`` raises :class:`StoreCorrupt` if the file is not a usable hallctl store and
    :class:`~hallctl.errors.StorageUnavailable` if the disk will not let it be used.
    """

    def __init__(self, path: str | Path, *, check: bool = True) -> None:
        self.path = Path(path)
        self._check = check
        # reentrant: a first call that needs the file opens it while holding the lock
        self._lock = threading.RLock()
        self._closed = False
        self._db: sqlite3.Connection | None = None

    def open(self) -> "Store":
        """Open the file (a no-op when open) and return the store."""
        with self._lock:
            if self._closed:
                raise StoreError(f"store {self.path} is closed")
            if self._db is None:
                self._open()
        return self

    def _open(self) -> None:
        try:
            # isolation_level=None: we issue BEGIN/COMMIT ourselves
            db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30.0)
        except sqlite3.Error as exc:
            raise storage_outage(exc, self.path) or StoreCorrupt(f"cannot open: {exc}", file=str(self.path)) from None
        try:
            self._setup(db, self._check)
        except sqlite3.DatabaseError as exc:
            db.close()
            outage = storage_outage(exc, self.path)
            if outage is not None:
                raise outage from None
            raise StoreCorrupt(
                f"not a usable hallctl store ({exc}); move it aside and restore a backup",
                file=str(self.path),
            ) from None
        except BaseException:
            db.close()
            raise
        self._db = db

    def _setup(self, db: sqlite3.Connection, check: bool) -> None:
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
            columns = {row[1] for row in db.execute("PRAGMA table_info(responses)")}
            if "action" not in columns:  # schema 1: the answers stored so far keep an unknown action
                db.execute("ALTER TABLE responses ADD COLUMN action TEXT")
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
        action: str | None = None,
    ) -> None:
        """Append ``events`` and remember ``response`` (the answer to ``action``) for
        ``request_key``, atomically; with them ``checkpoint`` (seq, day, state) when one of the
        events started a day.

        ``events`` must continue the stored sequence without gaps (seq = last_seq()+1, +2, ...).
        Raises :class:`DuplicateRequest` if ``request_key`` was already committed (nothing is
        written) and :class:`StoreError` on a sequence gap or overlap.
        """
        if (request_key is None) != (response is None):
            raise ValueError("request_key and response go together")
        responses = [] if request_key is None else [(request_key, response, action)]
        self.commit_batch(events, responses, [checkpoint] if checkpoint is not None else [], now=now)

    def commit_batch(
        self,
        events: Iterable[Event],
        responses: Iterable[tuple[Any, ...]] = (),
        checkpoints: Iterable[tuple[int, str, dict[str, Any]]] = (),
        *,
        now: datetime | None = None,
    ) -> None:
        """:meth:`commit` for many requests in one transaction: all of it is stored or none.
        ``responses`` are (request_key, response) or (request_key, response, action): a response
        is a dict, or the JSON text (bytes or str) that was sent, kept as it is; raises
        :class:`DuplicateRequest` for the first key already stored, writing nothing."""
        events = list(events)
        responses = [(r[0], r[1], r[2] if len(r) > 2 else None) for r in responses]
        checkpoints = list(checkpoints)
        if any(r is None for _, r, _ in responses):
            raise ValueError("request_key and response go together")
        if not events and not responses and not checkpoints:
            return
        rows = [(e.seq, e.type, e.ts, _dumps(e.data)) for e in events]
        stamp = _utc_iso(now or datetime.now(timezone.utc))
        answers = [(key, _response_text(response), stamp, action) for key, response, action in responses]
        states = [(seq, day, _dumps(state)) for seq, day, state in checkpoints]
        with self._lock:
            db = self._conn()
            try:
                db.execute("BEGIN IMMEDIATE")
                keys = [answer[0] for answer in answers]
                for i in range(0, len(keys), KEYS_PER_QUERY):
                    chunk = keys[i:i + KEYS_PER_QUERY]
                    row = db.execute("SELECT request_key, response FROM responses WHERE request_key IN "
                                     f"({','.join('?' * len(chunk))}) LIMIT 1", chunk).fetchone()
                    if row is not None:
                        raise DuplicateRequest(row[0], json.loads(row[1]))
                if events:
                    last = db.execute("SELECT COALESCE(MAX(seq), 0) FROM events").fetchone()[0]
                    expected = list(range(last + 1, last + 1 + len(events)))
                    if [e.seq for e in events] != expected:
                        raise StoreError(
                            f"events {events[0].seq}..{events[-1].seq} do not follow stored seq {last}",
                            last_seq=last,
                        )
                    _insert(db, "events (seq, type, ts, data)", rows)
                if answers:
                    _insert(db, "responses (request_key, response, ts, action)", answers)
                if states:
                    db.executemany("INSERT OR REPLACE INTO checkpoints (seq, day, state) VALUES (?, ?, ?)", states)
                db.execute("COMMIT")
            except BaseException as exc:
                _rollback(db)
                if isinstance(exc, sqlite3.Error):
                    raise storage_outage(exc, self.path) or exc
                raise

    def prune_responses(self, older_than_days: float, *, now: datetime | None = None) -> int:
        """Forget idempotency responses older than ``older_than_days``; returns how many."""
        cutoff = (now or datetime.now(timezone.utc)) - timedelta(days=older_than_days)
        with self._lock:
            cur = self._conn().execute("DELETE FROM responses WHERE ts < ?", (_utc_iso(cutoff),))
            return cur.rowcount

    # -- reading ------------------------------------------------------------------------------

    def response_for(self, request_key: str) -> dict[str, Any] | None:
        """The stored response of an already-committed request, or None."""
        return self.responses_for([request_key]).get(request_key)

    def responses_for(self, request_keys: Iterable[str]) -> dict[str, dict[str, Any]]:
        """The stored responses of those of ``request_keys`` already committed, by key."""
        keys = list(dict.fromkeys(request_keys))
        found: dict[str, dict[str, Any]] = {}
        with self._lock:
            db = self._conn()
            for i in range(0, len(keys), KEYS_PER_QUERY):
                chunk = keys[i:i + KEYS_PER_QUERY]
                marks = ",".join("?" * len(chunk))
                for key, response in db.execute(
                        f"SELECT request_key, response FROM responses WHERE request_key IN ({marks})", chunk):
                    found[key] = json.loads(response)
        return found

    def answers_for(self, request_keys: Iterable[str]) -> dict[str, "StoredAnswer"]:
        """The stored answers of those of ``request_keys`` already committed, by key: the action
        each answered (None when stored before schema 2) and its JSON text as sent, not decoded."""
        keys = list(dict.fromkeys(request_keys))
        found: dict[str, StoredAnswer] = {}
        with self._lock:
            db = self._conn()
            for i in range(0, len(keys), KEYS_PER_QUERY):
                chunk = keys[i:i + KEYS_PER_QUERY]
                marks = ",".join("?" * len(chunk))
                for key, action, response in db.execute(
                        f"SELECT request_key, action, response FROM responses WHERE request_key IN ({marks})", chunk):
                    found[key] = StoredAnswer(action, response.encode("utf-8"))
        return found

    def load_events(self, after: int = 0) -> Iterator[Event]:
        """Every stored event with ``seq > after``, in order (fetched in batches)."""
        last = after
        while True:
            with self._lock:
                rows = self._conn().execute(
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
            row = self._conn().execute(
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
            row = self._conn().execute(
                f"SELECT MAX(c.seq) {self._VALID_CHECKPOINTS} WHERE c.day <= ?", (day,)
            ).fetchone()
        return None if row is None or row[0] is None else int(row[0])

    def checkpoint_at(self, seq: int) -> dict[str, Any] | None:
        """The state of the valid checkpoint at ``seq``, None if there is none or it is unreadable."""
        with self._lock:
            row = self._conn().execute(
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
            row = self._conn().execute(
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
            db = self._conn()
            try:
                db.execute("BEGIN IMMEDIATE")
                db.executemany("INSERT OR REPLACE INTO checkpoints (seq, day, state) VALUES (?, ?, ?)", rows)
                db.execute("COMMIT")
            except BaseException as exc:
                _rollback(db)
                if isinstance(exc, sqlite3.Error):
                    raise storage_outage(exc, self.path) or exc
                raise

    def last_seq(self) -> int:
        with self._lock:
            return self._conn().execute("SELECT COALESCE(MAX(seq), 0) FROM events").fetchone()[0]

    # -- lifetime -----------------------------------------------------------------------------

    def close(self) -> None:
        """Close the file (waiting for a transaction another thread is in). Safe to call twice."""
        with self._lock:
            self._closed = True
            if self._db is not None:
                self._db.close()
                self._db = None

    def __enter__(self) -> "Store":
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _conn(self) -> sqlite3.Connection:
        """The connection, opening the file at the first use (callers hold the lock)."""
        if self._db is None:
            self.open()
        assert self._db is not None
        return self._db


def _insert(db: sqlite3.Connection, into: str, rows: list[tuple[Any, ...]]) -> None:
    """Many rows per INSERT: one SQLite step (and one hand-over of the GIL) per chunk, not per row."""
    width = len(rows[0])
    per = max(1, 900 // width)  # old SQLite builds allow 999 parameters per statement
    for i in range(0, len(rows), per):
        chunk = rows[i:i + per]
        marks = "(" + ", ".join("?" * width) + ")"
        db.execute(f"INSERT INTO {into} VALUES " + ", ".join([marks] * len(chunk)), [v for row in chunk for v in row])


def _rollback(db: sqlite3.Connection) -> None:
    """Roll back if a transaction is open; a failing rollback is not raised over the first error."""
    if db.in_transaction:
        try:
            db.execute("ROLLBACK")
        except sqlite3.Error:
            pass
