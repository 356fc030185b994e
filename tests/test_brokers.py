"""Both brokers hallctl runs on, checked with the client hallctl uses (aiomqtt 2.5, MQTT 3.1.1).

Mosquitto is what production and every other test talk to; amqtt (hallctl.sim.broker) only runs
``hallctl demo``. Each behaviour the topic contract relies on is checked on both: where amqtt
falls short the amqtt case is a strict xfail that names the gap, so the gap stays visible and a
fix in amqtt turns it into a failure that asks for the mark to go.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import sys
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import aiomqtt
import pytest

from hallctl.sim.broker import EmbeddedBroker, EmbeddedBrokerError
from hallctl.sim.mosquitto import MosquittoError, MosquittoNotInstalled, MosquittoProcess, find_mosquitto

WAIT_S = 10.0  # generous: only there so a missing message fails the test instead of hanging it
HALL = "hallctl/v1/h1"


@dataclass
class BrokerUnderTest:
    kind: str
    host: str
    port: int
    restart: Callable[[], Awaitable[None]]  # graceful stop + start on the same port

    def client(self, identifier: str, **kwargs: object) -> aiomqtt.Client:
        return aiomqtt.Client(self.host, self.port, identifier=identifier, **kwargs)  # type: ignore[arg-type]


@pytest.fixture
async def broker(request: pytest.FixtureRequest) -> AsyncIterator[BrokerUnderTest]:
    if request.param == "mosquitto":
        mosquitto = MosquittoProcess()
        await asyncio.to_thread(mosquitto.start)
        try:
            restart = lambda: asyncio.to_thread(mosquitto.restart)  # noqa: E731
            yield BrokerUnderTest("mosquitto", mosquitto.host, mosquitto.port, restart)
        finally:
            await asyncio.to_thread(mosquitto.close)
    else:
        async with EmbeddedBroker() as embedded:
            yield BrokerUnderTest("amqtt", embedded.host, embedded.port, embedded.restart)


BOTH = pytest.mark.parametrize("broker", ["mosquitto", "amqtt"], indirect=True)


def both_but_amqtt_falls_short(reason: str) -> pytest.MarkDecorator:
    """Both brokers; the amqtt case is a strict xfail whose assertion shows the gap."""
    amqtt = pytest.param("amqtt", marks=pytest.mark.xfail(strict=True, raises=AssertionError, reason=reason))
    return pytest.mark.parametrize("broker", ["mosquitto", amqtt], indirect=True)


async def take(client: aiomqtt.Client, count: int) -> list[aiomqtt.Message]:
    """The next ``count`` messages the client receives; TimeoutError if they do not come."""
    got: list[aiomqtt.Message] = []
    async with asyncio.timeout(WAIT_S):
        async for message in client.messages:
            got.append(message)
            if len(got) == count:
                break
    return got


def seen(messages: list[aiomqtt.Message]) -> list[tuple[str, bytes, int, bool]]:
    return [(m.topic.value, bytes(m.payload), m.qos, m.retain) for m in messages]  # type: ignore[arg-type]


# -- both brokers -------------------------------------------------------------------------------


@BOTH
async def test_wildcard_subscription_gets_qos1_messages_in_order(broker: BrokerUnderTest) -> None:
    async with broker.client("board") as sub, broker.client("node-n1") as pub:
        await sub.subscribe(f"{HALL}/node/+/dev/#", qos=1)
        await pub.publish(f"{HALL}/node/n1/dev/printer/state", b'{"health":"ok"}', qos=1)
        await pub.publish(f"{HALL}/central/status", b"not matched", qos=1)
        await pub.publish(f"{HALL}/node/n2/dev/kiosk/event/button", b"1", qos=1)
        await pub.publish(f"{HALL}/node/n2/dev", b"'#' also matches the parent level", qos=1)

        got = seen(await take(sub, 3))

    assert got == [
        (f"{HALL}/node/n1/dev/printer/state", b'{"health":"ok"}', 1, False),
        (f"{HALL}/node/n2/dev/kiosk/event/button", b"1", 1, False),
        (f"{HALL}/node/n2/dev", b"'#' also matches the parent level", 1, False),
    ]


@BOTH
async def test_retained_state_reaches_late_subscriber_until_cleared(broker: BrokerUnderTest) -> None:
    topic = f"{HALL}/window/w3/state"
    async with broker.client("central") as central:
        await central.publish(topic, b'{"state":"open"}', qos=1, retain=True)

    async with broker.client("display-1") as display:
        await display.subscribe(f"{HALL}/window/+/state", qos=1)
        [state] = seen(await take(display, 1))
    assert state == (topic, b'{"state":"open"}', 1, True)

    async with broker.client("central") as central:
        await central.publish(topic, b"", qos=1, retain=True)  # empty retained payload = delete
        await central.publish(f"{HALL}/window/w9/state", b"marker", qos=1, retain=True)

    async with broker.client("display-2") as display:
        await display.subscribe(topic, qos=1)  # a retained w3 would be sent now, before the marker's
        await display.subscribe(f"{HALL}/window/w9/state", qos=1)
        [first] = seen(await take(display, 1))
    assert first == (f"{HALL}/window/w9/state", b"marker", 1, True)  # w3 is gone


@BOTH
async def test_retained_messages_reach_only_matching_subscribers(broker: BrokerUnderTest) -> None:
    # amqtt 0.12 used to send a connecting client every retained message matching anybody's
    # subscription; hallctl.sim.broker fixes that, this keeps it fixed.
    async with broker.client("central") as central:
        await central.publish(f"{HALL}/board/state", b'{"calls":[]}', qos=1, retain=True)
    async with broker.client("diag-everything") as wide:
        await wide.subscribe("#", qos=1)
        await take(wide, 1)
        async with broker.client("kiosk") as kiosk:
            await kiosk.subscribe(f"{HALL}/node/n1/dev/kiosk/cmd/#", qos=1)
            await kiosk.publish(f"{HALL}/node/n1/dev/kiosk/cmd/print", b"marker", qos=1)
            [first] = seen(await take(kiosk, 1))
    assert first == (f"{HALL}/node/n1/dev/kiosk/cmd/print", b"marker", 1, False)


WILL_CLIENT = """
import asyncio, sys, aiomqtt
host, port, topic = sys.argv[1], int(sys.argv[2]), sys.argv[3]
async def main():
    will = aiomqtt.Will(topic, b'{"state":"offline"}', qos=1, retain=True)
    async with aiomqtt.Client(host, port, identifier="node-n9", will=will) as client:
        await client.publish(topic, b'{"state":"online"}', qos=1, retain=True)
        await asyncio.sleep(3600)
