"""``hallctl demo``: the README's first command, on the embedded broker and on Mosquitto."""

from __future__ import annotations

import re
import subprocess

import pytest
from conftest import PYTHON, spawn_env


def _demo(*args: str) -> str:
    proc = subprocess.run([PYTHON, "-m", "hallctl", "demo", "--seed", "7", "--rate", "3", "--service", "1", *args],
                          env=spawn_env(), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    return proc.stdout


@pytest.mark.parametrize("broker", ["embedded", "mosquitto"])
def test_demo_runs_a_hall_and_prints_what_the_displays_received(broker, mosquitto_session):
    extra = () if broker == "embedded" else ("--broker", f"{mosquitto_session.host}:{mosquitto_session.port}")
    out = _demo("--duration", "6", *extra)
    issued = int(re.search(r"tickets issued: (\d+)", out).group(1))
    calls = int(re.search(r"calls made:\s+(\d+)", out).group(1))
    assert issued > 0 and calls > 0
    # live lines: a ticket, a call, and the text a window display received
    assert re.search(r"取号 [ABC]\d{3} ", out)
    called = re.findall(r"叫号 请 ([ABC]\d{3}) 号到 (\d)号窗口 办理", out)
    assert called
    number, window = called[0]
    assert f"{window}号窗口显示屏 ← 请{number}号 | 到{window}号窗口办理" in out
    # the summary lists every window's display and what it received
    for w in range(1, 5):
        assert re.search(rf"{w}号窗口 display received \d+ frames", out)
    assert "crashed" not in out
    # no phone number in full, only masked
    assert not re.search(r"\b1[3-9]\d{9}\b", out)
    assert re.search(r"短信至 1[3-9]\d\*\*\*\*\d{4}", out)


def test_a_node_install_does_not_need_the_demo_broker():
    """amqtt is the `demo` extra: nothing a node runs imports it, and without it the demo says
    what to install (amqtt is hidden from a fresh interpreter by an import hook: the test venv has it)."""
    probe = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] == 'amqtt': raise ImportError('amqtt is not installed')\n"
        "sys.meta_path.insert(0, Block())\n"
        "import hallctl.node.daemon, hallctl.cli, hallctl.diag.cli, hallctl.diag.doctor\n"
        "assert not [m for m in sys.modules if m.startswith('amqtt')]\n"
        "sys.exit(hallctl.cli.main(['demo', '--duration', '1']))\n"
    )
    proc = subprocess.run([PYTHON, "-c", probe], env=spawn_env(), capture_output=True, text=True, timeout=60)
    assert proc.returncode == 69, proc.stderr
    assert "pip install 'hallctl[demo]'" in proc.stderr and "--broker HOST:PORT" in proc.stderr
