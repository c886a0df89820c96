"""Speech to text and back against a local server speaking OpenAI's audio API, real audio."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from opencomputer.bot.media.audio import audio_seconds, is_ogg_opus, to_ogg_opus, to_wav
from opencomputer.bot.media.limits import MediaError
from opencomputer.bot.media.speech import (
    FasterWhisperTranscriber,
    OpenAISpeaker,
    OpenAITranscriber,
    SpeechError,
)
from opencomputer.bot.testing.fake_speech import FakeSpeechServer, sine_audio


@pytest.fixture
async def server() -> AsyncIterator[FakeSpeechServer]:
    async with FakeSpeechServer() as fake:
        yield fake


def test_telegram_ogg_opus_becomes_16k_mono_wav() -> None:
    ogg = sine_audio(1.5)  # what Telegram sends: OGG container, Opus at 48 kHz
    assert is_ogg_opus(ogg)
    wav = to_wav(ogg)
    assert wav[:4] == b"RIFF" and wav[8:12] == b"WAVE"
    assert audio_seconds(wav) == pytest.approx(1.5, abs=0.03)
    assert is_ogg_opus(to_ogg_opus(wav))


async def test_voice_note_is_uploaded_as_wav_and_transcribed(server: FakeSpeechServer) -> None:
    async with OpenAITranscriber(server.url, model="whisper-large-v3", language="en") as stt:
        text = await stt.transcribe(sine_audio(2.0), "audio/ogg")
    assert text == "2.0 seconds of audio"
    (heard,) = server.heard
    assert heard.fields == {
        "model": "whisper-large-v3",
        "response_format": "json",
        "language": "en",
    }
    assert (heard.filename, heard.content_type) == ("audio.wav", "audio/wav")
    assert (heard.codec, heard.rate, heard.channels) == ("pcm_s16le", 16000, 1)


async def test_unconverted_upload_keeps_the_original(server: FakeSpeechServer) -> None:
    url = f"{server.url}/audio/transcriptions"  # the full endpoint works as well as the base
    async with OpenAITranscriber(url, convert=False) as stt:
        await stt.transcribe(sine_audio(1.0), "audio/ogg")
    (heard,) = server.heard
    assert (heard.codec, heard.rate, heard.content_type) == ("opus", 48000, "audio/ogg")


async def test_not_audio_and_too_long_are_refused_before_upload(server: FakeSpeechServer) -> None:
    async with OpenAITranscriber(server.url, max_seconds=1.0) as stt:
        with pytest.raises(MediaError, match="not an audio file"):
            await stt.transcribe(b"%PDF-1.7 definitely not audio" * 50, "audio/ogg")
        with pytest.raises(MediaError, match="longer than 1 s"):
            await stt.transcribe(sine_audio(3.0), "audio/ogg")
        with pytest.raises(MediaError, match=r"damaged|not an audio"):
            await stt.transcribe(sine_audio(1.0)[:300], "audio/ogg")
    assert server.heard == []


async def test_huge_transcript_is_cut(server: FakeSpeechServer) -> None:
    server.transcriber = lambda heard: "word " * 100_000
    async with OpenAITranscriber(server.url, max_chars=500) as stt:
        text = await stt.transcribe(sine_audio(0.5), "audio/ogg")
    assert len(text) <= 500 and text.endswith("…")


async def test_server_error_is_one_line(server: FakeSpeechServer) -> None:
    server.status = 500
    async with OpenAITranscriber(server.url) as stt:
        with pytest.raises(SpeechError) as info:
            await stt.transcribe(sine_audio(0.5), "audio/ogg")
    assert str(info.value) == (
        f"the speech server at {server.url}/audio/transcriptions answered 500: model crashed"
    )


async def test_server_down_is_one_clear_error() -> None:
    server = FakeSpeechServer()
    url = await server.start()
    await server.stop()  # the port now refuses connections
    async with OpenAITranscriber(url) as stt:
        with pytest.raises(SpeechError, match=r"cannot reach the speech server .* OC_STT_URL"):
            await stt.transcribe(sine_audio(0.5), "audio/ogg")


async def test_stalled_server_times_out(server: FakeSpeechServer) -> None:
    server.stall = True
    async with OpenAITranscriber(server.url, timeout=0.5) as stt:
        with pytest.raises(SpeechError, match=r"did not answer within 0\.5 s"):
            await stt.transcribe(sine_audio(0.5), "audio/ogg")


@pytest.mark.parametrize("answer", ["opus", "wav", "mp3"])
async def test_speech_comes_back_as_ogg_opus(server: FakeSpeechServer, answer: str) -> None:
    server.speech_format = answer
    async with OpenAISpeaker(server.url, voice="nova") as tts:
        voice = await tts.synthesize("Hello there")
    assert is_ogg_opus(voice)
    assert audio_seconds(voice) == pytest.approx(0.5, abs=0.05)
    assert server.speech_requests == [
        {"model": "tts-1", "input": "Hello there", "voice": "nova", "response_format": "opus"}
    ]


async def test_speech_server_401_says_key(server: FakeSpeechServer) -> None:
    server.status = 401
    async with OpenAISpeaker(server.url) as tts:
        with pytest.raises(SpeechError, match=r"answered 401: .*check its API key"):
            await tts.synthesize("hi")


async def test_in_process_engine_missing_says_what_to_install() -> None:
    pytest.importorskip("numpy")
    try:
        import faster_whisper  # noqa: F401

        pytest.skip("faster-whisper is installed here")
    except ImportError:
        pass
    stt = FasterWhisperTranscriber("tiny")
    with pytest.raises(SpeechError, match=r"pip install 'opencomputer\[whisper\]'"):
        await stt.transcribe(sine_audio(0.5), "audio/ogg")
