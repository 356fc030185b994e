"""Config reload without losing the queue (SIGHUP, ``systemctl reload``), and the KPIs published
retained on ``central/kpi``. Real Mosquitto; the CLI test runs ``hallctl central`` as systemd does."""

from __future__ import annotations

import asyncio
import dataclasses
import re
import signal
import subprocess

import pytest
from conftest import PYTHON, ROOT, spawn_env
from hallkit import HALL, Observer, central, hall_spec

from hallctl.bus.topics import Topics
from hallctl.central.model import MatterSpec, QueueSpec, WindowSpec
from hallctl.errors import ConfigError


def _request(svc, action, **data):
    import json

    rid = f"r{svc.handled}-{action}-{len(json.dumps(data))}-{id(data)}"
    res = svc.respond("tester", action, json.dumps({"v": 1, "request_id": rid, "data": data}).encode())
    assert res["status"] == "ok", res
    return res["data"]


async def test_reload_keeps_every_ticket_and_applies_the_new_hall(mosquitto, tmp_path):
    t = Topics(HALL)
    async with central(mosquitto.host, mosquitto.port, tmp_path) as svc, \
            Observer(mosquitto.host, mosquitto.port, [f"{t.base}/window/+/state"]) as obs:
        _request(svc, "window.open", window="1")
        for _ in range(3):
            _request(svc, "ticket.issue", queue="a")
        _request(svc, "ticket.issue", queue="b", priority="green")
        called = _request(svc, "window.call_next", window="1")["ticket"]
        before = {tid: svc.core.ticket(tid) for tid in svc.core.tickets}
        waiting_before = svc.core.state.waiting

        old = svc.hall
        new = dataclasses.replace(
            old,
            queues={**old.queues, "c": QueueSpec("c", "C", "税务")},
            windows={**old.windows, "1": WindowSpec("1", "1号综合窗口", ("*",)),
                     "4": WindowSpec("4", "4号窗口", ("c",))},
            matters={"invoice": MatterSpec("invoice", "发票领用", "c")},
            policy="fifo",
        )
        await svc.reload(new)

        assert svc.hall is new and svc.core.hall is new
        assert {tid: svc.core.ticket(tid) for tid in svc.core.tickets} == before
        assert svc.core.state.waiting == waiting_before
        assert svc.core.state.windows["1"].ticket == called["id"]
        # numbering goes on; the new matter and window work at once
        assert _request(svc, "ticket.issue", queue="a")["ticket"]["number"] == "A004"
        assert _request(svc, "ticket.issue", matter="invoice")["ticket"]["number"] == "C001"
        _request(svc, "window.open", window="4")
        assert _request(svc, "window.call_next", window="4")["ticket"]["number"] == "C001"
        # retained state follows: the renamed window, the new one (respond() is the request
        # path without MQTT; the MQTT path publishes after each request, as here)
        await svc._publish_states()
        await obs.wait_for(t.window_state("1"), lambda d: d["name"] == "1号综合窗口")
        await obs.wait_for(t.window_state("4"), lambda d: d["state"] == "open")


async def test_a_reload_that_would_strand_a_ticket_is_refused_and_changes_nothing(mosquitto, tmp_path):
    async with central(mosquitto.host, mosquitto.port, tmp_path) as svc:
        _request(svc, "window.open", window="2")
        _request(svc, "ticket.issue", queue="a")
        _request(svc, "ticket.issue", queue="b")
        assert _request(svc, "window.call_next", window="2")["ticket"]["number"] == "A001"
        old, state = svc.hall, svc.core.state
        no_b = dataclasses.replace(old, queues={"a": old.queues["a"]})
        with pytest.raises(ConfigError, match="queue 'b' is removed but B001 waits"):
            await svc.reload(no_b)
        no_2 = dataclasses.replace(old, windows={k: v for k, v in old.windows.items() if k != "2"})
        with pytest.raises(ConfigError, match="window '2'"):
            await svc.reload(no_2)
        other = dataclasses.replace(old, hall_id="another-hall")
        with pytest.raises(ConfigError, match="hall id cannot change"):
            await svc.reload(other)
        with pytest.raises(ConfigError, match="time zone cannot change"):
            await svc.reload(dataclasses.replace(old, tz="Asia/Urumqi"))
        # B001 waits; no window may call queue b any more once every window lists only "a"
        only_a = {k: dataclasses.replace(v, queues=("a",)) for k, v in old.windows.items()}
        with pytest.raises(ConfigError, match="no window could call queue 'b'"):
            await svc.reload(dataclasses.replace(old, windows=only_a))
        assert svc.hall is old and svc.core.state is state
        assert _request(svc, "ticket.issue", queue="b")["ticket"]["number"] == "B002"


