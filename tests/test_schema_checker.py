"""The argument checker every device command goes through: garbage gets a SchemaError naming a
key path, never another exception; what passes reaches the driver with integers as integers."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hallctl_drivers.kinds import KINDS, WINDOW_DISPLAY
from hallctl_drivers.onbon_bx.schemas import OPTIONS_SCHEMA, SETTINGS_SCHEMA
from hallctl_drivers.schema import SchemaError, check, coerce, describe

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=8), inner, max_size=5),
    max_leaves=30,
)
SCHEMAS = [a.args for k in KINDS.values() for a in k.actions.values()] + [OPTIONS_SCHEMA, SETTINGS_SCHEMA]


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(SCHEMAS), json_values | st.dictionaries(
    st.sampled_from(["lines", "level", "port", "address", "baudrate", "x"]), json_values, max_size=4))
def test_garbage_is_a_schema_error_or_passes_and_coerces(schema, value):
    try:
        check(schema, value, "data")
    except SchemaError as exc:
        assert exc.path.startswith("data") and exc.problem
        return
    coerce(schema, value)  # never raises on what passed


def test_the_checker_names_the_first_problem_and_its_key():
    show = WINDOW_DISPLAY.actions["show"].args
    with pytest.raises(SchemaError) as e:
        check(show, {"lines": ["好", 3]}, "data")
    assert (e.value.path, e.value.problem) == ("data.lines[1]", "expected a string, got integer (3)")
    with pytest.raises(SchemaError, match="needs at least 1 item"):
        check(show, {"lines": []}, "data")
    brightness = WINDOW_DISPLAY.actions["brightness"].args
    check(brightness, {"level": 3.0}, "data")
    assert coerce(brightness, {"level": 3.0}) == {"level": 3} and type(coerce(brightness, {"level": 3.0})["level"]) is int
    assert describe(brightness) == "level: integer 0..15 (required)"
