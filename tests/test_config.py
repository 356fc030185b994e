"""Config loading: the shipped examples load; every class of error names file, key and problem."""

from __future__ import annotations

from pathlib import Path

import pytest

from hallctl.central.config import CentralConfig, load_central_config, parse_central_config
from hallctl.config import NodeConfig, load_node_config, parse_node_config
from hallctl.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent
NODE_EXAMPLE = ROOT / "config" / "node.example.toml"
CENTRAL_EXAMPLE = ROOT / "config" / "central.example.toml"

NODE = """
[node]
id = "window-3"
hall = "demo-hall"

[[device]]
id = "display"
profile = "onbon-bx-5k1"
app = "window_display"

[device.options]
port = "/dev/ttyUSB0"
window = "3"

[[device]]
id = "evaluator"
profile = "some-evaluator"
"""

CENTRAL = """
[central]
hall = "demo-hall"

[[queue]]
id = "general"
prefix = "A"
name = "综合受理"

[[queue]]
id = "tax"
prefix = "C"
name = "税务"

[[window]]
id = "1"
name = "1号窗口"

[[window]]
id = "6"
name = "6号窗口"
queues = ["tax"]
"""


def write(tmp_path: Path, text: str, name: str = "node.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def node_error(tmp_path: Path, text: str) -> ConfigError:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_node_config(path)
    assert err.value.file == str(path)
    assert err.value.code == "config_error"
    assert str(path) in str(err.value)
    return err.value


def central_error(tmp_path: Path, text: str) -> ConfigError:
    path = write(tmp_path, text, "central.toml")
    with pytest.raises(ConfigError) as err:
        load_central_config(path)
    assert err.value.file == str(path)
    assert str(path) in str(err.value)
    return err.value


# -- examples --------------------------------------------------------------------------------


def test_node_example_loads():
    cfg = load_node_config(NODE_EXAMPLE)
    assert isinstance(cfg, NodeConfig)
    assert (cfg.id, cfg.hall) == ("window-3", "demo-hall")
    [display] = cfg.devices
    assert display.app == "window_display"
    assert display.options["port"] == "/dev/ttyUSB0"
    assert display.options["window"] == "3"
    assert display.profile.startswith("onbon-bx")


def test_central_example_loads():
    cfg = load_central_config(CENTRAL_EXAMPLE)
    assert isinstance(cfg, CentralConfig)
    assert cfg.hall == "demo-hall" and cfg.id == "central"
    assert [(q.prefix, q.name) for q in cfg.queues] == [
        ("A", "综合受理"), ("B", "不动产"), ("C", "税务")]
    assert [w.name for w in cfg.windows] == [f"{n}号窗口" for n in range(1, 7)]
    assert cfg.hall_settings.tz == "Asia/Shanghai"


# -- defaults ------------------------------------------------------------------------------


def test_node_defaults(tmp_path):
    cfg = load_node_config(write(tmp_path, NODE))
    assert (cfg.mqtt.host, cfg.mqtt.port, cfg.mqtt.keepalive) == ("127.0.0.1", 1883, 15)
    assert cfg.mqtt.username is None and cfg.mqtt.password is None
    assert cfg.store.path == Path("/var/lib/hallctl/window-3.db")
    assert cfg.devices[1].app is None and cfg.devices[1].options == {}
    assert cfg.file == str(tmp_path / "node.toml")


def test_central_defaults(tmp_path):
    cfg = load_central_config(write(tmp_path, CENTRAL, "central.toml"))
    assert cfg.id == "central"
    assert cfg.store.path == Path("/var/lib/hallctl/central.db")
    h = cfg.hall_settings
    assert (h.tz, h.day_reset_hour, h.board_size, h.recall_limit) == ("Asia/Shanghai", 0, 8, 3)
    assert cfg.windows[0].queues == ("*",) and cfg.windows[1].queues == ("tax",)


def test_relative_store_path_is_relative_to_the_file(tmp_path):
    cfg = load_node_config(write(tmp_path, NODE + '\n[store]\npath = "state/outbox.db"\n'))
    assert cfg.store.path == tmp_path.resolve() / "state" / "outbox.db"


def test_password_is_not_in_repr(tmp_path):
    cfg = load_node_config(write(tmp_path, NODE + '[mqtt]\nusername = "n"\npassword = "s3cret"\n'))
    assert cfg.mqtt.password == "s3cret"
    assert "s3cret" not in repr(cfg)


def test_parse_takes_a_dict():
    cfg = parse_node_config({"node": {"id": "kiosk-1", "hall": "h"}}, file="x.toml")
    assert cfg.devices == () and cfg.file == "x.toml"
    with pytest.raises(ConfigError) as err:
        parse_central_config({"central": {"hall": "h"}}, file="c.toml")
    assert (err.value.file, err.value.key) == ("c.toml", "queue")


# -- each class of error -----------------------------------------------------------------------


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError) as err:
        load_node_config(tmp_path / "nope.toml")
    assert err.value.file == str(tmp_path / "nope.toml") and "not found" in err.value.problem


