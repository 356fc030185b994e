"""The voice drivers on their own: espeak-ng through pyttsx3 in a worker process, and clips joined
from recordings, each writing WAV files that are read back here with the standard ``wave``
module. A worker is hung for real (SIGSTOP) and killed for real (SIGKILL). The clips are made
in the test: spoken ones by the espeak-ng command line, short tones by sox.

Other voice tests import the helpers below (``make_speech_clips``, ``make_tone_clips``,
``read_wav``, ``rms``)."""

from __future__ import annotations

import asyncio
import json
import math
import os
import signal
import subprocess
import wave
from array import array
from pathlib import Path

import pytest
from conftest import PYTHON, ROOT, spawn_env, write_toml
from hypothesis import given, settings, strategies as st

from hallctl.errors import BadRequest, ConfigError, DeviceOffline, DeviceTimeout
from hallctl.profiles import load_profiles
from hallctl_drivers.voice import ClipVoice, TtsVoice
from hallctl_drivers.voice.protocol import RequestError, parse_answer, parse_request
from hallctl_drivers.voice.tokens import DIGIT_CHARS, STANDARD, segment, split_text

#: RMS of 16-bit samples above which a stretch of audio is sound, not silence
FLOOR = 300
#: "请A012号到5号窗口办理" with the chime, as the app sends it (repeat 1)
A012_AT_5 = ["chime", "请", "A", "0", "1", "2", "号", "到", "5", "号", "窗口", "办理"]


# -- helpers (shared with the other voice tests) ------------------------------------------------


def read_wav(path: str | Path) -> tuple[int, int, int, array]:
    """(rate, channels, sample width, samples) of a WAV file."""
    with wave.open(str(path), "rb") as w:
        samples = array("h")
        samples.frombytes(w.readframes(w.getnframes()))
        return w.getframerate(), w.getnchannels(), w.getsampwidth(), samples


def rms(samples: array | list[int]) -> float:
    return math.sqrt(sum(s * s for s in samples) / len(samples)) if len(samples) else 0.0


def _espeak_text(token: str) -> str:
    return DIGIT_CHARS.get(token, token)


def make_speech_clips(directory: Path, letters: str = "AB", extra: tuple[str, ...] = ()) -> Path:
    """One clip per token, spoken by the espeak-ng command line (16 kHz mono, as a hall might
    record), the chime a sox tone."""
    directory.mkdir(parents=True, exist_ok=True)
    for token in [*STANDARD, *letters, *extra]:
        out = directory / f"{token}.wav"
        if token == "chime":
            subprocess.run(["sox", "-n", "-r", "16000", "-c", "1", "-b", "16", str(out), "synth", "0.4", "sine", "1046.5",
                            "fade", "0", "0.4", "0.3"], check=True)
        else:
            raw = directory / f".{token}.raw.wav"
            subprocess.run(["espeak-ng", "-v", "cmn-latn-pinyin", "-w", str(raw), _espeak_text(token)], check=True)
            subprocess.run(["sox", str(raw), "-r", "16000", "-c", "1", "-b", "16", str(out)], check=True)
            raw.unlink()
    return directory


def make_tone_clips(directory: Path, letters: str = "AB", ms: int = 20) -> Path:
    """A short tone of its own pitch per token: fast announcements whose parts can be told apart."""
    directory.mkdir(parents=True, exist_ok=True)
    for i, token in enumerate([*STANDARD, *letters]):
        subprocess.run(["sox", "-n", "-r", "8000", "-c", "1", "-b", "16", str(directory / f"{token}.wav"), "synth",
                        f"{ms / 1000}", "sine", str(300 + 40 * i)], check=True)
    return directory


@pytest.fixture(scope="session")
def speech_clips(tmp_path_factory) -> Path:
    return make_speech_clips(tmp_path_factory.mktemp("speech-clips"), extra=("综合受理",))


def tts(out: Path, **options) -> TtsVoice:
    return TtsVoice(load_profiles().get("espeak-ng-mandarin").settings, {"out_dir": str(out), "pace": False, **options})


def clips(out: Path, clips_dir: Path, **options) -> ClipVoice:
    return ClipVoice(load_profiles().get("voice-clips").settings,
                     {"out_dir": str(out), "pace": False, "clips_dir": str(clips_dir), "letters": "AB", **options})


def gone(pid: int) -> bool:
    return not os.path.exists(f"/proc/{pid}")


# -- text to speech ------------------------------------------------------------------------------


