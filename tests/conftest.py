"""Shared fixtures: a real Mosquitto on a free loopback port, and an independent MQTT observer.

The observer uses aiomqtt directly (not hallctl's bus) so the tests check hallctl against an
outside client, the way another system would see it.

Every Mosquitto the suite starts is recorded (tests/traffic_recorder.py), and the contract's
traffic test, moved to the end of the run, checks all of it against the JSON Schemas (issue 8).
"""

from __future__ import annotations

import os
import sys
import textwrap
from pathlib import Path

import pytest
import traffic_recorder

from hallctl.sim.mosquitto import MosquittoProcess

ROOT = Path(__file__).resolve().parent.parent
#: the test that checks the whole run's traffic: it runs last, whatever the order asked for
TRAFFIC_TEST = "test_contract_traffic.py::test_every_payload_of_the_run_fits_its_schema"

traffic_recorder.install()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item, nextitem):
    traffic_recorder.CURRENT["test"] = item.nodeid
    try:
        return (yield)
    finally:
        traffic_recorder.CURRENT["test"] = "(between tests)"


def pytest_collection_modifyitems(session, config, items):
    last = [item for item in items if item.nodeid.endswith(TRAFFIC_TEST)]
    items[:] = [item for item in items if item not in last] + last


@pytest.fixture(scope="session")
def mosquitto_session():
    with MosquittoProcess() as broker:
        yield broker


@pytest.fixture
def mosquitto(tmp_path):
    """A broker of the test's own, for tests that stop, kill or restart it."""
    with MosquittoProcess() as broker:
        yield broker


def write_toml(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text))
    return path


def spawn_env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("HALLCTL_LOG_LEVEL", "INFO")
    return env


PYTHON = sys.executable


def line_reader():
    """A transport ReplyReader for one ``...\\n`` reply (the transport tests' line devices)."""
    buf = bytearray()

    def read(chunk: bytes) -> bytes | None:
        buf.extend(chunk)
        return bytes(buf[: buf.index(b"\n")]) if b"\n" in buf else None

    return read


def pytest_sessionfinish(session, exitstatus):
    # a debugging aid: HALLCTL_TRAFFIC_DUMP=file.pickle keeps the run's traffic for a closer look
    dump = os.environ.get("HALLCTL_TRAFFIC_DUMP")
    if dump:
        import pickle

        with open(dump, "wb") as f:
            pickle.dump(traffic_recorder.TRAFFIC, f)