def test_toml_syntax_error(tmp_path):
    err = node_error(tmp_path, "[node]\nid = \n")
    assert "TOML syntax error" in err.problem and "line 2" in err.problem


def test_missing_section_and_key(tmp_path):
    err = node_error(tmp_path, "[mqtt]\nport = 1883\n")
    assert err.key == "node" and "missing" in err.problem
    err = node_error(tmp_path, NODE.replace('profile = "some-evaluator"', ""))
    assert err.key == "device[1].profile"
    assert err.problem == "missing required key 'profile'"
    assert str(err) == f"{tmp_path / 'node.toml'}: device[1].profile: missing required key 'profile'"


def test_wrong_type_says_expected_and_actual(tmp_path):
    err = node_error(tmp_path, NODE + "[mqtt]\nport = \"1883\"\n")
    assert err.key == "mqtt.port"
    assert "expected integer, got string" in err.problem
    err = node_error(tmp_path, NODE + "[mqtt]\nkeepalive = true\n")
    assert err.key == "mqtt.keepalive" and "expected integer, got boolean" in err.problem
    err = node_error(tmp_path, NODE.replace('app = "window_display"', "app = 3"))
    assert err.key == "device[0].app" and "expected string, got integer" in err.problem


def test_unknown_key_suggests_the_right_one(tmp_path):
    err = node_error(tmp_path, NODE + "[mqtt]\nkeepalvie = 30\n")
    assert err.key == "mqtt.keepalvie"
    assert "unknown key 'keepalvie'" in err.problem and "did you mean 'keepalive'" in err.problem
    err = node_error(tmp_path, NODE.replace("[[device]]\nid = \"evaluator\"", "[[devices]]\nid = \"evaluator\""))
    assert err.key == "devices" and "did you mean 'device'" in err.problem


def test_device_setting_outside_options_points_to_options(tmp_path):
    err = node_error(tmp_path, NODE + 'port = "/dev/ttyUSB1"\n')
    assert err.key == "device[1].port"
    assert "unknown key 'port'" in err.problem and "[device.options]" in err.problem


def test_invalid_id(tmp_path):
    err = node_error(tmp_path, NODE.replace('id = "display"', 'id = "Display_1"'))
    assert err.key == "device[0].id" and "[a-z0-9-]" in err.problem and "'Display_1'" in err.problem
    err = node_error(tmp_path, NODE.replace('hall = "demo-hall"', 'hall = "萧山"'))
    assert err.key == "node.hall"


def test_duplicate_device_id(tmp_path):
    err = node_error(tmp_path, NODE.replace('id = "evaluator"', 'id = "display"'))
    assert err.key == "device[1].id" and "duplicate" in err.problem and "device[0].id" in err.problem


def test_out_of_range(tmp_path):
    err = node_error(tmp_path, NODE + "[mqtt]\nport = 70000\n")
    assert err.key == "mqtt.port" and "1..65535" in err.problem
    err = central_error(tmp_path, CENTRAL + "[hall]\nday_reset_hour = 24\n")
    assert err.key == "hall.day_reset_hour"


def test_central_unknown_time_zone(tmp_path):
    err = central_error(tmp_path, CENTRAL + '[hall]\ntz = "Asia/Hangzhou"\n')
    assert err.key == "hall.tz" and "unknown time zone" in err.problem


def test_central_duplicate_prefix(tmp_path):
    err = central_error(tmp_path, CENTRAL.replace('prefix = "C"', 'prefix = "A"'))
    assert err.key == "queue[1].prefix" and "duplicate queue prefix 'A'" in err.problem


def test_central_bad_prefix(tmp_path):
    err = central_error(tmp_path, CENTRAL.replace('prefix = "C"', 'prefix = "c"'))
    assert err.key == "queue[1].prefix" and "upper-case" in err.problem


def test_central_window_names_an_undefined_queue(tmp_path):
    err = central_error(tmp_path, CENTRAL.replace('queues = ["tax"]', 'queues = ["taxes"]'))
    assert err.key == "window[1].queues[0]"
    assert "unknown queue 'taxes'" in err.problem and "did you mean 'tax'" in err.problem


def test_central_star_must_stand_alone(tmp_path):
    err = central_error(tmp_path, CENTRAL.replace('queues = ["tax"]', 'queues = ["tax", "*"]'))
    assert err.key == "window[1].queues[1]"


def test_central_needs_queues_and_windows(tmp_path):
    no_windows = CENTRAL[: CENTRAL.index("[[window]]")]
    err = central_error(tmp_path, no_windows)
    assert err.key == "window" and "at least one" in err.problem


def test_array_expected(tmp_path):
    err = node_error(tmp_path, "[node]\nid = \"n\"\nhall = \"h\"\n[device]\nid = \"x\"\n")
    assert err.key == "device" and "array of tables" in err.problem


