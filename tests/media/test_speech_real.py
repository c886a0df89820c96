# ruff: noqa: F811 (pytest fixtures imported from the Telegram tests are parameters here)
"""A real speech model on real speech: espeak-ng speaks, PocketSphinx transcribes.

Twenty fixed English sentences are synthesized by espeak-ng (Debian, installed by
scripts/system-deps.sh) and transcribed in this process by PocketSphinx (the ``stt-local``
extra; its PyPI wheel ships the US English model, so nothing is downloaded). The word error rate
is printed and held under a bound measured with margin: a regression in decoding, resampling or
the engine's settings moves it. A Telegram-style OGG/Opus voice note goes the same way, and one
is answered end to end from the real transcript.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Callable

import pytest

from opencomputer.bot.config import Settings
from opencomputer.bot.media.audio import is_ogg_opus, to_ogg_opus
from opencomputer.bot.media.limits import MediaError
from opencomputer.bot.media.speech import PocketSphinxTranscriber
from opencomputer.bot.testing import FakeOllama
from tests.media.test_turns_with_attachments import _file, _media, _settings, _settled, running
from tests.telegram.fake_bot_api import FakeBotApi
from tests.telegram.telegram_helpers import tg  # noqa: F401 (fixture)

SENTENCES = [
    "the quick brown fox jumps over the lazy dog",
    "i would like a cup of tea please",
    "please call me back tomorrow morning",
    "the weather is nice today",
    "what time does the meeting start",
    "can you send me the report by friday",
    "my phone number has changed",
    "we need to buy milk and bread",
    "the train leaves at seven o'clock",
    "how much does this cost",
    "remind me to water the plants",
    "i will be home late tonight",
    "where is the nearest station",
    "thank you very much for your help",
    "the children are playing in the garden",
    "turn off the lights in the kitchen",
    "let us meet for lunch next week",
    "this book is very interesting",
    "she works in a big hospital",
    "do you know the way to the airport",
]
WER_BOUND = 0.80
"""Measured 0.682 (espeak-ng 1.51, PocketSphinx 5.1.1): espeak-ng's formant voice is far from
the natural speech the model was trained on, and this small model is no Whisper. The bound
leaves room for other builds of both while still failing a broken pipeline (decoding the
whole utterance in batch mode scored 0.97; wrong sample rates score ~1.0)."""


def word_errors(reference: str, hypothesis: str) -> int:
    """Word-level edit distance: substitutions, insertions and deletions."""
    ref, hyp = reference.split(), hypothesis.split()
    row = list(range(len(hyp) + 1))
    for i, word in enumerate(ref, 1):
        prev, row[0] = row[:], i
        for j, heard in enumerate(hyp, 1):
            row[j] = min(prev[j] + 1, row[j - 1] + 1, prev[j - 1] + (word != heard))
    return row[-1]


def wer(pairs: list[tuple[str, str]]) -> float:
    """Word error rate over (reference, hypothesis) pairs."""
    return sum(word_errors(r, h) for r, h in pairs) / sum(len(r.split()) for r, _ in pairs)


async def speak(text: str) -> bytes:
    """espeak-ng's US English voice saying ``text``, as a WAV file."""
    espeak = shutil.which("espeak-ng")
    assert espeak, "espeak-ng is missing: run scripts/system-deps.sh"
    proc = await asyncio.create_subprocess_exec(
        espeak, "-v", "en-us", "--stdout", text, stdout=asyncio.subprocess.PIPE
    )
    wav, _ = await proc.communicate()
    assert proc.returncode == 0 and wav[:4] == b"RIFF"
    return wav


def test_word_errors_counts_each_kind() -> None:
    assert word_errors("a b c", "a b c") == 0
    assert word_errors("a b c", "a x c") == 1  # substitution
    assert word_errors("a b c", "a c") == 1  # deletion
    assert word_errors("a b c", "a b c d e") == 2  # insertions
    assert wer([("a b", ""), ("c d", "c d")]) == 0.5


@pytest.mark.timeout(600)  # a real model: ~1 s a sentence alone, several times that on a busy box
async def test_word_error_rate_on_twenty_spoken_sentences() -> None:
    stt = PocketSphinxTranscriber()
    pairs = []
    for sentence in SENTENCES:
        pairs.append((sentence, await stt.transcribe(await speak(sentence), "audio/wav")))
    rate = wer(pairs)
    print(f"\nPocketSphinx WER on {len(pairs)} espeak-ng sentences: {rate:.3f}")
    for reference, heard in pairs:
        print(f"  {reference!r} -> {heard!r}")
    assert rate < WER_BOUND
    assert any(r == h for r, h in pairs)  # and some come through word for word


async def test_a_telegram_voice_note_is_transcribed_like_the_wav() -> None:
    stt = PocketSphinxTranscriber()
    wav = await speak(SENTENCES[1])
    ogg = await asyncio.to_thread(to_ogg_opus, wav)  # what Telegram sends: OGG/Opus, 48 kHz
    assert is_ogg_opus(ogg)
    heard = await stt.transcribe(ogg, "audio/ogg")
    print(f"\nOGG/Opus: {SENTENCES[1]!r} -> {heard!r}")
    assert word_errors(SENTENCES[1], heard) <= 2


async def test_noise_and_silence_are_not_words() -> None:
    stt = PocketSphinxTranscriber(max_seconds=2.0)
    silence = await speak("")  # espeak-ng writes a valid WAV with (almost) no speech
    assert len((await stt.transcribe(silence, "audio/wav")).split()) <= 1
    with pytest.raises(MediaError, match="longer than 2 s"):
        await stt.transcribe(await speak(" ".join(SENTENCES[:3])), "audio/wav")
    with pytest.raises(MediaError, match="not an audio file"):
        await stt.transcribe(b"RIFF\x00\x00\x00\x00WAVEjunk" * 20, "audio/wav")


@pytest.mark.timeout(600)
async def test_a_voice_note_is_answered_from_the_real_transcript(
    tg: FakeBotApi, fake_ollama: FakeOllama, make_settings: Callable[..., Settings]
) -> None:
    sentence = SENTENCES[1]
    ogg = await asyncio.to_thread(to_ogg_opus, await speak(sentence))
    expected = await PocketSphinxTranscriber().transcribe(ogg, "audio/ogg")
    assert word_errors(sentence, expected) <= 2
    voice = _file(tg, ogg, "voice/real.oga", duration=3, mime_type="audio/ogg")
    async with running(_settings(make_settings, tg, OC_STT_ENGINE="pocketsphinx")) as app:
        await tg.push(_media(tg, voice=voice))
        await tg.wait_for("sendMessage", count=2, within=300)  # the model loads in the turn
        shown = await _settled(tg, app, sends=2)
    assert shown == [f"🎙 heard: {expected}", f"echo: {expected}"]
    assert fake_ollama.chats[-1]["messages"][-1]["content"] == expected
