"""What the node refuses at start, as a technician sees it: ``hallctl node`` exits 78 (systemd
does not restart it) with one line naming the file, the key and the problem, and never starts
a device it would then retry for ever."""

from __future__ import annotations

import subprocess

import pytest
from conftest import PYTHON, spawn_env, write_toml

NODE = """
    [node]
    id = "{node}"
    hall = "h1"

    [mqtt]
    host = "127.0.0.1"
    port = 1

    [store]
    path = "n.db"

    [[device]]
    id = "{device}"
    profile = "onbon-bx-6k"
    app = "window_display"
    [device.options]
    port = "/dev/ttyUSB0"
    window = "3"
    {extra}
    """


def run_node(tmp_path, node="window-3", device="display", extra=""):
    path = write_toml(tmp_path / "node.toml", NODE.format(node=node, device=device, extra=extra))
    proc = subprocess.run([PYTHON, "-m", "hallctl", "node", "-c", str(path)], env=spawn_env(),
                          capture_output=True, text=True, timeout=60)
    return path, proc


@pytest.mark.parametrize("extra, key, problem", [
    ("address = 70000", "device[0].options.address", "must be 1..65534, got 70000"),
    ('address = "1"', "device[0].options.address", "expected an integer, got string"),
    ("baud = 9600", "device[0].options.baud", "unknown key 'baud'"),
    ("area_id = 7", "device[0].options.area_id", "0..4"),  # the BX-6K has 5 dynamic areas
    ('templates = {called = ["请{numbr}号"]}', "device[0].options.templates", "unknown field"),
])
def test_a_bad_device_option_exits_78_naming_file_key_and_problem(tmp_path, extra, key, problem):
    path, proc = run_node(tmp_path, extra=extra)
    assert proc.returncode == 78, proc.stderr
    line = proc.stderr.strip().splitlines()[-1]
    assert f"{path}: {key}: " in line and problem in line, line


@pytest.mark.parametrize("node, device, key", [("-n1", "display", "node.id"), ("window-3", "-n1", "device[0].id")])
def test_an_id_the_topics_would_refuse_exits_78(tmp_path, node, device, key):
    path, proc = run_node(tmp_path, node=node, device=device)
    assert proc.returncode == 78, proc.stderr
    assert f"{path}: {key}: invalid id '-n1'" in proc.stderr


def test_an_unknown_profile_exits_78_with_a_suggestion(tmp_path):
    path = write_toml(tmp_path / "node.toml", NODE.format(node="n1", device="d", extra="").replace("onbon-bx-6k", "onbon-bx6k"))
    proc = subprocess.run([PYTHON, "-m", "hallctl", "node", "-c", str(path)], env=spawn_env(),
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 78
    assert f"{path}: device[0].profile: unknown firmware profile 'onbon-bx6k'; did you mean 'onbon-bx-6k'?" in proc.stderr


def test_building_a_node_touches_no_file(tmp_path):
    """Constructors do no I/O: the store and the bd_seq file appear only when the node runs."""
    from hallctl.config import load_node_config
    from hallctl.node.daemon import Node

    path = write_toml(tmp_path / "node.toml", NODE.format(node="window-3", device="display", extra=""))
    node = Node(load_node_config(path))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["node.toml"]
    assert node.bd_seq == 0