def test_node_example_names_shipped_profiles():
    from hallctl.profiles import load_profiles

    profiles = load_profiles()
    for device in load_node_config(NODE_EXAMPLE).devices:
        assert profiles.get(device.profile).kind == "window_display"


def test_central_policy_and_window_skills_are_checked(tmp_path):
    import tomllib

    from hallctl.central.config import parse_central_config
    from hallctl.central.service import central_from_config

    base = tomllib.loads((Path(__file__).resolve().parent.parent / "config" / "central.example.toml").read_text())
    cfg = parse_central_config(base, file="central.toml")
    assert cfg.hall_settings.policy == "default"
    w4 = next(w for w in cfg.windows if w.id == "4")
    assert w4.queues == ("general", "real-estate") and w4.speed == {"real-estate": 0.8}
    base["store"]["path"] = str(tmp_path / "c.db")
    svc = central_from_config(parse_central_config(base, file="central.toml"))
    assert svc.hall.windows["4"].speed_for("real-estate") == 0.8 and svc.hall.policy == "default"
    svc.store.close()
    svc.outbox.close()

    bad = {**base, "hall": {**base["hall"], "policy": "fastest"}}
    with pytest.raises(ConfigError, match=r"central.toml: hall.policy: .*one of default"):
        parse_central_config(bad, file="central.toml")
    windows = [dict(w) for w in base["window"]]
    windows[3]["speed"] = {"parking": 2.0}
    with pytest.raises(ConfigError, match=r"window\[3\].speed.parking: unknown queue"):
        parse_central_config({**base, "window": windows}, file="central.toml")


# -- the hall model: departments, matters, hours, class prefixes ------------------------------


def test_central_example_has_departments_matters_and_opening_hours():
    from hallctl.central.hallconfig import hall_from_config

    cfg = load_central_config(CENTRAL_EXAMPLE)
    hall = hall_from_config(cfg)
    assert hall.matters["property-transfer"].queue == "real-estate"
    assert hall.matters["property-transfer"].department == "natural-resources"
    assert hall.matters["invoice"].expected_service_s == 300.0
    assert hall.departments["tax"].name == "税务局"
    assert hall.hours is not None and hall.hours.describe() == ["08:30-12:00", "13:30-17:00"]
    assert hall.prefix_for("tax", "green") == "L" and hall.prefix_for("tax", "walkin") == "C"


@pytest.mark.parametrize("extra, key, problem", [
    ('[[matter]]\nid = "m"\nname = "M"\nqueue = "taxes"\n', "matter[0].queue", "did you mean 'tax'"),
    ('[[matter]]\nid = "m"\nname = "M"\nqueue = "tax"\ndepartment = "police"\n', "matter[0].department",
     "unknown department 'police'"),
    ('[[matter]]\nid = "m"\nname = "M"\nqueue = "tax"\nexpected_service_s = 0\n',
     "matter[0].expected_service_s", "must be > 0"),
    ('[[matter]]\nid = "m"\nname = "M"\nqueue = "tax"\n[[matter]]\nid = "m"\nname = "N"\nqueue = "tax"\n',
     "matter[1].id", "duplicate matter id"),
    ('[[department]]\nid = "Tax"\nname = "税务局"\n', "department[0].id", "invalid id"),
])
def test_matter_and_department_errors_name_the_key(tmp_path, extra, key, problem):
    with pytest.raises(ConfigError) as err:
        load_central_config(write(tmp_path, CENTRAL + extra, "central.toml"))
    assert err.value.key == key and problem in err.value.problem


@pytest.mark.parametrize("hall, key, problem", [
    ('hours = ["8:30-12:00"]', "hall.hours[0]", "HH:MM-HH:MM"),
    ('hours = ["08:30-12:00", "11:30-13:00"]', "hall.hours", "overlap"),
    ('hours = ["08:30-12:00"]\nweekdays = [1, 8]', "hall.weekdays", "ISO weekdays"),
    ('hours = ["08:30-12:00"]\nclosed_dates = ["2026-13-01"]', "hall.closed_dates[0]", "YYYY-MM-DD"),
    ('weekdays = [1, 2]', "hall.weekdays", "needs hall.hours"),
    ('class_prefix = { green = "A" }', "hall.class_prefix.green", "already queue 'general'"),
    ('class_prefix = { vip = "V" }', "hall.class_prefix.vip", "unknown class"),
    ('class_prefix = { green = "L1" }', "hall.class_prefix.green", "invalid ticket prefix"),
])
def test_hall_hours_and_class_prefix_errors_name_the_key(tmp_path, hall, key, problem):
    text = CENTRAL.replace('hall = "demo-hall"\n', f'hall = "demo-hall"\n\n[hall]\n{hall}\n', 1)
    with pytest.raises(ConfigError) as err:
        load_central_config(write(tmp_path, text, "central.toml"))
    assert err.value.key == key and problem in err.value.problem, err.value.message
