"""Firmware profiles: every shipped file is valid; broken files are isolated and explained."""

from __future__ import annotations

from pathlib import Path

import pytest

from hallctl.errors import ConfigError
from hallctl.profiles import Profile, load_profiles, shipped_profile_files
from hallctl_drivers import Driver, register_driver, register_kind
from hallctl_drivers.kinds import Action, Kind

HEAD = 'schema = 1\nvendor = "Test 测试"\nname = "T-1"\nsource = "test manual §1"\n'
ROOT = HEAD + 'kind = "t_sign"\ndriver = "t_open"\n'


# Two kinds and drivers of the test's own, registered through the public registries: the
# resolution rules below are about profiles, not about any shipped driver's settings.
register_kind(Kind("t_sign", "a test sign", {"blink": Action("blink", "blink", feature="blink")}))
register_kind(Kind("t_board", "a test board", {}))


class _OpenSign(Driver):
    kind = "t_sign"
    features = frozenset({"blink"})
    settings_schema = {"type": "object"}  # any settings: these tests are about merging

    async def start(self): ...
    async def stop(self): ...
    async def probe(self): ...
    async def execute(self, action, args): ...


class _Board(_OpenSign):
    kind = "t_board"
    features = frozenset()


register_driver("t_open", _OpenSign)
register_driver("t_board_drv", _Board)


def write(d: Path, pid: str, text: str) -> Path:
    path = d / f"{pid}.toml"
    path.write_text(text, encoding="utf-8")
    return path


def load(d: Path):
    return load_profiles([d], include_shipped=False)


# -- shipped files -----------------------------------------------------------------------------


def test_every_shipped_profile_loads_without_errors():
    files = shipped_profile_files()
    assert files, "firmware_profiles/ ships no *.toml file"
    result = load_profiles()
    assert result.errors == {}, "\n".join(str(e) for e in result.errors.values())
    assert sorted(result.profiles) == sorted(f.name[: -len(".toml")] for f in files)
    for profile in result.profiles.values():
        assert profile.source.strip() and profile.vendor.strip() and profile.name.strip()
        assert profile.chain[0] == profile.id


# -- resolution ---------------------------------------------------------------------------------


def test_inheritance_merges_settings_child_wins(tmp_path):
    write(tmp_path, "base", ROOT + '[settings]\nbaud = 9600\ncolor = 1\n[settings.area]\nwidth = 128\nheight = 32\n')
    write(tmp_path, "mid", HEAD + 'inherits = "base"\n[settings]\nbaud = 57600\n[settings.area]\nheight = 16\n')
    write(tmp_path, "leaf", HEAD.replace("T-1", "T-3") + 'inherits = "mid"\nkind = "t_board"\ndriver = "t_board_drv"\n[settings]\ncolor = 3\n')
    result = load(tmp_path)
    assert result.errors == {}
    leaf = result.get("leaf")
    assert isinstance(leaf, Profile)
    assert leaf.chain == ("leaf", "mid", "base")
    assert (leaf.kind, leaf.driver, leaf.name) == ("t_board", "t_board_drv", "T-3")
    assert leaf.settings == {"baud": 57600, "color": 3, "area": {"width": 128, "height": 16}}
    # merging never leaks into the parent
    assert result.get("base").settings == {"baud": 9600, "color": 1, "area": {"width": 128, "height": 32}}


def test_cycle(tmp_path):
    write(tmp_path, "a", ROOT + 'inherits = "b"\n')
    write(tmp_path, "b", ROOT + 'inherits = "a"\n')
    write(tmp_path, "c", HEAD + 'inherits = "a"\n')
    result = load(tmp_path)
    assert result.profiles == {}
    for pid in ("a", "b"):
        assert "inheritance cycle" in result.errors[pid].problem
        assert result.errors[pid].key == "inherits"
    assert "a -> b -> a" in result.errors["a"].problem or "b -> a -> b" in result.errors["a"].problem
    assert "parent profile 'a' is broken" in result.errors["c"].problem
    assert "inheritance cycle" in result.errors["c"].problem


def test_self_inheritance_is_a_cycle(tmp_path):
    write(tmp_path, "a", ROOT + 'inherits = "a"\n')
    assert "inheritance cycle: a -> a" in load(tmp_path).errors["a"].problem


def test_missing_parent(tmp_path):
    path = write(tmp_path, "child", HEAD + 'inherits = "no-such-parent"\n')
    err = load(tmp_path).errors["child"]
    assert (err.file, err.key) == (str(path), "inherits")
    assert "unknown profile 'no-such-parent'" in err.problem


def test_missing_source(tmp_path):
    path = write(tmp_path, "nosrc", ROOT.replace('source = "test manual §1"\n', ""))
    err = load(tmp_path).errors["nosrc"]
    assert (err.file, err.key) == (str(path), "source")
    assert "missing" in err.problem
    write(tmp_path, "nosrc", ROOT.replace('"test manual §1"', '"  "'))
    assert "non-empty" in load(tmp_path).errors["nosrc"].problem


