"""Every message on every Mosquitto the test suite starts, recorded for the contract's traffic test
(tests/test_contract_traffic.py, issue 8: every payload seen during the suite fits its JSON Schema).

:func:`install` wraps :class:`~hallctl.sim.mosquitto.MosquittoProcess` so that each start (a restart
too) connects a recorder before ``start()`` returns: a paho-mqtt client in a thread of its own,
anonymous and clean-session, subscribed to ``#``, appending to :data:`TRAFFIC`. A broker whose
config refuses anonymous clients simply records nothing. The recorder is a plain subscriber: it
publishes nothing and never takes a session of the suite's clients.
"""

from __future__ import annotations

import itertools
import threading
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as paho

from hallctl.sim.mosquitto import MosquittoProcess

#: how long a start waits for the recorder's SUBACK (or the broker's refusal)
SUBSCRIBE_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class Recorded:
    """One message as the recorder got it. ``broker`` tells the suite's brokers apart (request and
    answer are matched on one broker); ``test`` is the test that was running when it arrived."""

    broker: int
    topic: str
    payload: bytes
    retain: bool
    test: str


#: everything recorded this session, in arrival order per broker
TRAFFIC: list[Recorded] = []
#: which test is running (set by conftest's runtest hook; read by the recorders' threads)
CURRENT = {"test": "(no test)"}
#: brokers whose ACL refused the anonymous recorder
REFUSED: list[int] = []

_broker_numbers = itertools.count(1)
_client_numbers = itertools.count(1)
_lock = threading.Lock()


def number_of(broker: MosquittoProcess) -> int | None:
    """The number its messages are recorded under (None: never started)."""
    return broker.__dict__.get("_broker_number")


class Recorder:
    """One broker's recorder, for one run of the broker (a restart gets a new one)."""

    def __init__(self, broker: int, host: str, port: int) -> None:
        self.broker = broker
        self._done = threading.Event()
        self.subscribed = False
        self._client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=f"traffic-recorder-{broker}-{next(_client_numbers)}",
                                   clean_session=True, reconnect_on_failure=False)
        self._client.on_connect = self._on_connect
        self._client.on_subscribe = self._on_subscribe
        self._client.on_message = self._on_message
        self._host, self._port = host, port

    def start(self) -> None:
        try:
            self._client.connect(self._host, self._port, keepalive=30)
        except OSError:
            return
        self._client.loop_start()
        self._done.wait(SUBSCRIBE_TIMEOUT_S)
        if not self.subscribed:
            REFUSED.append(self.broker)
            self.close()

    def close(self) -> None:
        try:
            self._client.disconnect()
        finally:
            self._client.loop_stop()

    def _on_connect(self, client: paho.Client, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        if reason.is_failure:  # an ACL or password file refusing anonymous clients
            self._done.set()
            return
        client.subscribe("#", qos=1)

    def _on_subscribe(self, client: paho.Client, userdata: Any, mid: int, reasons: Any, properties: Any) -> None:
        self.subscribed = not any(r.is_failure for r in reasons)
        self._done.set()

    def _on_message(self, client: paho.Client, userdata: Any, msg: paho.MQTTMessage) -> None:
        TRAFFIC.append(Recorded(self.broker, msg.topic, bytes(msg.payload), bool(msg.retain), CURRENT["test"]))


def install() -> None:
    """Wrap MosquittoProcess's start, stop, kill and close (idempotent)."""
    if getattr(MosquittoProcess, "_recorded", False):
        return
    start, stop, kill, close = (MosquittoProcess.start, MosquittoProcess.stop, MosquittoProcess.kill,
                                MosquittoProcess.close)

    def _drop(proc: MosquittoProcess) -> None:
        rec = proc.__dict__.pop("_recorder", None)
        if rec is not None:
            rec.close()

    def recorded_start(self: MosquittoProcess) -> None:
        start(self)
        if self.__dict__.get("_recorder") is None:
            with _lock:  # one number per broker, kept across its restarts
                if "_broker_number" not in self.__dict__:
                    self.__dict__["_broker_number"] = next(_broker_numbers)
            rec = Recorder(self.__dict__["_broker_number"], self.host, self.port)
            rec.start()
            self.__dict__["_recorder"] = rec if rec.subscribed else None

    def recorded_stop(self: MosquittoProcess) -> None:
        try:
            stop(self)
        finally:
            _drop(self)

    def recorded_kill(self: MosquittoProcess) -> None:
        try:
            kill(self)
        finally:
            _drop(self)

    def recorded_close(self: MosquittoProcess) -> None:
        try:
            close(self)
        finally:
            _drop(self)

    MosquittoProcess.start = recorded_start  # type: ignore[method-assign]
    MosquittoProcess.stop = recorded_stop  # type: ignore[method-assign]
    MosquittoProcess.kill = recorded_kill  # type: ignore[method-assign]
    MosquittoProcess.close = recorded_close  # type: ignore[method-assign]
    MosquittoProcess._recorded = True  # type: ignore[attr-defined]