async def test_kpis_are_published_retained(mosquitto, tmp_path):
    t = Topics(HALL)
    async with central(mosquitto.host, mosquitto.port, tmp_path, housekeeping_every_s=0.2) as svc:
        _request(svc, "window.open", window="1")
        _request(svc, "ticket.issue", queue="a")
        _request(svc, "window.call_next", window="1")
        _request(svc, "window.complete", window="1")
        # a new subscriber gets the retained document
        async with Observer(mosquitto.host, mosquitto.port, [t.central_kpi]) as obs:
            doc = (await obs.wait_for(t.central_kpi, lambda d: d["tickets"].get("completed") == 1, timeout=20))[-1]
        assert doc["v"] == 1 and doc["day"] == svc.core.day
        assert doc["by_window"]["1"]["completed"] == 1
        summary = svc.kpis.summary(None)
        assert summary["by_clerk"], "kpi.summary itself still counts per clerk"
        # staff performance only to whoever asks kpi.summary, not retained for every reader
        assert "by_clerk" not in doc
        assert doc == {"v": 1, **{k: v for k, v in summary.items() if k != "by_clerk"}}


def _central_file(tmp_path, port: int, extra_window: str = "") -> str:
    text = (ROOT / "config" / "central.example.toml").read_text()
    text = re.sub(r"(?m)^port = 1883", f"port = {port}", text)
    text = re.sub(r'(?m)^path = ".*"', f'path = "{tmp_path / "central.db"}"', text)
    text = re.sub(r"(?m)^(hours|weekdays|closed_dates|open_dates) = .*$", "", text)
    path = tmp_path / "central.toml"
    path.write_text(text + extra_window)
    return str(path)


async def test_sighup_reloads_the_file_and_a_broken_file_changes_nothing(mosquitto, tmp_path):
    t = Topics("demo-hall")
    cfg = _central_file(tmp_path, mosquitto.port)
    async with Observer(mosquitto.host, mosquitto.port, [t.central_status, t.central_res("kiosk-1"),
                                                           f"{t.base}/window/+/state"]) as obs:
        proc = subprocess.Popen([PYTHON, "-m", "hallctl", "-v", "central", "-c", cfg], env=spawn_env(),
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            await obs.wait_for(t.central_status, lambda d: d["state"] == "online", timeout=20)

            async def issue(rid: str) -> dict:
                await obs.publish(t.central_req("kiosk-1", "ticket.issue"),
                                  {"v": 1, "request_id": rid, "data": {"matter": "invoice"}})
                return (await obs.wait_for(t.central_res("kiosk-1"), lambda d: d["request_id"] == rid))[0]

            assert (await issue("x1"))["data"]["ticket"]["number"] == "C001"
            # a window added in the file appears after SIGHUP, and the waiting ticket is kept
            _central_file(tmp_path, mosquitto.port,
                          '\n[[window]]\nid = "7"\nname = "7号窗口"\nqueues = ["tax"]\n')
            proc.send_signal(signal.SIGHUP)
            await obs.wait_for(t.window_state("7"), lambda d: d["name"] == "7号窗口", timeout=20)
            await obs.wait_for(t.central_status, lambda d: d.get("reload", {}).get("ok") is True, timeout=20)
            assert (await issue("x2"))["data"]["ticket"]["number"] == "C002"
            # a broken file: logged, the hall runs on as it was
            (tmp_path / "central.toml").write_text("[central\n")
            proc.send_signal(signal.SIGHUP)
            refused = (await obs.wait_for(t.central_status, lambda d: d.get("reload", {}).get("ok") is False,
                                          timeout=20))[-1]
            assert refused["state"] == "online" and "central.toml" in refused["reload"]["message"]
            res = await issue("x3")
            assert res["data"]["ticket"]["number"] == "C003" and res["data"]["people_ahead"] == 2
        finally:
            proc.send_signal(signal.SIGTERM)
            _, err = proc.communicate(timeout=20)
        log = err.decode()
        assert proc.returncode == 0, log
        assert "config reload failed; running on the previous config" in log
        assert "config reloaded" in log


async def test_a_removed_window_leaves_no_retained_state_and_views_are_not_stored(mosquitto, tmp_path):
    t = Topics(HALL)
    async with central(mosquitto.host, mosquitto.port, tmp_path) as svc:
        async with Observer(mosquitto.host, mosquitto.port, [t.window_state("3")]) as obs:
            await obs.wait_for(t.window_state("3"), lambda d: d["state"] == "closed")
        old = svc.hall
        await svc.reload(dataclasses.replace(old, windows={k: v for k, v in old.windows.items() if k != "3"}))
        async with Observer(mosquitto.host, mosquitto.port, [f"{t.base}/window/+/state"]) as obs:
            await obs.wait_for(t.window_state("2"))  # retained states arrive together
            await asyncio.sleep(0.3)
            assert not obs.docs(t.window_state("3")), "the removed window's state is cleared"
        # read-only actions are answered, never stored (a kiosk polling ticket.status is no write)
        _request(svc, "ticket.issue", queue="a")
        import json

        res = svc.respond("kiosk-1", "ticket.status",
                          json.dumps({"v": 1, "request_id": "q1", "data": {"ticket": "A001"}}).encode())
        assert res["status"] == "ok" and res["data"]["people_ahead"] == 0
        assert svc.store.response_for("kiosk-1:q1") is None
