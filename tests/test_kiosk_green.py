"""Issue 9, the kiosk's staffed green-channel screen (绿色通道): the ground chosen from the hall's
templates, a staff member's PIN checked against the kiosk's salted hash (never the PIN in the
config, never the digits on the page or in the log), three wrong PINs and it is home, the ticket
then green channel; the ground goes nowhere but a count per ground. The option is checked when the
node starts: a malformed hash is exit 78 naming the key, never echoing the value. (Chromium takes
a green ticket through the page in tests/test_kiosk_browser.py.)"""

from __future__ import annotations

import hashlib
import json
import logging
import subprocess
import tomllib
from pathlib import Path

import pytest
from conftest import PYTHON, spawn_env, write_toml
from test_kiosk_flow import CATALOGUE, PRINTER_OK, touch

from hallctl.apps.base import AppContext
from hallctl.apps.kiosk.app import KioskApp
from hallctl.apps.kiosk.flow import Issue, KioskFlow
from hallctl.apps.kiosk.pin import pin_hash, pin_matches
from hallctl.apps.kiosk.templates import TemplateError, load_texts
from hallctl.bus.topics import Topics
from hallctl.config import parse_node_config
from hallctl.errors import ConfigError
from hallctl.node.plan import plan_node
from hallctl.profiles import load_profiles

PIN = "246810"
HASH = pin_hash(PIN, salt="a1b2c3d4e5f60718")
ROOT = Path(__file__).resolve().parent.parent


def green_flow(**kw) -> KioskFlow:
    texts = load_texts()
    flow = KioskFlow(places=texts["where"], grounds=texts["grounds"], green_pin=HASH, **kw)
    flow.on_catalogue(CATALOGUE)
    flow.on_central_status(True)
    flow.on_printer(PRINTER_OK)
    return flow


def pin(digits: str) -> list[dict]:
    return [{"do": "digit", "d": d} for d in digits] + [{"do": "pin_ok"}]


def test_the_salted_hash_is_what_the_docs_say_and_matches_only_its_pin() -> None:
    salt, digest = HASH.split("$")
    assert digest == hashlib.sha256((salt + PIN).encode()).hexdigest()  # docs/kiosk.md's recipe
    assert pin_matches(HASH, PIN) and not pin_matches(HASH, "246811") and not pin_matches(HASH, "")
    assert pin_hash(PIN) != pin_hash(PIN)  # a fresh salt each time


def test_a_staff_member_confirms_the_ground_and_the_ticket_is_green() -> None:
    flow = green_flow()
    assert flow.view()["green"] is True
    touch(flow, {"do": "green"})
    grounds = flow.view()["grounds"]
    assert [g["name"] for g in grounds] == ["军人、消防救援人员", "残疾人", "孕妇", "老年人", "急事急办", "其他特殊困难群众"]
    touch(flow, {"do": "ground", "id": "nonsense"})
    assert flow.view()["screen"] == "green"
    touch(flow, {"do": "ground", "id": "pregnant"}, *[{"do": "digit", "d": d} for d in "2468"])
    view = flow.view()
    assert (view["screen"], view["ground"], view["pin_masked"]) == ("green_pin", "孕妇", "●●●●")
    touch(flow, {"do": "delete"}, {"do": "digit", "d": "8"}, *pin("10"))
    confirmed = flow.view()
    assert (confirmed["screen"], confirmed["ground"]) == ("green_queues", "孕妇")
    assert [q["id"] for q in confirmed["queues"]] == ["general", "house"]
    touch(flow, {"do": "queue", "id": "general"}, {"do": "back"})  # back from the matters: still green
    assert flow.view()["screen"] == "green_queues"
    touch(flow, {"do": "queue", "id": "house"}, {"do": "back"})  # no matters: back from the phone
    assert flow.view()["screen"] == "green_queues"
    touch(flow, {"do": "queue", "id": "general"}, {"do": "matter", "id": "licence"}, {"do": "no_sms"})
    assert flow.view()["green"] == "孕妇"
    effect = touch(flow, {"do": "confirm"})
    assert effect == Issue({"matter": "licence", "priority": "green", "channel": "kiosk", "confirm": "print"})
    assert "pregnant" not in json.dumps(effect.data) and "孕妇" not in json.dumps(effect.data)  # central has no field
    assert flow.issued({"ticket": {"number": "L001", "queue": "general", "priority": "green"}}) == "pregnant"
    assert flow.green_counts == {"pregnant": 1}


def test_three_wrong_pins_and_it_is_home_and_no_digit_is_ever_shown() -> None:
    flow = green_flow()
    touch(flow, {"do": "green"}, {"do": "ground", "id": "military"}, *pin("1111"))
    views = [flow.view()]
    assert views[0]["message"] == {"key": "green_pin_wrong", "left": 2} and views[0]["pin_masked"] == ""
    touch(flow, {"do": "back"}, {"do": "ground", "id": "disabled"}, *pin("2222"))  # changing the ground: still counted
    views.append(flow.view())
    assert views[-1]["message"] == {"key": "green_pin_wrong", "left": 1}
    touch(flow, *[{"do": "digit", "d": d} for d in "24681"])
    views.append(flow.view())
    touch(flow, {"do": "clear"}, *pin("3333"))
    home = flow.view()
    assert (home["screen"], home["message"]) == ("home", {"key": "green_pin_locked"})
    assert flow.pin_failures == 3 and flow.entry.priority == "walkin"
    shown = json.dumps(views + [home], ensure_ascii=False)
    for digits in ("1111", "2222", "3333", "24681", PIN, HASH):
        assert digits not in shown
    assert PIN not in repr(flow.entry) and "24681" not in repr(flow.entry)
    touch(flow, {"do": "green"})  # the message goes with the next touch
    assert flow.view()["message"] is None


