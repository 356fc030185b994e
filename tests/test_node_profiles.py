"""A broken firmware profile disables only the devices that use it, with a clear error; a bad
config stops the daemon with an error that names the file and the key."""

from __future__ import annotations

import asyncio
import subprocess

from conftest import PYTHON, spawn_env
from hallkit import HALL, Observer, node_config

from hallctl.bus.topics import Topics
from hallctl.config import parse_node_config
from hallctl.node.daemon import Node
from hallctl.profiles import load_profiles
from hallctl_drivers.onbon_bx.emulator import BxEmulator

T = Topics(HALL)


async def test_broken_profile_disables_only_its_devices(mosquitto, tmp_path):
    extra = tmp_path / "profiles"
    extra.mkdir()
    # a vendor file someone edited by hand: no source line
    (extra / "acme-bar.toml").write_text(
        'schema = 1\nvendor = "Acme"\nname = "Bar"\ninherits = "onbon-bx-6k"\n')
    profiles = load_profiles([extra])
    assert "acme-bar" in profiles.errors
    with BxEmulator() as good, BxEmulator() as other:
        doc = node_config(mosquitto.host, mosquitto.port, tmp_path, "1", good.port, extra_devices=[
            {"id": "bar", "profile": "acme-bar", "options": {"port": other.port, "address": 1}}])
        node = Node(parse_node_config(doc), profiles=profiles)
        run = asyncio.create_task(node.run())
        try:
            nid = node.id
            topics = [T.node_birth(nid), T.dev_state(nid, "bar"), T.dev_state(nid, "display"),
                      T.dev_res(nid, "bar", "show"), T.dev_res(nid, "display", "show")]
            async with Observer(mosquitto.host, mosquitto.port, topics) as obs:
                birth = (await obs.wait_for(T.node_birth(nid)))[0]
                bar = next(d for d in birth["devices"] if d["id"] == "bar")
                assert "source" in bar["disabled"] and bar["actions"] == [] and "model" not in bar
                state = (await obs.wait_for(T.dev_state(nid, "bar")))[0]
                assert state["available"] is False and state["health"] == "fault"
                assert "acme-bar" in state["reason"] and "source" in state["reason"]
                await obs.wait_for(T.dev_state(nid, "display"), lambda d: d["available"])

                await obs.publish(T.dev_cmd(nid, "bar", "show"), {"v": 1, "request_id": "b1", "data": {"lines": ["x"]}})
                err = (await obs.wait_for(T.dev_res(nid, "bar", "show")))[0]
                assert err["error"]["code"] == "unknown_device" and "source" in err["error"]["message"]
                await obs.publish(T.dev_cmd(nid, "display", "show"), {"v": 1, "request_id": "d1", "data": {"lines": ["正常"]}})
                ok = (await obs.wait_for(T.dev_res(nid, "display", "show")))[0]
                assert ok["status"] == "ok" and good.screens[1].lines == ["正常"]
                assert other.screens[1].frames == [], "nothing was sent to the disabled device"
        finally:
            await node.stop()
            run.cancel()
            await asyncio.gather(run, return_exceptions=True)


def test_bad_config_exits_78_naming_file_key_and_problem(tmp_path):
    cfg = tmp_path / "node.toml"
    cfg.write_text('[node]\nid = "Window 3"\nhall = "h"\n[mqtt]\nport = "1883"\n')
    proc = subprocess.run([PYTHON, "-m", "hallctl", "node", "-c", str(cfg)], env=spawn_env(),
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 78
    assert str(cfg) in proc.stderr and "node.id" in proc.stderr


def test_help_lists_the_subcommands():
    proc = subprocess.run([PYTHON, "-m", "hallctl", "--help"], env=spawn_env(), capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0
    for word in ("demo", "central", "node"):
        assert word in proc.stdout


def test_an_idle_device_is_probed_as_often_as_its_driver_needs_unless_the_config_says() -> None:
    """A kiosk printer's paper out must reach the screen and the technicians within a second; a
    window display may be probed every 15 s. A node config that sets the interval wins."""
    from hallctl.node.plan import plan_node

    def interval(profile: str, **device) -> float:
        cfg = parse_node_config({"node": {"id": "n1", "hall": HALL}, "device": [
            {"id": "d", "profile": profile, "options": {"port": "/dev/ttyUSB0"}, **device}]})
        (plan,) = plan_node(cfg, load_profiles())
        return plan.probe_interval_s

    assert interval("snbc-bt-t080") == 0.5
    assert interval("onbon-bx-6k") == 15.0
    assert interval("snbc-bt-t080", probe_interval_s=2) == 2.0
