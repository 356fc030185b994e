"""Mosquitto stopped and started mid-traffic: daemons reconnect and re-subscribe by themselves,
and nothing that went into an outbox is lost."""

from __future__ import annotations

import asyncio
import json
import os

import aiomqtt
from hallkit import HALL, Observer, central, node_config, window_node

from hallctl.bus.topics import Topics
from hallctl.config import parse_node_config
from hallctl.node.daemon import Node
from hallctl_drivers.onbon_bx.emulator import BxEmulator

T = Topics(HALL)


class PersistentSubscriber:
    """A QoS 1 subscriber with a persistent session: what a dashboard that must not miss events does."""

    def __init__(self, host: str, port: int, topic_filter: str) -> None:
        self.host, self.port, self.filter = host, port, topic_filter
        self.ident = f"persistent-{os.urandom(3).hex()}"
        self.seen: list[dict] = []
        self.task: asyncio.Task | None = None
        self.subscribed = asyncio.Event()

    async def run(self) -> None:
        while True:
            try:
                async with aiomqtt.Client(self.host, self.port, identifier=self.ident, clean_session=False) as c:
                    await c.subscribe(self.filter, qos=1)
                    self.subscribed.set()
                    async for m in c.messages:
                        self.seen.append(json.loads(m.payload))
            except aiomqtt.MqttError:
                await asyncio.sleep(0.1)

    async def wait(self, pred, timeout: float = 20.0) -> None:
        async with asyncio.timeout(timeout):
            while not pred(self.seen):
                await asyncio.sleep(0.05)


async def test_broker_restart_mid_traffic_loses_nothing(mosquitto, tmp_path):
    with BxEmulator() as emu:
        async with central(mosquitto.host, mosquitto.port, tmp_path) as svc, \
                window_node(mosquitto.host, mosquitto.port, tmp_path, "1", emu) as node:
            events = PersistentSubscriber(mosquitto.host, mosquitto.port, T.event_filter)
            dev_events = PersistentSubscriber(mosquitto.host, mosquitto.port, f"hallctl/v1/{HALL}/node/+/dev/+/event/+")
            tasks = [asyncio.create_task(events.run()), asyncio.create_task(dev_events.run())]
            try:
                await events.subscribed.wait()
                await dev_events.subscribed.wait()
                async with Observer(mosquitto.host, mosquitto.port, [T.central_res("kiosk")]) as obs:
                    for i in range(1, 6):
                        await obs.publish(T.central_req("kiosk", "ticket.issue"),
                                          {"v": 1, "request_id": f"before-{i}", "data": {"queue": "a"}})
                    await obs.wait_for(T.central_res("kiosk"), count=5)

                await asyncio.to_thread(mosquitto.stop)
                # while the broker is down: events and device events go into the outboxes
                for i in range(20):
                    node.bus.publish_reliable(T.dev_event(node.id, "display", "test"), {"v": 1, "seq": i})
                assert len(node.outbox) >= 20
                await asyncio.sleep(0.5)
                await asyncio.to_thread(mosquitto.start)

                async with asyncio.timeout(15):
                    await svc.bus.connected.wait()
                    await node.bus.connected.wait()
                # re-subscribed: new requests are served, device commands answered
                async with Observer(mosquitto.host, mosquitto.port,
                                    [T.central_res("kiosk"), T.dev_res(node.id, "display", "probe")]) as obs:
                    for i in range(1, 4):
                        await obs.publish(T.central_req("kiosk", "ticket.issue"),
                                          {"v": 1, "request_id": f"after-{i}", "data": {"queue": "a"}})
                    after = await obs.wait_for(T.central_res("kiosk"), count=3, timeout=15)
                    assert sorted(d["data"]["ticket"]["number"] for d in after) == ["A006", "A007", "A008"]
                    await obs.publish(T.dev_cmd(node.id, "display", "probe"), {"v": 1, "request_id": "p1"})
                    probe = (await obs.wait_for(T.dev_res(node.id, "display", "probe"), timeout=15))[0]
                    assert probe["status"] == "ok" and probe["data"]["available"] is True

                await dev_events.wait(lambda seen: {d["seq"] for d in seen} >= set(range(20)))
                await events.wait(lambda seen: len({d["seq"] for d in seen if d["type"] == "ticket.issued"}) >= 8)
                issued = sorted({d["data"]["number"] for d in events.seen if d["type"] == "ticket.issued"})
                assert issued == [f"A00{i}" for i in range(1, 9)]
                assert len(node.outbox) == 0
            finally:
                for t in tasks:
                    t.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)


async def test_outbox_survives_a_node_restart_while_the_broker_is_down(mosquitto, tmp_path):
    with BxEmulator() as emu:
        seen = PersistentSubscriber(mosquitto.host, mosquitto.port, f"hallctl/v1/{HALL}/node/+/dev/+/event/+")
        task = asyncio.create_task(seen.run())
        try:
            await seen.subscribed.wait()
            cfg = parse_node_config(node_config(mosquitto.host, mosquitto.port, tmp_path, "5", emu.port))
            async with window_node(mosquitto.host, mosquitto.port, tmp_path, "5", emu) as node:
                await asyncio.to_thread(mosquitto.stop)
                for i in range(10):
                    node.bus.publish_reliable(T.dev_event(node.id, "display", "test"), {"v": 1, "seq": i})
            # the node is gone with 10 undelivered messages on disk; the broker comes back, then a new node
            await asyncio.to_thread(mosquitto.start)
            node2 = Node(cfg)
            assert len(node2.outbox) == 10
            run = asyncio.create_task(node2.run())
            try:
                await seen.wait(lambda s: {d["seq"] for d in s} >= set(range(10)))
            finally:
                await node2.stop()
                run.cancel()
                await asyncio.gather(run, return_exceptions=True)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
