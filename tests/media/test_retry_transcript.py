# ruff: noqa: F811 (pytest fixtures imported from the Telegram tests are parameters here)
"""``/retry`` of a voice note reuses its transcript (bot/media/transcripts.py).

The transcript is kept with the stored message, so a turn run again after the model failed
neither downloads nor transcribes the recording again, nor shows "🎙 heard" twice.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from opencomputer.bot.config import Settings
from opencomputer.bot.media.transcripts import inbound_id_of
from opencomputer.bot.runtime import APOLOGY
from opencomputer.bot.storage.attachments import transcripts_from_json, with_transcript
from opencomputer.bot.testing import FakeOllama
from opencomputer.bot.testing.fake_speech import FakeSpeechServer
from tests.media.test_turns_with_attachments import CHAT, _settings, _settled, _voice, running
from tests.telegram.fake_bot_api import FakeBotApi
from tests.telegram.telegram_helpers import tg  # noqa: F401 (fixture)

STORED = json.dumps([{"kind": "image", "handle": "h1"}, {"kind": "audio", "handle": "h2"}])


def test_a_transcript_is_kept_on_its_own_attachment() -> None:
    kept = with_transcript(STORED, 1, "hello there")
    assert transcripts_from_json(kept) == {1: "hello there"}
    assert json.loads(kept or "")[0] == {"kind": "image", "handle": "h1"}  # others untouched


def test_damaged_or_foreign_stored_forms_keep_nothing() -> None:
    for stored in (None, "", "not json", "{}", '"text"', "[1, 2]"):
        assert with_transcript(stored, 0, "x") == stored
        assert transcripts_from_json(stored) == {}
    assert with_transcript(STORED, 2, "x") == STORED  # no such attachment
    assert with_transcript(STORED, -1, "x") == STORED
    assert transcripts_from_json('[{"transcript": 5}, {"transcript": "ok"}]') == {1: "ok"}


def test_only_stored_messages_have_a_key_to_keep_it_under() -> None:
    assert inbound_id_of("in42") == 42
    for key in (None, "", "in", "reply7", "in-3", "inx", "s0d9f"):
        assert inbound_id_of(key) is None


async def test_retry_after_a_model_failure_reuses_the_transcript(
    tg: FakeBotApi, fake_ollama: FakeOllama, make_settings: Callable[..., Settings]
) -> None:
    async with FakeSpeechServer() as speech:
        speech.transcriber = lambda _heard: "what is the capital of France"
        fake_ollama.reply(status=400, error="model crashed")  # the first answer fails
        async with running(_settings(make_settings, tg, OC_STT_URL=speech.url)) as app:
            await tg.push(_voice(tg, "voice/r1.oga"))
            shown = await _settled(tg, app, sends=2)
            assert shown == ["🎙 heard: what is the capital of France", APOLOGY]
            row = await app.store.last_failed(f"telegram:{CHAT}")
            assert row is not None
            assert transcripts_from_json(row.attachments) == {0: "what is the capital of France"}

            await tg.push(tg.message("/retry"))
            shown = await _settled(tg, app, sends=3)
    assert shown[2:] == ["echo: what is the capital of France"]  # no second "heard"
    assert len(speech.heard) == 1  # transcribed once across the retry
    assert tg.file_requests.count("voice/r1.oga") == 1  # and downloaded once
    assert fake_ollama.chats[-1]["messages"][-1]["content"] == "what is the capital of France"


async def test_a_failed_transcription_keeps_nothing_and_retry_transcribes(
    tg: FakeBotApi, fake_ollama: FakeOllama, make_settings: Callable[..., Settings]
) -> None:
    async with FakeSpeechServer() as speech:
        speech.status = 500
        async with running(_settings(make_settings, tg, OC_STT_URL=speech.url)) as app:
            await tg.push(_voice(tg, "voice/r2.oga"))
            [failure] = await _settled(tg, app, sends=1)
            assert failure.startswith("I could not transcribe your voice note")
            row = await app.store.last_failed(f"telegram:{CHAT}")
            assert row is not None and transcripts_from_json(row.attachments) == {}
            speech.status = 200
            speech.transcriber = lambda _heard: "second try"
            await tg.push(tg.message("/retry"))
            shown = await _settled(tg, app, sends=3)
    assert shown[1:] == ["🎙 heard: second try", "echo: second try"]
    assert len(speech.heard) == 2
