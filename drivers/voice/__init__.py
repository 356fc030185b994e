"""Voice callers (有声叫号): Mandarin announcements to a speaker, or to WAV files.

Two engines read the same tokens (:mod:`.tokens`): :class:`TtsVoice` (pyttsx3 with espeak-ng,
in a worker process that is killed and restarted when it hangs) and :class:`ClipVoice` (the
hall's own recordings, joined). Split by job: :mod:`.audio` (PCM and WAV), :mod:`.sinks` (a
player or a WAV directory), :mod:`.driver` (the kind's actions, shared), :mod:`.tts`,
:mod:`.speech` and :mod:`.worker` (the speech process and its protocol), :mod:`.clips`.
"""

from hallctl_drivers.voice.clips import ClipVoice  # noqa: F401
from hallctl_drivers.voice.tts import TtsVoice  # noqa: F401
