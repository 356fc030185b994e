"""config/mosquitto-acl.example on a real Mosquitto: a dashboard never sees a citizen's phone
number in a request to central, central does, a node cannot read other nodes' commands."""

from __future__ import annotations

import asyncio
import subprocess

import aiomqtt
from conftest import ROOT

from hallctl.sim.mosquitto import MosquittoProcess

USERS = ["central", "dashboard", "kiosk-1", "window-3", "window-4"]
REQ = "hallctl/v1/h/central/req/kiosk-1/ticket.issue"


async def _collect(port: int, user: str, topic: str, into: list, ready: asyncio.Event) -> None:
    async with aiomqtt.Client("127.0.0.1", port, username=user, password=f"pw-{user}", identifier=f"t-{user}") as c:
        await c.subscribe(topic, qos=1)
        ready.set()
        async for m in c.messages:
            into.append((str(m.topic), bytes(m.payload)))


async def test_acl_example_keeps_requests_private(tmp_path):
    pw = tmp_path / "passwd"
    pw.touch()
    for user in USERS:
        subprocess.run(["mosquitto_passwd", "-b", str(pw), user, f"pw-{user}"], check=True, capture_output=True)
    extra = ("allow_anonymous false", f"password_file {pw}", f"acl_file {ROOT / 'config' / 'mosquitto-acl.example'}")
    with MosquittoProcess(extra_config=extra) as broker:
        seen = {u: [] for u in ("central", "dashboard", "window-4")}
        readies = {u: asyncio.Event() for u in seen}
        tasks = [asyncio.create_task(_collect(broker.port, u, "hallctl/v1/#", seen[u], readies[u])) for u in seen]
        try:
            for e in readies.values():
                await asyncio.wait_for(e.wait(), 10)
            async with aiomqtt.Client("127.0.0.1", broker.port, username="kiosk-1", password="pw-kiosk-1") as kiosk:
                await kiosk.publish(REQ, b'{"phone":"13800138000"}', qos=1)
            async with aiomqtt.Client("127.0.0.1", broker.port, username="central", password="pw-central") as central:
                await central.publish("hallctl/v1/h/node/window-3/dev/display/cmd/show", b"{}", qos=1)
                for doc in ("kpi", "staffing", "health"):
                    await central.publish(f"hallctl/v1/h/central/{doc}", b'{"v":1}', qos=1)
                await central.publish("hallctl/v1/h/board/state", b'{"marker":1}', qos=1)
            async with asyncio.timeout(10):
                while not all(any(t.endswith("board/state") for t, _ in seen[u]) for u in seen):
                    await asyncio.sleep(0.05)
            assert any(t == REQ for t, _ in seen["central"]), "central reads requests"
            assert not any(b"13800138000" in p for _, p in seen["dashboard"]), "a dashboard never sees the phone"
            assert not any(b"13800138000" in p for _, p in seen["window-4"])
            assert not any("node/window-3" in t for t, _ in seen["window-4"]), "a node reads only its own subtree"
            # the dashboard (the hall manager's screens) reads the KPIs, the staffing advice and the
            # health (the ACL gave nobody these before); a window node has no use for them
            assert {t.rsplit("/", 1)[1] for t, _ in seen["dashboard"] if "/central/" in t} >= {"kpi", "staffing", "health"}
            assert not any(t.endswith(("central/kpi", "central/staffing")) for t, _ in seen["window-4"])
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
