"""A call at central is heard: window.call_next -> central -> queue event on a real Mosquitto ->
node -> voice caller app -> voice device -> a WAV file (the speaker's stand-in: no sound card
here), read back with ``wave``. And the technician's spoken test sentence through ``hallctl diag
run``, as a subprocess."""

from __future__ import annotations

import asyncio
import contextlib
import json
from pathlib import Path
from typing import Any, AsyncIterator

from conftest import PYTHON, spawn_env
from hallkit import HALL, Observer, Running, central
from test_voice_engines import FLOOR, make_tone_clips, read_wav, rms

from hallctl.bus.topics import Topics
from hallctl.config import parse_node_config
from hallctl.node.daemon import Node
from hallctl.profiles import load_profiles
from hallctl_drivers.voice import ClipVoice

T = Topics(HALL)
NODE = "voice-node"


@contextlib.asynccontextmanager
async def voice_node(broker: Any, tmp: Path, profile: str, options: dict[str, Any],
                     profile_dirs: list[str] | None = None) -> AsyncIterator[Node]:
    node = Node(parse_node_config({
        "node": {"id": NODE, "hall": HALL, "profile_dirs": profile_dirs or []},
        "mqtt": {"host": broker.host, "port": broker.port, "keepalive": 5},
        "store": {"path": str(tmp / f"{NODE}.db")},
        "device": [{"id": "voice", "profile": profile, "app": "voice_caller", "options": options}],
    }))
    run = Running(node)
    try:
        async with asyncio.timeout(10):
            await node.ready.wait()
            while not node.supervisor.get("voice").state.available:
                await asyncio.sleep(0.02)
        yield node
    finally:
        await run.stop()


async def _call(obs: Observer, action: str, data: dict, rid: str) -> dict:
    await obs.publish(T.central_req("clerk", action), {"v": 1, "request_id": rid, "data": data})
    res = (await obs.wait_for(T.central_res("clerk"), lambda d: d["request_id"] == rid))[0]
    assert res["status"] == "ok", res
    return res


async def _spoken(node: Node, count: int, timeout: float = 20) -> list:
    app = node.apps["voice"]
    async with asyncio.timeout(timeout):
        while len(app.spoken) < count:
            await asyncio.sleep(0.02)
    return list(app.spoken)


