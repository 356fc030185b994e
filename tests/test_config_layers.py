"""Config layering (issue 7): hallctl.config never loads central, and the hall's defaults and
domain rules are written once, in the model, whichever way a hall is built."""

from __future__ import annotations

import ast
import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest

from hallctl.central.config import HallSettings, parse_central_config
from hallctl.central.hallconfig import hall_from_config
from hallctl.central.hours import OpeningHours
from hallctl.central.model import HallSpec, QueueSpec, WindowSpec
from hallctl.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent

BASE = {
    "central": {"hall": "h"},
    "queue": [{"id": "general", "prefix": "A", "name": "G"}, {"id": "tax", "prefix": "C", "name": "T"}],
    "window": [{"id": "1", "name": "1"}, {"id": "2", "name": "2", "queues": ["tax"]}],
}


def test_importing_hallctl_config_loads_nothing_of_central():
    code = (
        "import sys\n"
        "import hallctl.config, hallctl.config.reader, hallctl.config.node\n"
        "from hallctl.config import load_node_config, parse_node_config, Reader, Field\n"
        "print(sorted(m for m in sys.modules if m == 'hallctl.central' or m.startswith('hallctl.central.')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_no_module_of_hallctl_config_imports_central():
    """Also imports inside functions, which the fresh interpreter above would not run."""
    for path in sorted((ROOT / "hallctl" / "config").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            bad = [n for n in names if n == "hallctl.central" or n.startswith("hallctl.central.")]
            assert not bad, f"{path.name}:{node.lineno} imports {bad}"


def test_hallctl_config_keeps_the_node_side_only():
    import hallctl.config as config

    for name in ("MqttConfig", "StoreConfig", "DeviceConfig", "NodeConfig", "parse_node_config",
                 "load_node_config", "Field", "Reader", "read_toml", "store_path", "parse_mqtt",
                 "is_id", "non_empty", "between"):
        assert hasattr(config, name), name
    for name in ("CentralConfig", "HallSettings", "load_central_config", "parse_central_config"):
        assert not hasattr(config, name), name


# -- defaults: HallSpec's, once ------------------------------------------------------------


def test_hall_settings_are_hallspec_keywords_with_hallspec_defaults():
    spec = {f.name: f for f in dataclasses.fields(HallSpec) if f.init}
    for f in dataclasses.fields(HallSettings):
        assert f.name in spec, f"[hall] {f.name} is no HallSpec keyword"
        want = spec[f.name]
        if want.default_factory is not dataclasses.MISSING:
            assert f.default_factory() == want.default_factory(), f.name
        else:
            assert f.default == want.default, f.name


def test_an_empty_hall_section_gives_the_model_defaults():
    cfg = parse_central_config(BASE, file="c.toml")
    built = hall_from_config(cfg)
    direct = HallSpec("h", {"general": QueueSpec("general", "A", "G"), "tax": QueueSpec("tax", "C", "T")},
                      {"1": WindowSpec("1", "1"), "2": WindowSpec("2", "2", ("tax",))})
    assert built == direct


def test_every_hall_setting_reaches_the_hall():
    given = {
        "tz": "Europe/Berlin", "day_reset_hour": 4, "board_size": 3, "recall_limit": 1,
        "policy": "fifo", "elderly_age": 70, "appointment_grace_s": 60, "appointment_late_s": 30,
        "overflow_after_s": 10, "max_wait_boost_s": 99, "auto_no_show": True,
        "class_prefix": {"green": "L"}, "hours": ["08:00-12:00"],
    }
    hall = hall_from_config(parse_central_config({**BASE, "hall": given}, file="c.toml"))
    for name, value in given.items():
        if name == "hours":
            assert isinstance(hall.hours, OpeningHours) and hall.hours.describe() == ["08:00-12:00"]
        else:
            assert getattr(hall, name) == value, name
    assert isinstance(hall.appointment_grace_s, float)
    # and no setting of the model is missing from the file
    settable = {f.name for f in dataclasses.fields(HallSpec) if f.init} - {
        "hall_id", "queues", "windows", "matters", "departments"}
    assert settable == {f.name for f in dataclasses.fields(HallSettings)}


# -- domain rules: the model's, once; the file names its own key ---------------------------


@pytest.mark.parametrize("hall, windows, file_key, build, model_key", [
    ({"policy": "fastest"}, None, "hall.policy", {"policy": "fastest"}, "policy"),
    ({"tz": "Asia/Hangzhou"}, None, "hall.tz", {"tz": "Asia/Hangzhou"}, "tz"),
    ({"class_prefix": {"gren": "L"}}, None, "hall.class_prefix.gren", {"class_prefix": {"gren": "L"}},
     "class_prefix"),
    (None, [{"id": "1", "name": "1"}, {"id": "2", "name": "2", "kind": "vip"}], "window[1].kind",
     "kind", "windows.2.kind"),
])
def test_a_domain_rule_says_the_same_in_the_file_and_in_the_model(hall, windows, file_key, build, model_key):
    data = dict(BASE)
    if hall is not None:
        data["hall"] = hall
    if windows is not None:
        data["window"] = windows
    with pytest.raises(ConfigError) as from_file:
        parse_central_config(data, file="c.toml")
    assert (from_file.value.file, from_file.value.key) == ("c.toml", file_key)
    q = {"general": QueueSpec("general", "A", "G")}
    with pytest.raises(ConfigError) as from_model:
        if build == "kind":
            HallSpec("h", q, {"2": WindowSpec("2", "2", kind="vip")})
        else:
            HallSpec("h", q, {}, **build)
    assert from_model.value.key == model_key
    assert from_file.value.problem == from_model.value.problem
    if model_key == "class_prefix":
        assert "did you mean 'green'" in from_file.value.problem