async def test_espeak_says_the_call_as_espeak_ng_itself_does_after_a_chime(tmp_path):
    driver = tts(tmp_path / "out")
    async with driver:
        answer = await driver.execute("announce", {"parts": A012_AT_5, "id": "A012-w5"})
        assert (await driver.probe()).health.value == "ok"
    assert answer["file"] == str(tmp_path / "out" / "00001-A012-w5.wav") and answer["engine"] == "pyttsx3"
    rate, channels, width, samples = read_wav(answer["file"])
    assert (rate, channels, width) == (22050, 1, 2)
    assert answer["duration_ms"] == round(len(samples) / rate * 1000)
    chime, speech = samples[: rate // 2], samples[rate:]  # the chime is 1.0 s with its breath
    assert rms(chime) > FLOOR and rms(speech) > FLOOR
    # the same sentence from the espeak-ng command line, Mandarin voice, same speed: as long (the
    # "cmn" voice, which reads 号 as "hao four", would be almost a second longer)
    cli = tmp_path / "cli.wav"
    subprocess.run(["espeak-ng", "-v", "cmn-latn-pinyin", "-s", "160", "-w", str(cli), "请A零一二号到五号窗口办理"],
                   check=True)
    cli_len = len(read_wav(cli)[3]) / rate
    assert abs(len(speech) / rate - cli_len) < 0.1, (len(speech) / rate, cli_len)
    assert 2.5 < len(samples) / rate < 8.0


async def test_a_hung_worker_is_killed_restarted_and_the_announcement_still_said(tmp_path):
    """SIGSTOP stops the real worker process mid-life, as a pyttsx3 hang on a Pi does."""
    driver = tts(tmp_path / "out", synth_timeout_s=0.5)
    events: list[tuple[str, dict]] = []
    driver.on_event = lambda t, d: events.append((t, d))
    async with driver:
        hung = driver.worker.pid
        os.kill(hung, signal.SIGSTOP)
        answer = await driver.execute("announce", {"parts": A012_AT_5, "id": "after-hang"})
        assert gone(hung) and driver.worker.pid != hung
        assert events == [("engine_restarted", {"engine": "pyttsx3", "retry": True,
                                                "reason": "hung: no answer to the synthesis within 0.5 s"})]
        # ... and the next announcement goes on as usual
        second = await driver.execute("announce", {"parts": ["请", "B", "0", "0", "7", "号"], "id": "next"})
    for file in (answer["file"], second["file"]):
        rate, _, _, samples = read_wav(file)
        assert rms(samples) > FLOOR and len(samples) / rate > 1.0


async def test_a_dead_worker_is_restarted_before_the_next_announcement(tmp_path):
    driver = tts(tmp_path / "out")
    events: list[tuple[str, dict]] = []
    driver.on_event = lambda t, d: events.append((t, d))
    async with driver:
        dead = driver.worker.pid
        os.kill(dead, signal.SIGKILL)
        await asyncio.sleep(0.1)
        answer = await driver.execute("say", {"text": "测试"})
        assert driver.worker.pid != dead and driver.restarts == 1
    assert events and events[0][0] == "engine_restarted" and events[0][1]["retry"] is True
    assert "exited" in events[0][1]["reason"] or "not running" in events[0][1]["reason"]
    assert rms(read_wav(answer["file"])[3]) > FLOOR


async def test_a_worker_that_hangs_again_after_its_restart_is_a_coded_timeout(tmp_path):
    driver = tts(tmp_path / "out", synth_timeout_s=0.5)
    stopped: list[int] = []

    def hang_the_new_one_too(type_: str, data: dict) -> None:
        stopped.append(driver.worker.pid)
        os.kill(driver.worker.pid, signal.SIGSTOP)

    async with driver:
        os.kill(driver.worker.pid, signal.SIGSTOP)
        driver.on_event = hang_the_new_one_too
        with pytest.raises(DeviceTimeout, match="speech engine failed twice") as err:
            await driver.execute("announce", {"parts": A012_AT_5})
        assert err.value.code == "timeout" and len(stopped) == 1 and gone(stopped[0])
    # the node restarts a device whose command timed out: a fresh start speaks again
    driver.on_event = None
    async with driver:
        answer = await driver.execute("announce", {"parts": ["请", "A", "1", "号"]})
    assert rms(read_wav(answer["file"])[3]) > FLOOR


async def test_a_voice_espeak_ng_lacks_is_a_start_failure_with_the_reason(tmp_path):
    settings = {**load_profiles().get("espeak-ng-mandarin").settings, "voice": "no-such-voice"}
    driver = TtsVoice(settings, {"out_dir": str(tmp_path)})
    with pytest.raises(DeviceOffline, match="espeak-ng has no voice 'no-such-voice'"):
        await driver.start()
    await driver.stop()


def test_the_worker_answers_garbage_with_errors_and_then_still_speaks(tmp_path):
    lines = [b"\xff\xfe garbage", b"[1, 2]", b'{"id": 1}', b'{"id": -4, "ping": true}',
             b'{"id": 2, "text": "", "path": "/tmp/x.wav"}', b'{"id": 3, "text": "x", "path": "relative.wav"}',
             json.dumps({"id": 4, "text": "请A零零一号", "path": str(tmp_path / "ok.wav")}, ensure_ascii=False).encode()]
    proc = subprocess.run([PYTHON, "-m", "hallctl_drivers.voice.worker", "--voice", "cmn-latn-pinyin", "--rate", "160"],
                          input=b"\n".join(lines) + b"\n", capture_output=True, timeout=30, env=spawn_env())
    answers = [json.loads(line) for line in proc.stdout.splitlines()]
    assert len(answers) == 8, (answers, proc.stderr)
    assert proc.returncode == 0 and answers[0]["ready"] is True and answers[0]["voice"] == "sit/cmn-latn-pinyin"
    assert [a["ok"] for a in answers[1:]] == [False] * 6 + [True], (answers, proc.stderr)
    assert [a["id"] for a in answers[1:]] == [None, None, 1, None, 2, 3, 4]
    assert rms(read_wav(tmp_path / "ok.wav")[3]) > FLOOR


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.binary(max_size=200), st.text(max_size=200).map(str.encode),
                 st.dictionaries(st.sampled_from(["id", "text", "path", "ping", "x"]),
                                 st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=20)),
                                 max_size=4).map(lambda d: json.dumps(d).encode())))
