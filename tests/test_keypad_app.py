"""The keypad app's decisions that need no hall: which central action a key means in which window
state, how a ticket number fits a 3-character display, and the mistakes in a node config that
stop the node at start (exit 78, naming the key) instead of a keypad that silently does nothing."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import PYTHON, spawn_env, write_toml

from hallctl.apps.base import AppContext
from hallctl.apps.keypad import KeypadApp, fit_number
from hallctl.bus.topics import Topics
from hallctl.config import parse_node_config
from hallctl.errors import ConfigError
from hallctl.node.plan import plan_node
from hallctl.profiles import load_profiles


@pytest.mark.parametrize(("number", "width", "shown"), [
    ("A12", 3, "A12"), ("A001", 3, "A1"), ("A012", 3, "A12"), ("A123", 3, "123"), ("B1234", 3, "234"),
    ("A012", 4, "A012"), ("VIP-01", 3, "1"), ("AB007", 3, "AB7"),
])
def test_a_number_fits_the_display_keeping_what_tells_tickets_apart(number: str, width: int, shown: str) -> None:
    assert fit_number(number, width) == shown


def _app(**options) -> KeypadApp:
    async def never(*_a, **_k):  # the mapping below asks nothing of the device or central
        raise AssertionError("not called")

    ctx = AppContext("n1", "keypad", Topics("h1"), never, logging.getLogger("test"), never)
    return KeypadApp(ctx, {"window": "3", **options})


def _state(window: str = "open", ticket: str | None = None) -> dict:
    return {"v": 1, "window": "3", "state": window,
            "ticket": {"number": "A012", "queue": "a", "status": ticket} if ticket else None}


@pytest.mark.parametrize(("key", "state", "action"), [
    ("1", _state(), "window.call_next"), ("1", _state(ticket="called"), "window.recall"),
    ("1", _state(ticket="serving"), "window.call_next"),  # central answers conflict: serve it to the end first
    ("2", _state(ticket="called"), "window.start"),
    ("4", _state(ticket="called"), "window.no_show"), ("4", _state(ticket="serving"), "window.complete"),
    ("pause", _state(), "window.pause"), ("pause", _state("paused"), "window.open"),
    ("call_next", _state(ticket="called"), "window.call_next"), ("recall", _state(), "window.recall"),
])
def test_what_a_key_means_in_the_windows_state(key: str, state: dict, action: str) -> None:
    app = _app()
    app.on_hall_message(app.ctx.topics.window_state("3"), state)
    function = app.keys.get(key, key)
    assert app.request_for(function) == (action, {"window": "3"})


def test_transfer_needs_a_queue_and_a_hall_may_remap_keys() -> None:
    assert _app().request_for("transfer") is None
    assert _app(transfer_queue="b").request_for("transfer") == ("window.transfer", {"window": "3", "queue": "b"})
    app = _app(keys={"3": "pause", "5": "call_next"})
    assert app.keys["3"] == "pause" and app.keys["5"] == "call_next" and app.keys["1"] == "next_or_recall"


def _plan(tmp_path: Path, profile: str, options: dict):
    cfg = parse_node_config({"node": {"id": "n1", "hall": "h1"}, "store": {"path": str(tmp_path / "n.db")},
                             "device": [{"id": "keypad", "profile": profile, "app": "keypad", "options": options}]})
    return plan_node(cfg, load_profiles())


@pytest.mark.parametrize(("profile", "options", "key", "problem"), [
    ("qsystem-keypad-display", {"window": "3", "port": "/dev/ttyUSB0", "address": 0x10}, "options.address",
     "must be 32..127"),
    ("qsystem-keypad-display", {"window": "3", "port": "/dev/ttyUSB0"}, "options.address", "missing required key"),
    ("qsystem-keypad-led", {"window": "3", "port": "/dev/ttyUSB0", "address": 34, "keys": {"1": "fly"}},
     "options.keys.1", "must be one of"),
    ("qsystem-keypad-led", {"window": "3", "port": "/dev/ttyUSB0", "address": 34, "texts": {"calld": "X"}},
     "options.texts", "unknown text 'calld'"),
    ("qsystem-keypad-led", {"window": "3", "port": "/dev/ttyUSB0", "address": 34, "texts": {"called": "{numbr}"}},
     "options.texts", "unknown field"),
    ("gpio-keypad", {"window": "3", "button_call_next": 17, "led_green": "GPIO17"}, "options.led_green",
     "also button_call_next"),
    ("gpio-keypad", {"window": "3"}, "options", "at least one button"),
])
def test_config_mistakes_are_refused_at_start_naming_the_key(tmp_path, profile, options, key, problem) -> None:
    with pytest.raises(ConfigError) as err:
        _plan(tmp_path, profile, options)
    assert err.value.key == f"device[0].{key}" and problem in err.value.problem, err.value.message


def test_a_node_with_a_bad_keypad_option_exits_78(tmp_path) -> None:
    path = write_toml(tmp_path / "node.toml", """
        [node]
        id = "n1"
        hall = "h1"
        [[device]]
        id = "keypad"
        profile = "qsystem-keypad-display"
        app = "keypad"
        [device.options]
        window = "3"
        port = "/dev/ttyUSB0"
        address = 200
        """)
    proc = subprocess.run([PYTHON, "-m", "hallctl", "node", "-c", str(path)], env=spawn_env(),
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 78, proc.stderr
    assert f"{path}: device[0].options.address: must be 32..127, got 200" in proc.stderr


def test_loading_the_drivers_and_the_app_imports_no_emulator_and_no_hardware_library() -> None:
    """A Pi's start-up stays quick, and no production path reaches the emulator: gpiozero and
    pyserial load when a device opens."""
    code = ("import json, sys\nfrom hallctl_drivers import driver_class\nfrom hallctl.apps import app_class\n"
            "driver_class('qsys_keypad'); driver_class('gpio_keypad'); app_class('keypad')\n"
            "print(json.dumps(sorted(sys.modules)))\n")
    loaded = json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
    assert "hallctl_drivers.keypad.qsys" in loaded and "hallctl.apps.keypad" in loaded
    assert [m for m in loaded if "emulator" in m or m.split(".")[0] in ("gpiozero", "serial")] == []
