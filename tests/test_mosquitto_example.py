"""config/mosquitto.example.conf is a config Mosquitto runs, with the settings hallctl relies on:
the same ones every test and benchmark broker gets (hallctl.sim.mosquitto.HALLCTL_SETTINGS)."""

from __future__ import annotations

import asyncio
import getpass
import re
import shutil
import socket
import subprocess

import aiomqtt
import pytest
from conftest import ROOT

from hallctl.sim.mosquitto import HALLCTL_SETTINGS, MosquittoProcess, find_mosquitto, free_port

EXAMPLE = ROOT / "config" / "mosquitto.example.conf"


def active_lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def test_the_test_brokers_run_with_the_example_settings():
    assert set(HALLCTL_SETTINGS) <= set(active_lines(EXAMPLE.read_text()))
    for stock in (False, True):
        with MosquittoProcess(stock=stock) as broker:
            lines = set(active_lines((broker.workdir / "mosquitto.conf").read_text()))
        assert (set(HALLCTL_SETTINGS) <= lines) is not stock, lines


async def test_mosquitto_runs_the_example_config_and_lets_only_known_users_in(tmp_path):
    passwd = tmp_path / "hallctl.passwd"
    passwd.touch()
    subprocess.run(["mosquitto_passwd", "-b", str(passwd), "central", "pw-central"], check=True, capture_output=True)
    shutil.copy(ROOT / "config" / "mosquitto-acl.example", tmp_path / "hallctl.acl")
    port = free_port()
    text = EXAMPLE.read_text()
    text = re.sub(r"(?m)^listener 1883$", f"listener {port} 127.0.0.1", text)
    text = re.sub(r"(?m)^persistence_location .*$", f"persistence_location {tmp_path}/", text)
    text = re.sub(r"(?m)^log_dest .*$", "log_dest stderr", text)
    text = text.replace("/etc/mosquitto/", f"{tmp_path}/")
    conf = tmp_path / "mosquitto.conf"
    conf.write_text(text + f"\nuser {getpass.getuser()}\n")  # root would switch to user mosquitto
    proc = subprocess.Popen([find_mosquitto(), "-c", str(conf)], stderr=subprocess.PIPE, text=True)
    try:
        async with asyncio.timeout(10):
            while True:  # until it listens (or exits: then the config is wrong)
                assert proc.poll() is None, proc.communicate()[1]
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    await asyncio.sleep(0.05)
        async with aiomqtt.Client("127.0.0.1", port, username="central", password="pw-central",
                                  identifier="example-test") as client:
            await client.subscribe("hallctl/v1/h/central/status", qos=1)
            await client.publish("hallctl/v1/h/central/status", b'{"v":1}', qos=1, retain=True)
            async with asyncio.timeout(10):
                message = await anext(aiter(client.messages))
            assert message.payload == b'{"v":1}'
        with pytest.raises(aiomqtt.MqttError):
            async with aiomqtt.Client("127.0.0.1", port, identifier="anonymous-test"):
                pass
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=10)
    assert "Error" not in err, err