async def test_a_call_next_is_announced_in_mandarin(mosquitto, tmp_path):
    out = tmp_path / "out"
    async with central(mosquitto.host, mosquitto.port, tmp_path), \
            voice_node(mosquitto, tmp_path, "espeak-ng-mandarin", {"out_dir": str(out), "pace": False}) as node:
        async with Observer(mosquitto.host, mosquitto.port, [T.central_res("clerk"), T.node_birth(NODE)]) as obs:
            birth = (await obs.wait_for(T.node_birth(NODE)))[-1]
            (dev,) = birth["devices"]
            assert dev["kind"] == "voice_caller" and dev["actions"] == ["announce", "probe", "say"]
            assert dev["action_specs"]["say"]["test"] is True
            await _call(obs, "window.open", {"window": "2"}, "o")
            await _call(obs, "ticket.issue", {"queue": "b"}, "t")
            await _call(obs, "window.call_next", {"window": "2"}, "n")
            (spoken,) = await _spoken(node, 1)
    assert (spoken.number, spoken.window) == ("B001", "2")
    assert [p.name for p in out.iterdir()] == ["00001-B001-w2.wav"] and spoken.file == str(out / "00001-B001-w2.wav")
    rate, channels, _, samples = read_wav(spoken.file)
    # the chime, then "请B001号到2号窗口办理" twice with a pause between (the default rules)
    assert (rate, channels) == (22050, 1) and 6.0 < len(samples) / rate < 14.0
    assert spoken.duration_ms == round(len(samples) / rate * 1000)
    second = len(samples) - (len(samples) - rate) // 2  # the second saying, roughly
    for part in (samples[: rate // 2], samples[rate: second], samples[second:]):
        assert rms(part) > FLOOR


async def test_ten_calls_in_one_second_are_said_one_after_another_whole_and_in_call_order(mosquitto, tmp_path):
    """Ten windows call at once; the speaker (a WAV directory paced like a speaker: each
    announcement held for its length) says each call whole, one after another, in the order
    central made them."""
    out, profiles = tmp_path / "out", tmp_path / "profiles"
    tones = make_tone_clips(tmp_path / "tones", ms=10)
    profiles.mkdir()
    (profiles / "test-tone-clips.toml").write_text(
        'schema = 1\nvendor = "test"\nname = "tones"\nsource = "this test"\ninherits = "voice-clips"\n'
        "[settings]\ngap_ms = 5\n", encoding="utf-8")
    options = {"out_dir": str(out), "clips_dir": str(tones), "letters": "A", "repeat": 1}
    async with central(mosquitto.host, mosquitto.port, tmp_path, windows=10), \
            voice_node(mosquitto, tmp_path, "test-tone-clips", options, [str(profiles)]) as node:
        async with Observer(mosquitto.host, mosquitto.port, [T.central_res("clerk"), T.event("ticket.called")]) as obs:
            for w in range(1, 11):
                await _call(obs, "window.open", {"window": str(w)}, f"o{w}")
                await _call(obs, "ticket.issue", {"queue": "a"}, f"t{w}")
            await asyncio.gather(*(_call(obs, "window.call_next", {"window": str(w)}, f"n{w}") for w in range(1, 11)))
            events = sorted(await obs.wait_for(T.event("ticket.called"), count=10), key=lambda e: e["seq"])
            spoken = await _spoken(node, 10)
    order = [(e["data"]["number"], e["data"]["window"]) for e in events]
    assert [n for n, _ in order] == [f"A{i:03d}" for i in range(1, 11)]
    assert sorted(int(w) for _, w in order) == list(range(1, 11))
    assert [(s.number, s.window) for s in spoken] == order, "said in central's order"
    assert sorted(p.name for p in out.iterdir()) == [f"{i:05d}-{n}-w{w}.wav" for i, (n, w) in enumerate(order, 1)]
    for before, after in zip(spoken, spoken[1:]):
        assert after.started_monotonic >= before.started_monotonic + before.duration_ms / 1000 - 0.005, "none cut off"
    # each file is that announcement alone, sample for sample: said again on its own, it is the same
    solo = ClipVoice(load_profiles([profiles]).get("test-tone-clips").settings,
                     {"out_dir": str(tmp_path / "solo"), "pace": False, "clips_dir": str(tones), "letters": "A"})
    async with solo:
        for s in spoken:
            window = ["十"] if s.window == "10" else [s.window]  # a window's number is read as a number
            alone = await solo.execute("announce", {"parts": ["chime", "请", *s.number, "号", "到", *window, "号",
                                                              "窗口", "办理"]})
            assert read_wav(s.file)[3] == read_wav(alone["file"])[3], s


async def test_diag_run_say_speaks_the_test_sentence(mosquitto, tmp_path):
    out = tmp_path / "out"
    async with voice_node(mosquitto, tmp_path, "espeak-ng-mandarin", {"out_dir": str(out), "pace": False}):
        env = {**spawn_env(), "HALLCTL_BROKER": f"{mosquitto.host}:{mosquitto.port}", "HALLCTL_HALL": HALL}

        async def diag(*args: str) -> tuple[int, dict]:
            proc = await asyncio.create_subprocess_exec(PYTHON, "-m", "hallctl", "diag", "run", f"{NODE}/voice", *args,
                                                        "--json", env=env, stdout=asyncio.subprocess.PIPE)
            stdout, _ = await asyncio.wait_for(proc.communicate(), 60)
            return proc.returncode, json.loads(stdout)

        rc, listing = await diag()
        assert rc == 0 and listing["kind"] == "voice_caller" and listing["actions"]["say"]["test"] is True
        rc, said = await diag("say")
        assert rc == 0 and said["status"] == "ok", said
        rc, custom = await diag("say", "text=语音测试", "volume=50")
        assert rc == 1 and custom["error"]["code"] == "bad_request" and "volume" in custom["error"]["message"]
        rc, louder = await diag("announce", 'parts=["chime", "请", "A", "0", "0", "1", "号"]', "volume=80")
        assert rc == 0 and louder["data"]["volume"] == 80
    rate, _, _, samples = read_wav(said["data"]["file"])
    assert Path(said["data"]["file"]).name == "00001-say.wav" and rms(samples[rate:]) > FLOOR
    assert 2.0 < len(samples) / rate < 5.0  # the chime and "请A001号"