def test_bad_schema_version(tmp_path):
    write(tmp_path, "v2", ROOT.replace("schema = 1", "schema = 2"))
    err = load(tmp_path).errors["v2"]
    assert err.key == "schema" and "unsupported schema version 2" in err.problem
    write(tmp_path, "v2", ROOT.replace("schema = 1\n", ""))
    assert "missing required key 'schema'" in load(tmp_path).errors["v2"].problem


def test_toml_syntax_error(tmp_path):
    path = write(tmp_path, "broken", ROOT + "[settings\nbaud = 9600\n")
    err = load(tmp_path).errors["broken"]
    assert err.file == str(path) and "TOML syntax error" in err.problem


def test_kind_and_driver_required_once_resolved(tmp_path):
    write(tmp_path, "nokind", HEAD + 'driver = "onbon_bx"\n')
    write(tmp_path, "baddriver", HEAD + 'kind = "window_display"\ndriver = "onbon-bx"\n')
    result = load(tmp_path)
    assert result.errors["nokind"].key == "kind"
    err = result.errors["baddriver"]
    assert err.key == "driver" and "did you mean 'onbon_bx'" in err.problem


def test_unknown_top_level_key(tmp_path):
    write(tmp_path, "typo", ROOT + '[setings]\nbaud = 1\n')
    err = load(tmp_path).errors["typo"]
    assert err.key == "setings" and "did you mean 'settings'" in err.problem


def test_one_broken_file_does_not_affect_others(tmp_path):
    write(tmp_path, "good", ROOT + "[settings]\nbaud = 9600\n")
    write(tmp_path, "good-child", HEAD + 'inherits = "good"\n')
    write(tmp_path, "broken", "schema = 1\nvendor = [\n")
    write(tmp_path, "broken-child", HEAD + 'inherits = "broken"\n')
    result = load(tmp_path)
    assert sorted(result.profiles) == ["good", "good-child"]
    assert sorted(result.errors) == ["broken", "broken-child"]
    assert result.get("good-child").settings == {"baud": 9600}
    assert "parent profile 'broken' is broken (TOML syntax error" in result.errors["broken-child"].problem


def test_get_raises_the_recorded_reason_or_unknown(tmp_path):
    write(tmp_path, "good", ROOT)
    write(tmp_path, "bad", ROOT.replace("schema = 1", "schema = 9"))
    result = load(tmp_path)
    with pytest.raises(ConfigError, match="unsupported schema version 9") as err:
        result.get("bad")
    assert err.value.file == str(tmp_path / "bad.toml")
    with pytest.raises(ConfigError, match="unknown firmware profile 'goood'; did you mean 'good'"):
        result.get("goood")


def test_extra_dir_overrides_shipped(tmp_path):
    shipped = load_profiles()
    if not shipped.profiles:
        pytest.skip("no shipped profile to override")
    pid = sorted(shipped.profiles)[0]
    write(tmp_path, pid, ROOT + "[settings]\nsite_patch = true\n")
    result = load_profiles([tmp_path])
    assert result.get(pid).settings == {"site_patch": True}
    assert result.get(pid).file == str(tmp_path / f"{pid}.toml")


# -- checked against the driver -----------------------------------------------------------------


def test_settings_are_checked_against_the_drivers_schema_with_file_and_key(tmp_path):
    path = write(tmp_path, "slow-bar", HEAD + 'inherits = "onbon-bx-6k"\n[settings]\nbaudrate = 115200\n')
    result = load_profiles([tmp_path])
    err = result.errors["slow-bar"]
    assert err.file == str(path) and err.key == "settings.baudrate"
    assert "9600, 57600" in err.problem and "115200" in err.problem
    good = load_profiles()
    assert good.profiles["onbon-bx-6k"].settings["reply_timeout_s"] == 2.0, "defaults come from the schema"


def test_features_narrow_what_the_driver_implements_and_are_inherited(tmp_path):
    write(tmp_path, "plain-bar", HEAD + 'inherits = "onbon-bx-6k"\nfeatures = ["status"]\n')
    write(tmp_path, "plain-bar-2", HEAD + 'inherits = "plain-bar"\n')
    write(tmp_path, "cutter-bar", HEAD + 'inherits = "onbon-bx-6k"\nfeatures = ["cutter"]\n')
    result = load_profiles([tmp_path])
    assert result.profiles["onbon-bx-6k"].features == {"ping", "status", "brightness"}
    assert result.profiles["plain-bar"].features == {"status"} and not result.profiles["plain-bar"].supports("brightness")
    assert result.profiles["plain-bar-2"].features == {"status"}
    err = result.errors["cutter-bar"]
    assert err.key == "features" and "does not implement cutter" in err.problem


def test_a_kind_that_does_not_fit_the_driver_is_refused(tmp_path):
    write(tmp_path, "odd", HEAD + 'kind = "t_board"\ndriver = "onbon_bx"\n')
    err = load(tmp_path).errors["odd"]
    assert err.key == "kind" and "serves 'window_display'" in err.problem
