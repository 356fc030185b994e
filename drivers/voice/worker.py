"""The speech worker: pyttsx3 (espeak-ng) in a process of its own, so a hung synthesis (pyttsx3
is known to hang on a Raspberry Pi: pyttsx3 issue #126) can be killed without touching the node.

    python -m hallctl_drivers.voice.worker --voice cmn-latn-pinyin --rate 160

Protocol: JSON lines, UTF-8. The worker first writes ``{"ready": true, "voice": ..., "engine":
...}`` (or ``{"ready": false, "error": ...}`` and exits 1), then answers each request line in turn:

    {"id": 1, "text": "请A零一二号", "path": "/tmp/x/seg.wav"}  ->  {"id": 1, "ok": true}
    {"id": 2, "ping": true}                                   ->  {"id": 2, "ok": true}
    anything else                                             ->  {"id": <its id or null>, "ok": false, "error": "..."}

pyttsx3 prints to standard output on its own ("Audio saved to ..."), so the protocol runs on a
copy of the original stdout and fd 1 goes to /dev/null.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
from typing import Any, TextIO

from hallctl_drivers.voice.protocol import RequestError, parse_request

#: the worker's own bound on one synthesis; the driver's synth_timeout_s is shorter and kills it first
FINISH_WAIT_S = 120.0


def find_voice(voices: list[Any], wanted: str) -> Any | None:
    """The pyttsx3 voice whose id (``sit/cmn-latn-pinyin``), its last part or its name is ``wanted``."""
    w = wanted.lower()
    for v in voices:
        vid = str(v.id).lower()
        if w in (vid, vid.rsplit("/", 1)[-1], str(v.name).lower()):
            return v
    return None


#: syntheses of one text before "no audio" is an error (see Speaker.synth)
SYNTH_ATTEMPTS = 3


class NoAudio(RuntimeError):
    """The engine finished without writing any samples."""


class Speaker:
    """pyttsx3's espeak driver, one voice and rate, synthesising to WAV files."""

    def __init__(self, voice: str, rate: int) -> None:
        import pyttsx3  # here: the node never imports it, only this process does

        self.engine = pyttsx3.init("espeak")
        found = find_voice(self.engine.getProperty("voices"), voice)
        if found is None:
            raise LookupError(f"espeak-ng has no voice {voice!r}")
        self.engine.setProperty("voice", found.id)
        self.engine.setProperty("rate", rate)
        self.rate = rate
        self.voice = str(found.id)
        self.version = getattr(pyttsx3, "__version__", "") or _dist_version("pyttsx3")
        # pyttsx3 2.99's espeak driver synthesises in espeak's own thread (AUDIO_OUTPUT_RETRIEVAL
        # is asynchronous) and its runAndWait returns after one 10 ms turn of its loop: the file is
        # written later, when espeak says the message ended. Wait for that, not for runAndWait.
        self._finished = threading.Event()
        self.engine.connect("finished-utterance", lambda name=None, completed=True: self._finished.set())

    def synth(self, text: str, path: str) -> None:
        # pyttsx3 2.99 writes the file when espeak's end-of-message event arrives and appends that
        # callback's samples only after writing: when they all come in that one callback, the file
        # is empty (seen in about 1 synthesis in 30 under load). Saying it again is the cure.
        for attempt in range(SYNTH_ATTEMPTS):
            try:
                self._synth_once(text, path)
                return
            except NoAudio:
                if attempt == SYNTH_ATTEMPTS - 1:
                    raise

    def _synth_once(self, text: str, path: str) -> None:
        if os.path.exists(path):
            os.unlink(path)
        self._finished.clear()
        # Again before each one: espeak applies a rate on its own thread, and the one set at start
        # was sometimes lost (2 first syntheses in 240 came out at pyttsx3's default 200 wpm
        # under load; none in 480 set this way).
        self.engine.setProperty("rate", self.rate)
        self.engine.save_to_file(text, path)
        self.engine.runAndWait()
        if not self._finished.wait(FINISH_WAIT_S):
            raise RuntimeError(f"espeak did not finish within {FINISH_WAIT_S:g} s")
        if not os.path.exists(path) or os.path.getsize(path) <= 44:
            raise NoAudio("the engine wrote no audio")


def _dist_version(name: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return "?"


def serve(speaker: Speaker, lines: Any, out: TextIO) -> None:
    for line in lines:
        if not line.strip():
            continue
        try:
            req = parse_request(line)
        except RequestError as exc:
            _send(out, {"id": exc.request_id, "ok": False, "error": str(exc)})
            continue
        if req.ping:
            _send(out, {"id": req.id, "ok": True})
            continue
        assert req.text is not None and req.path is not None
        try:
            speaker.synth(req.text, req.path)
        except Exception as exc:  # noqa: BLE001 - say what failed; the next request still runs
            _send(out, {"id": req.id, "ok": False, "error": f"{type(exc).__name__}: {exc}"})
        else:
            _send(out, {"id": req.id, "ok": True})


def _send(out: TextIO, doc: dict[str, Any]) -> None:
    out.write(json.dumps(doc, ensure_ascii=False) + "\n")
    out.flush()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hallctl_drivers.voice.worker")
    parser.add_argument("--voice", required=True)
    parser.add_argument("--rate", type=int, required=True)
    args = parser.parse_args(argv)
    out = os.fdopen(os.dup(1), "w", encoding="utf-8")
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    sys.stdout = open(1, "w", closefd=False)  # noqa: SIM115 - fd 1 is /dev/null for good
    try:
        speaker = Speaker(args.voice, args.rate)
    except Exception as exc:  # noqa: BLE001 - the driver shows it as the device's reason
        _send(out, {"ready": False, "error": f"{type(exc).__name__}: {exc}"})
        return 1
    _send(out, {"ready": True, "voice": speaker.voice, "engine": f"pyttsx3 {speaker.version}"})
    serve(speaker, iter(sys.stdin.buffer.readline, b""), out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
