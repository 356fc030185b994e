"""Shared fixtures: a real Mosquitto on a free loopback port, and an independent MQTT observer.

The observer uses aiomqtt directly (not hallctl's bus) so the tests check hallctl against an
outside client, the way another system would see it.
"""

from __future__ import annotations

import os
import sys
import textwrap
from pathlib import Path

import pytest

from hallctl.sim.mosquitto import MosquittoProcess

ROOT = Path(__file__).resolve().parent.parent


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