def test_protocol_lines_never_crash_either_side(line):
    try:
        req = parse_request(line)
    except RequestError:
        pass
    else:
        assert req.ping or (req.text and req.path and os.path.isabs(req.path))
    try:
        assert isinstance(parse_answer(line), dict)
    except ValueError:
        pass


# -- clips ---------------------------------------------------------------------------------------


async def test_clips_are_joined_exactly_as_recorded(tmp_path, speech_clips):
    driver = clips(tmp_path / "out", speech_clips)
    async with driver:
        answer = await driver.execute("announce", {"parts": A012_AT_5, "id": "A012-w5"})
        # a window name with a recorded word: the fewest recordings that spell it
        named = await driver.execute("announce", {"parts": ["到", "综", "合", "受", "理", "窗口"], "id": "named"})
    rate, channels, width, samples = read_wav(answer["file"])
    gap = array("h", [0] * (rate * 30 // 1000))  # the profile's gap_ms between two clips
    expected = array("h")
    for i, token in enumerate(A012_AT_5):
        if i:
            expected += gap
        expected += read_wav(speech_clips / f"{token}.wav")[3]
    assert (rate, channels, width) == (16000, 1, 2) and samples == expected
    assert 2.0 < len(samples) / rate < 10.0 and rms(samples) > FLOOR
    joined = array("h")
    for i, token in enumerate(["到", "综合受理", "窗口"]):
        joined += (gap if i else array("h")) + read_wav(speech_clips / f"{token}.wav")[3]
    assert read_wav(named["file"])[3] == joined


async def test_a_word_without_a_recording_is_refused_naming_the_file(tmp_path, speech_clips):
    driver = clips(tmp_path / "out", speech_clips)
    async with driver:
        with pytest.raises(BadRequest, match=f"add {speech_clips}/楼.wav"):
            await driver.execute("announce", {"parts": ["请", "到", "2", "楼"]})
        with pytest.raises(BadRequest, match="no recording for 'C'"):
            await driver.execute("announce", {"parts": ["C", "1"]})
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir()), "nothing half said"


def test_a_missing_clip_is_a_config_error_naming_the_file(tmp_path, speech_clips):
    partial = tmp_path / "clips"
    partial.mkdir()
    for f in speech_clips.glob("*.wav"):
        if f.name != "窗口.wav":
            (partial / f.name).write_bytes(f.read_bytes())
    with pytest.raises(ConfigError) as err:
        clips(tmp_path / "out", partial)
    assert err.value.key == "options.clips_dir" and f"missing clip {partial}/窗口.wav for '窗口'" in err.value.message
    (partial / "窗口.wav").write_bytes(b"RIFF junk")
    with pytest.raises(ConfigError, match="窗口.wav: not a PCM WAV file"):
        clips(tmp_path / "out", partial)
    subprocess.run(["sox", "-n", "-r", "22050", "-c", "1", "-b", "16", str(partial / "窗口.wav"),
                    "synth", "0.1", "sine", "440"], check=True)
    with pytest.raises(ConfigError, match="窗口.wav is 22050 Hz, mono, 16-bit, .* is 16000 Hz"):
        clips(tmp_path / "out", partial)
    with pytest.raises(ConfigError, match="missing clip .*/C.wav for 'C'"):
        clips(tmp_path / "out", speech_clips, letters="ABC")


def test_a_node_whose_clips_are_incomplete_exits_78_naming_the_file(tmp_path, speech_clips):
    path = write_toml(tmp_path / "node.toml", f"""
        [node]
        id = "voice-node"
        hall = "test-hall"
        [mqtt]
        host = "127.0.0.1"
        port = 1
        [store]
        path = "voice-node.db"
        [[device]]
        id = "voice"
        profile = "voice-clips"
        app = "voice_caller"
        [device.options]
        clips_dir = "{speech_clips}"
        letters = "ABZ"
        """)
    proc = subprocess.run([PYTHON, "-m", "hallctl", "node", "-c", str(path)], capture_output=True, text=True,
                          timeout=60, env=spawn_env(), cwd=ROOT)
    assert proc.returncode == 78, proc.stderr
    assert f"{path}: device[0].options.clips_dir" in proc.stderr and f"{speech_clips}/Z.wav" in proc.stderr


# -- outputs and volume ----------------------------------------------------------------------------


async def test_volume_scales_the_samples_by_the_square_law(tmp_path, speech_clips):
    driver = clips(tmp_path / "out", speech_clips)
    async with driver:
        full = await driver.execute("announce", {"parts": A012_AT_5})
        half = await driver.execute("announce", {"parts": A012_AT_5, "volume": 50})
        mute = await driver.execute("announce", {"parts": A012_AT_5, "volume": 0})
    loud, soft = read_wav(full["file"])[3], read_wav(half["file"])[3]
    assert len(loud) == len(soft) and list(soft) == [int(s * 0.25) for s in loud]
    assert half["volume"] == 50 and rms(read_wav(mute["file"])[3]) == 0


async def test_wav_files_are_numbered_on_after_the_ones_already_there(tmp_path, speech_clips):
    out = tmp_path / "out"
    out.mkdir()
    (out / "00041-A001-w1.wav").write_bytes(b"")
    async with clips(out, speech_clips) as driver:
        answer = await driver.execute("say", {})
    assert Path(answer["file"]).name == "00042-say.wav"
    assert sorted(p.name for p in out.iterdir()) == ["00041-A001-w1.wav", "00042-say.wav"]


async def test_a_player_gets_the_whole_announcement_and_one_that_hangs_is_killed(tmp_path, speech_clips):
    """The player is any command reading a WAV on stdin (aplay on the Pi; sox here: no sound card)."""
    played = tmp_path / "played.wav"
    driver = ClipVoice(load_profiles().get("voice-clips").settings,
                       {"clips_dir": str(speech_clips), "letters": "AB",
                        "player": ["sox", "-q", "-t", "wav", "-", str(played)]})
    async with driver:
        answer = await driver.execute("announce", {"parts": A012_AT_5})
        probe = await driver.probe()
    assert "file" not in answer and probe.health.value == "ok" and probe.detail["output"] == "sox on default"
    assert len(read_wav(played)[3]) / 16000 * 1000 == pytest.approx(answer["duration_ms"], abs=1)

    stuck = ClipVoice(load_profiles().get("voice-clips").settings,
                      {"clips_dir": str(speech_clips), "letters": "AB", "player": ["sleep", "60"]})
    async with stuck:
        stuck.sink.margin_s = 0.2  # the driver allows 3 s beyond the announcement's end; shortened here
        with pytest.raises(DeviceTimeout, match="had not finished a 0.4 s announcement"):
            await stuck.execute("announce", {"parts": ["chime"]})

    missing = ClipVoice(load_profiles().get("voice-clips").settings,
                        {"clips_dir": str(speech_clips), "letters": "AB", "player": ["aplay-not-here"]})
    with pytest.raises(DeviceOffline, match="player 'aplay-not-here' not found"):
        await missing.start()


# -- tokens ---------------------------------------------------------------------------------------


def test_text_splits_into_tokens_and_words():
    assert split_text("请A012号，到 5号窗口。") == ["请", "A", "0", "1", "2", "号", ",", "到", "5", "号窗口", ","]
    assert segment("号窗口", {"号", "窗", "口", "窗口"}) == ["号", "窗口"]
    assert segment("abc", {"ab", "a", "bc"}) == ["a", "bc"]  # not stuck on the greedy "ab"
    assert segment("号楼", {"号"}) == 1


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=40), st.sets(st.text(min_size=1, max_size=3), max_size=12))
def test_segmenting_spells_the_text_or_names_where_it_fails(text, words):
    found = segment(text, words)
    if isinstance(found, list):
        assert "".join(found) == text and all(w in words for w in found)
    else:
        assert 0 <= found < len(text)
        assert segment(text[found:], words) == 0
    tokens = split_text(text)
    assert all(t and not any(ord(c) < 32 for c in t) for t in tokens)