asyncio.run(main())
"""


@BOTH
async def test_will_is_published_and_retained_when_client_process_is_killed(broker: BrokerUnderTest) -> None:
    status = f"{HALL}/node/n9/status"
    async with broker.client("central") as central:
        await central.subscribe(status, qos=1)
        node = await asyncio.create_subprocess_exec(
            sys.executable, "-c", WILL_CLIENT, broker.host, str(broker.port), status
        )
        try:
            [hello] = seen(await take(central, 1))
            assert hello == (status, b'{"state":"online"}', 1, False)
            node.kill()  # SIGKILL: no DISCONNECT, the socket just dies
            await node.wait()
            [will] = seen(await take(central, 1))
        finally:
            if node.returncode is None:
                node.kill()
                await node.wait()
    assert will == (status, b'{"state":"offline"}', 1, False)

    async with broker.client("display-late") as late:
        await late.subscribe(status, qos=1)
        [retained] = seen(await take(late, 1))
    assert retained == (status, b'{"state":"offline"}', 1, True)


@BOTH
async def test_no_will_after_clean_disconnect(broker: BrokerUnderTest) -> None:
    status = f"{HALL}/node/n8/status"
    async with broker.client("central") as central:
        await central.subscribe(f"{HALL}/node/n8/#", qos=1)
        async with broker.client("node-n8", will=aiomqtt.Will(status, b"offline", qos=1)):
            pass  # DISCONNECT sent: the will must be discarded
        async with broker.client("node-n8-again") as node:
            await node.publish(f"{HALL}/node/n8/birth", b"marker", qos=1)
        [first] = seen(await take(central, 1))
    assert first == (f"{HALL}/node/n8/birth", b"marker", 1, False)


@BOTH
async def test_persistent_session_gets_qos1_messages_queued_while_offline(broker: BrokerUnderTest) -> None:
    cmd = f"{HALL}/node/n1/dev/printer/cmd"
    async with broker.client("node-n1", clean_session=False) as node:
        await node.subscribe(f"{cmd}/#", qos=1)

    async with broker.client("diag") as diag:
        for i in range(5):
            await diag.publish(f"{cmd}/print", f'{{"request_id":"r{i}"}}'.encode(), qos=1)

    async with broker.client("node-n1", clean_session=False) as node:  # no new SUBSCRIBE
        got = seen(await take(node, 5))
    # RETAIN=0: they match an established subscription [MQTT-3.3.1-9]; hallctl drops retained commands.
    assert got == [(f"{cmd}/print", f'{{"request_id":"r{i}"}}'.encode(), 1, False) for i in range(5)]


@both_but_amqtt_falls_short("amqtt keeps retained messages and sessions in memory only: a restart loses them")
async def test_graceful_restart_keeps_retained_state_and_queued_messages(broker: BrokerUnderTest) -> None:
    cmd = f"{HALL}/node/n1/dev/printer/cmd"
    async with broker.client("node-n1", clean_session=False) as node:
        await node.subscribe(f"{cmd}/#", qos=1)
    async with broker.client("central") as central:
        await central.publish(f"{HALL}/board/state", b'{"calls":["A012"]}', qos=1, retain=True)
        for i in range(3):
            await central.publish(f"{cmd}/print", f"ticket {i}".encode(), qos=1)

    await broker.restart()

    async with broker.client("board") as board:
        await board.subscribe(f"{HALL}/board/#", qos=1)  # retained state comes with the SUBACK
        await board.publish(f"{HALL}/board/marker", b"marker", qos=1)
        first = seen(await take(board, 1))
    assert first == [(f"{HALL}/board/state", b'{"calls":["A012"]}', 1, True)]
    async with broker.client("node-n1", clean_session=False) as node:
        queued = seen(await take(node, 3))
    assert queued == [(f"{cmd}/print", f"ticket {i}".encode(), 1, False) for i in range(3)]


@both_but_amqtt_falls_short("amqtt delivers at the subscription's QoS, not min(publish, subscription)")
async def test_delivery_qos_is_the_lower_of_publish_and_subscription(broker: BrokerUnderTest) -> None:
    async with broker.client("sub") as sub, broker.client("pub") as pub:
        await sub.subscribe(f"{HALL}/event/#", qos=1)
        await pub.publish(f"{HALL}/event/called", b"q0", qos=0)
        [got] = seen(await take(sub, 1))
    assert got == (f"{HALL}/event/called", b"q0", 0, False)


# -- embedded broker ----------------------------------------------------------------------------


async def test_two_embedded_brokers_run_side_by_side() -> None:
    async with EmbeddedBroker() as one, EmbeddedBroker() as two:
        assert one.port != two.port
        async with aiomqtt.Client(one.host, one.port, identifier="a") as a, aiomqtt.Client(
            two.host, two.port, identifier="b"
        ) as b:
            await a.subscribe("x/#", qos=1)
            await b.subscribe("x/#", qos=1)
            await b.publish("x/only-two", b"2", qos=1)
            await a.publish("x/only-one", b"1", qos=1)
            assert seen(await take(a, 1)) == [("x/only-one", b"1", 1, False)]
            assert seen(await take(b, 1)) == [("x/only-two", b"2", 1, False)]


async def test_embedded_broker_stops_cleanly() -> None:
    tasks_before = asyncio.all_tasks()
    threads_before = {t.name for t in threading.enumerate()}
    broker = EmbeddedBroker()
    await broker.start()
    async with aiomqtt.Client(broker.host, broker.port, identifier="done-before-stop") as client:
        await client.publish("x", b"1", qos=1)
    # A peer that never sends CONNECT (a port scanner, a health check) and one still connected.
    silent_reader, silent_writer = await asyncio.open_connection(broker.host, broker.port)
    connected = aiomqtt.Client(broker.host, broker.port, identifier="connected-at-stop")
    await connected.__aenter__()

    await broker.stop()
    await broker.stop()  # idempotent
    assert {t for t in asyncio.all_tasks() if not t.done()} <= tasks_before  # no handler left behind
    new_threads = {t.name for t in threading.enumerate()} - threads_before
    assert all(name.startswith("asyncio_") for name in new_threads)  # only the loop's own executor

    async with asyncio.timeout(WAIT_S):
        assert await silent_reader.read() == b""  # the broker closed our socket
    silent_writer.close()
    with pytest.raises(aiomqtt.MqttError):  # the client sees its connection drop
        async with asyncio.timeout(WAIT_S):
            async for _message in connected.messages:
                pass
    with contextlib.suppress(aiomqtt.MqttError):
        await connected.__aexit__(None, None, None)
    with pytest.raises(ConnectionRefusedError):
        await asyncio.open_connection(broker.host, broker.port)


async def test_embedded_broker_reports_a_taken_port() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(EmbeddedBrokerError, match=f"127.0.0.1:{port}"):
            await EmbeddedBroker(port=port).start()


# -- mosquitto process --------------------------------------------------------------------------


def test_mosquitto_restart_rebinds_its_port_while_old_connections_linger() -> None:
    with MosquittoProcess() as mosquitto:
        port = mosquitto.port
        # Connections the stop closes leave this port in FIN_WAIT/TIME_WAIT on the server side;
        # mosquitto sets SO_REUSEADDR, so the new process binds it at once.
        lingering = [socket.create_connection((mosquitto.host, port)) for _ in range(3)]
        try:
            first_pid = mosquitto.pid
            mosquitto.restart()
            assert mosquitto.port == port
            assert mosquitto.pid != first_pid
            socket.create_connection((mosquitto.host, port)).close()
        finally:
            for sock in lingering:
                sock.close()


def test_mosquitto_reports_a_taken_port_with_its_log() -> None:
    find_mosquitto()  # a missing binary is a different error, tested below
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        mosquitto = MosquittoProcess(port)
        try:
            with pytest.raises(MosquittoError, match="Address already in use"):
                mosquitto.start()
            assert not mosquitto.running
        finally:
            mosquitto.close()


def test_missing_mosquitto_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("hallctl.sim.mosquitto.shutil.which", lambda *args, **kwargs: None)
    with pytest.raises(MosquittoNotInstalled, match="apt-get install mosquitto"):
        MosquittoProcess().start()
