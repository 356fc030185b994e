"""Central's writer: every write goes through one task, a batch at a time.

It takes every write waiting (up to ``MAX_BATCH``) and, in a worker thread, runs the pure
:class:`~hallctl.central.core.Central` on each and commits the whole batch (events, responses, day
checkpoint) in one SQLite transaction (group commit, still ``synchronous=FULL``); only then are the
responses published, each in a task of its own. A request already answered is answered from the
store, with the bytes it was first sent as; a copy of one still queued or committing gets the same
answer when it is ready: nothing runs twice and a ticket never prints twice. A request_id is the
same request only with the same action: reused with another one it is answered ``bad_request``
and not executed (it never gets the other action's answer). While the worker thread applies and
commits a batch it holds the service's state lock, so a read waits for that batch only.

If a commit fails (a full disk, an I/O error) the core is rebuilt from the store, and every request
of the batch is answered ``internal`` (not stored: a retry may succeed).
"""

from __future__ import annotations

import asyncio
import collections
import json
import logging
import threading
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, TypeVar

from hallctl.bus import messages
from hallctl.central.core import Central
from hallctl.central.model import Event
from hallctl.central.store import Store, StoredAnswer
from hallctl.errors import BadRequest, Expired, HallctlError

T = TypeVar("T")

log = logging.getLogger("hallctl.central")

#: most writes applied and committed together: bounds how long a read waits for the batch in
#: flight. During a burst of 1,000 (bench/central_load.py) a read's p99 was 80-130 ms with 128,
#: 40-60 with 32, 20-30 with 16; still 1,300-1,900 tickets/s
MAX_BATCH = 16


@dataclass(eq=False)
class Write:
    """A request for the writer, or (``action`` empty) housekeeping's tick."""

    client: str
    action: str
    request: messages.Request | None
    key: str | None
    response: dict[str, Any] | None = None
    #: the response as sent and stored (encoded once, in the writer's thread); for an answer
    #: from the store, the stored text, re-sent unchanged (``response`` is then None)
    payload: bytes | None = None
    #: the response goes to the store with the batch (internal errors do not: a retry may succeed)
    store: bool = False
    #: copies that arrived while this one was queued or committing; each gets the answer
    copies: int = 1
    done: asyncio.Future[None] | None = None

    def answer(self) -> dict[str, Any] | None:
        """The response as a document (decoded from the store when it came from there)."""
        if self.response is None and self.payload is not None:
            return json.loads(self.payload)
        return self.response

    def answered(self, response: dict[str, Any], *, store: bool) -> None:
        """Set the response; one to be stored is encoded now, once: the store keeps the bytes
        that are sent."""
        self.response, self.store = response, store
        self.payload = messages.encode(response) if store else None


@dataclass(eq=False)
class Job:
    """Work that must see no batch in flight (a reload)."""

    run: Callable[[], Awaitable[Any]]
    done: asyncio.Future[Any]


@dataclass
class Batch:
    writes: list[Write]
    events: list[Event] = field(default_factory=list)
    checkpoints: list[tuple[int, str, dict[str, Any]]] = field(default_factory=list)
    ok: bool = True

    def responses(self) -> list[tuple[str, bytes | None, str]]:
        return [(w.key, w.payload, w.action) for w in self.writes if w.store and w.key is not None]

    def failed(self) -> None:
        """Nothing of it was stored: what was to be stored is answered ``internal`` instead."""
        self.ok = False
        for w in self.writes:
            if w.store:
                rid = w.request.request_id if w.request else None
                w.answered(messages.response_error(rid, HallctlError("internal error: could not store; try again")),
                           store=False)