def test_no_green_button_without_a_pin_or_the_class_and_the_ground_never_leaves() -> None:
    texts = load_texts()
    no_pin = KioskFlow(grounds=texts["grounds"])
    no_pin.on_catalogue(CATALOGUE)
    no_pin.on_central_status(True)
    no_pin.on_printer(PRINTER_OK)
    touch(no_pin, {"do": "green"})
    assert no_pin.view()["screen"] == "home" and no_pin.view()["green"] is False
    flow = green_flow()
    flow.on_catalogue({**CATALOGUE, "classes": ["walkin", "appointment"]})
    touch(flow, {"do": "green"})
    assert flow.view()["green"] is False and flow.view()["screen"] == "home"


def test_a_halls_grounds_replace_the_shipped_list(tmp_path) -> None:
    own = tmp_path / "kiosk.toml"
    own.write_text('[grounds]\nveteran = "退役军人"\nurgent = "急事急办"\n', encoding="utf-8")
    assert load_texts(own)["grounds"] == {"veteran": "退役军人", "urgent": "急事急办"}
    for body, key in (("[grounds]\n", "grounds"), ('[grounds]\n"Bad Id" = "x"\n', "grounds.Bad Id"),
                      ('[grounds]\nx = "{number}"\n', "grounds.x")):
        own.write_text(body, encoding="utf-8")
        with pytest.raises(TemplateError) as err:
            load_texts(own)
        assert err.value.key == key


def test_the_kiosk_logs_counts_per_ground_and_wrong_pins_never_the_digits_or_the_number(caplog) -> None:
    """What the app logs around a green ticket: a wrong PIN (a count), and after the ticket the
    counts per ground without the ticket's number (central has no field for the ground)."""
    async def no_device(action: str, data: object) -> dict:
        raise AssertionError("nothing is printed here")

    ctx = AppContext("kiosk-1", "printer", Topics("h1"), no_device, logging.getLogger("test"))
    app = KioskApp(ctx, {"green_pin_sha256": HASH, "http_port": 0})  # no I/O until started
    app.flow.on_catalogue(CATALOGUE)
    app.flow.on_central_status(True)
    app.flow.on_printer(PRINTER_OK)
    with caplog.at_level(logging.INFO, logger="hallctl.apps.kiosk"):
        for action in ({"do": "green"}, {"do": "ground", "id": "urgent"}, *pin("9999"), *pin(PIN)):
            app.press(action)
    assert [r.getMessage() for r in caplog.records] == [
        "green channel: a wrong staff PIN at this kiosk (1 since start)"]
    assert app.flow.view()["screen"] == "green_queues"


# -- the option, checked when the node starts --------------------------------------------------------

def _kiosk_config(tmp_path: Path, **options) -> dict:
    raw = tomllib.loads((ROOT / "config" / "kiosk.example.toml").read_text(encoding="utf-8"))
    opts = raw["device"][0]["options"]
    opts.pop("templates_file", None)
    opts.update(options)
    return raw


@pytest.mark.parametrize("value", ["246810", "salt$" + "0" * 64, "a1b2c3d4e5f60718$" + "G" * 64, HASH + "0"])
def test_a_malformed_pin_hash_is_a_config_error_naming_the_key(tmp_path, value) -> None:
    with pytest.raises(ConfigError) as err:
        plan_node(parse_node_config(_kiosk_config(tmp_path, green_pin_sha256=value), file="kiosk.toml"), load_profiles())
    assert err.value.key == "device[0].options.green_pin_sha256"
    assert value not in str(err.value) and "docs/kiosk.md" in str(err.value)
    (plan,) = plan_node(parse_node_config(_kiosk_config(tmp_path, green_pin_sha256=HASH)), load_profiles())
    assert plan.app_options["green_pin_sha256"] == HASH


def test_the_node_exits_78_on_a_malformed_pin_hash(tmp_path) -> None:
    path = write_toml(tmp_path / "kiosk.toml", f"""
        [node]
        id = "kiosk-1"
        hall = "h1"
        [mqtt]
        host = "127.0.0.1"
        port = 1
        [store]
        path = "k.db"
        [[device]]
        id = "printer"
        profile = "snbc-bt-t080"
        app = "kiosk"
        [device.options]
        port = "/dev/ttyUSB0"
        green_pin_sha256 = "{PIN}"
        """)
    proc = subprocess.run([PYTHON, "-m", "hallctl", "node", "-c", str(path)], env=spawn_env(), capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 78, proc.stderr
    line = proc.stderr.strip().splitlines()[-1]
    assert f"{path}: device[0].options.green_pin_sha256: " in line and PIN not in line, line
