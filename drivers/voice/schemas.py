"""Options and settings of the voice drivers (JSON Schema, checked by the node at start)."""

from __future__ import annotations

from typing import Any

from hallctl_drivers.voice.tokens import STANDARD

#: what both engines take: where the sound goes, and the volume when an announcement names none
OUTPUT_OPTIONS: dict[str, Any] = {
    "out_dir": {"type": "string", "minLength": 1,
                "description": "write each announcement to this directory as a WAV file (00001-A012-w5.wav) "
                               "instead of playing it: tests, the demo's --out"},
    "pace": {"type": "boolean", "default": True,
             "description": "with out_dir: hold each announcement for as long as it lasts, as a speaker does"},
    "alsa_device": {"type": "string", "minLength": 1, "default": "default",
                    "description": "the ALSA device the player opens, e.g. plughw:1,0 for a USB speaker"},
    "player": {"type": "array", "minItems": 1, "items": {"type": "string", "minLength": 1},
               "default": ["aplay", "-q", "-D", "{device}", "-t", "wav", "-"],
               "description": "the command that plays a WAV file from its standard input; {device} is alsa_device"},
    "default_volume": {"type": "integer", "minimum": 0, "maximum": 100, "default": 100,
                       "description": "volume of an announcement that names none (100: as synthesised or recorded)"},
}

_TIMING: dict[str, Any] = {
    "pause_ms": {"type": "integer", "minimum": 0, "maximum": 3000, "default": 500,
                 "description": "silence for a pause token (between the repeats of a call)"},
}

TTS_SETTINGS: dict[str, Any] = {
    "type": "object",
    "properties": {
        "voice": {"type": "string", "minLength": 1, "description": "espeak-ng voice (id, its last part, or name)"},
        "rate": {"type": "integer", "minimum": 80, "maximum": 450, "description": "words per minute"},
        "synth_timeout_s": {"type": "number", "minimum": 0.5, "maximum": 60, "default": 10.0,
                            "description": "longest one synthesis may take before the worker counts as hung"},
        "start_timeout_s": {"type": "number", "minimum": 0.5, "maximum": 60, "default": 10.0},
        **_TIMING,
    },
    "required": ["voice", "rate"],
    "additionalProperties": False,
}

TTS_OPTIONS: dict[str, Any] = {
    "type": "object",
    "properties": {
        **OUTPUT_OPTIONS,
        "synth_timeout_s": {"type": "number", "minimum": 0.5, "maximum": 60,
                            "description": "overrides the profile's (a slow Pi)"},
    },
    "additionalProperties": False,
}

CLIP_SETTINGS: dict[str, Any] = {
    "type": "object",
    "properties": {
        "required": {"type": "array", "items": {"type": "string", "minLength": 1}, "default": list(STANDARD),
                     "description": "tokens every clip set must have (letters come from the letters option)"},
        "gap_ms": {"type": "integer", "minimum": 0, "maximum": 1000, "default": 30,
                   "description": "silence between two clips"},
        **_TIMING,
    },
    "additionalProperties": False,
}

CLIP_OPTIONS: dict[str, Any] = {
    "type": "object",
    "properties": {
        **OUTPUT_OPTIONS,
        "clips_dir": {"type": "string", "minLength": 1,
                      "description": "the hall's recordings, one WAV per token: chime.wav, 0.wav .. 9.wav, A.wav, "
                                     "号.wav, 窗口.wav ..."},
        "letters": {"type": "string", "pattern": "^[A-Z]*$", "default": "ABCDEFGHIJKLMNOPQRSTUVWXYZ",
                    "x-pattern-hint": "capital letters, e.g. \"ABC\": the letters the hall's ticket numbers use",
                    "description": "the letters the hall's ticket numbers use: each needs its clip"},
        "extra_clips": {"type": "array", "items": {"type": "string", "minLength": 1},
                        "description": "more tokens that must have a clip: the words of the hall's own templates "
                                       "and window names"},
        "clip_files": {"type": "object", "additionalProperties": {"type": "string", "minLength": 1},
                       "description": "token -> file name in clips_dir, for recordings not named <token>.wav"},
    },
    "required": ["clips_dir"],
    "additionalProperties": False,
}