class Writer:
    """The queue of writes and jobs, and the task (:meth:`run`) that applies and commits them.

    ``core`` gives the core the batch is applied to and ``rebuild`` replaces it (and what is folded
    from the events) with what the store holds, in the worker thread, under ``state_lock``, after a
    failed commit. On the loop, ``stored`` gets the events of each committed batch before anyone
    waiting hears of it; ``send`` answers a request; ``changed`` runs once a batch that produced
    events is settled."""

    def __init__(
        self,
        store: Store,
        state_lock: threading.Lock,
        *,
        core: Callable[[], Central],
        rebuild: Callable[[], None],
        stored: Callable[[list[Event]], None],
        send: Callable[[str, dict[str, Any] | bytes | None], None],
        changed: Callable[[], None],
    ) -> None:
        self._store = store
        self._state_lock = state_lock
        self._core = core
        self._rebuild = rebuild
        self._stored = stored
        self._send = send
        self._changed = changed
        #: writes and jobs for the writer task, in arrival order
        self._queue: collections.deque[Write | Job] = collections.deque()
        self._work = asyncio.Event()
        self.running = False
        #: client:request_id -> the write queued or committing under that key
        self.pending: dict[str, Write] = {}
        #: the writer's thread has the core: a batch is being applied and committed
        self.uncommitted = False
        #: what this loop computes from committed state (retained state, KPIs, advice) meanwhile:
        #: run right after that batch, before the next is applied
        self._after_commit: list[Callable[[], None]] = []
        #: writes whose response was stored
        self.handled = 0

    def submit(self, client: str, action: str, request: messages.Request) -> None:
        """Queue a request for the next batches, unless one under its key is already queued or
        committing: then it is a copy, answered when that one is (or, for another action, at once
        ``bad_request``)."""
        key = f"{client}:{request.request_id}"
        pending = self.pending.get(key)
        if pending is not None:
            if pending.action != action:  # the request_id of another request
                rid = request.request_id
                self._send(client, messages.response_error(rid, _reused(rid, pending.action)))
                return
            pending.copies += 1  # a copy (QoS 1 redelivery, a retry) of one not answered yet
            return
        self.pending[key] = write = Write(client, action, request, key)
        self._queue.append(write)
        self._work.set()

    async def run(self) -> None:
        self.running = True
        try:
            while True:
                if not self._queue:
                    self._work.clear()
                    await self._work.wait()
                    continue
                head = self._queue[0]
                if isinstance(head, Job):
                    self._queue.popleft()
                    try:
                        head.done.set_result(await head.run())
                    except Exception as exc:  # noqa: BLE001 - the job's caller gets it
                        head.done.set_exception(exc)
                    continue
                writes: list[Write] = []
                while self._queue and len(writes) < MAX_BATCH and isinstance(self._queue[0], Write):
                    writes.append(self._queue.popleft())  # type: ignore[arg-type]
                await self._write_batch(writes)
        finally:
            self.running = False
            for item in self._queue:  # stopping: nobody will run them
                if item.done is not None and not item.done.done():
                    item.done.set_exception(RuntimeError("central is stopping"))

    async def _write_batch(self, writes: list[Write]) -> None:
        # the core is the writer thread's until the batch is committed: reads wait for it
        self.uncommitted = True
        batch = await asyncio.to_thread(self._run_batch, writes)
        self._settle(batch, send=True)

    def write_now(self, writes: list[Write]) -> None:
        """:meth:`_write_batch`, blocking, answering nobody (the caller reads the responses)."""
        self._settle(self._run_batch(writes), send=False)

    def _run_batch(self, writes: list[Write]) -> Batch:
        """Look the requests up in the store, apply them to the core and commit them (blocking;
        the writer runs it in a worker thread, where nothing else touches the core). A failed
        commit rebuilds the core from the store; a failing rebuild raises (central exits)."""
        try:
            stored = self._store.answers_for([w.key for w in writes if w.key is not None])
        except Exception:  # noqa: BLE001 - nothing was applied yet: answer, keep serving
            log.exception("central could not read its store")
            batch = Batch(writes)
            for w in writes:
                w.store = True
            batch.failed()
            return batch
        with self._state_lock:  # reads wait for this batch, not for the queue behind it
            batch = self._apply(writes, stored)
            if batch.events or batch.responses():
                try:
                    self._store.commit_batch(batch.events, batch.responses(), batch.checkpoints)
                except Exception:  # noqa: BLE001 - disk full, I/O error: the hall must go on
                    log.exception("central could not store %d request(s); state reloaded from the store", len(writes))
                    self._rebuild()
                    batch.failed()
        return batch

    def _apply(self, writes: list[Write], stored: dict[str, StoredAnswer]) -> Batch:
        """Run each write on the core, in memory. Nothing is published and nothing is stored yet."""
        core = self._core()
        batch = Batch(writes)
        for w in writes:
            if w.request is None:  # housekeeping's tick
                outcome = core.tick()
            elif w.key in stored:
                answer = stored[w.key]
                # the same request again: its answer as stored, byte for byte. A stored answer's
                # action is unknown only from before schema 2: replayed as it always was
                if answer.action is None or answer.action == w.action:
                    w.payload = answer.payload
                else:  # its request_id reused with another action: not that action's answer
                    rid = w.request.request_id  # type: ignore[union-attr]
                    w.answered(messages.response_error(rid, _reused(rid, answer.action)), store=False)
                continue
            else:
                request = w.request
                try:
                    if request.expired():
                        raise Expired(f"request {request.request_id} expired at "
                                      f"{request.expires_at.isoformat()}; not executed")  # type: ignore[union-attr]
                    outcome = core.handle(w.action, request.data)
                except HallctlError as exc:
                    w.answered(messages.response_error(request.request_id, exc), store=True)
                    continue
                except Exception:  # noqa: BLE001 - a bug must not stop the hall
                    log.exception("central failed on %s", w.action)
                    # not stored: the client's retry may succeed once the cause is gone
                    w.response = messages.response_error(request.request_id, HallctlError("internal error; see central's log"))
                    continue
                w.answered(messages.response_ok(request.request_id, outcome.data), store=True)
            batch.events.extend(outcome.events)
            checkpoint = core.checkpoint(outcome.events) if outcome.events else None
            if checkpoint is not None:
                batch.checkpoints.append(checkpoint)
        return batch

    def _settle(self, batch: Batch, *, send: bool) -> None:
        """After the commit (or its failure): hand what was stored on (the KPIs, the outbox),
        answer what waited for the commit, then the batch's requests and their copies, and wake
        the publisher."""
        if batch.ok:
            self._stored(batch.events)
            self.handled += sum(1 for w in batch.writes if w.store)
        self.uncommitted = False
        waiting, self._after_commit = self._after_commit, []
        for callback in waiting:
            callback()
        for w in batch.writes:
            if w.done is not None and not w.done.done():
                if batch.ok:
                    w.done.set_result(None)
                else:
                    w.done.set_exception(HallctlError("could not store; see central's log"))
            if w.key is not None and self.pending.get(w.key) is w:
                del self.pending[w.key]
            if send and w.request is not None:
                answer = w.payload if w.payload is not None else w.response
                for _ in range(w.copies):
                    self._send(w.client, answer)
        if batch.events:
            self._changed()

    async def committed(self, compute: Callable[[], T]) -> T:
        """``compute()`` on committed state, under the state lock, on this loop: now, or (while
        the writer's thread has a batch) right after that batch, before the next is applied.
        Waiting for the lock here would stop the loop for the whole batch."""
        if not self.uncommitted:
            with self._state_lock:
                return compute()
        fut: asyncio.Future[T] = asyncio.get_running_loop().create_future()

        def run() -> None:
            try:
                with self._state_lock:
                    fut.set_result(compute())
            except Exception as exc:  # noqa: BLE001 - the awaiting caller gets it
                fut.set_exception(exc)

        self._after_commit.append(run)
        return await fut

    async def tick(self) -> None:
        """Housekeeping's tick through the running writer; raises if its commit failed."""
        done = asyncio.get_running_loop().create_future()
        self._queue.append(Write("", "", None, None, done=done))
        self._work.set()
        await done

    async def exclusive(self, run: Callable[[], Awaitable[T]]) -> T:
        """``await run()`` between two batches: no batch is applied while it runs."""
        if not self.running:
            return await run()
        done: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._queue.append(Job(run, done))
        self._work.set()
        return await done


def _reused(request_id: str, action: str) -> BadRequest:
    return BadRequest(f"request_id {request_id} was already used for {action}", field="request_id")
