"""Spoken replies, per chat (the ``voice`` feature): ``/voice on`` reads answers aloud.

The choice is stored per conversation (``voice_replies``, migrations 0008 and 0011) so it survives
restarts and holds in every process; a person's direct chats' settings are in their
``/export`` and removed by ``/forget``. After a text answer was recorded and shown
(``oc_reply_sent``), a chat that has it on gets the answer synthesized by the OpenAI-compatible
text-to-speech server at ``OC_TTS_URL`` (:class:`~bot.media.speech.OpenAISpeaker`, OGG/Opus) and
sent as a voice note where the platform has them, an audio file elsewhere
(:func:`bot.outfiles.send_file`). The text answer always comes first and never waits on the
speech: a missing or failing server costs the voice note only (one log line).

Like files, a spoken reply is sent at most once: if the process dies before it is sent, the
recovered answer arrives as text only. The runtime awaits the observer, so the conversation's
next turn starts after the voice note is out (they never cross); other conversations and the
model are not held up.
"""

from __future__ import annotations

import logging
import re
import time
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, insert, or_, select
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import Field, SQLModel

from opencomputer.bot.commands import CommandContext, CommandRouter
from opencomputer.bot.events import ChatKind
from opencomputer.bot.hooks import DataRights, hookimpl
from opencomputer.bot.media.speech import OpenAISpeaker, Speaker, SpeechError
from opencomputer.bot.outfiles import OutFile, send_file

if TYPE_CHECKING:
    from opencomputer.bot.features import Host as App

__all__ = ["Voice", "VoiceReplies", "VoiceReplyRow", "setup", "speakable"]

logger = logging.getLogger(__name__)


class VoiceReplyRow(SQLModel, table=True):
    """A conversation whose answers are also spoken."""

    __tablename__ = "voice_replies"

    conversation: str = Field(primary_key=True, max_length=300)
    updated_at: float
    set_by: str | None = Field(
        default=None,
        max_length=300,
        description="The account (platform:id) that turned it on in a direct chat; NULL in "
        "a group, whose setting is the group's (migration 0011).",
    )


_T = VoiceReplyRow.__table__  # type: ignore[attr-defined]


class VoiceReplies:
    """Which conversations have spoken replies on (a row each)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def is_on(self, conversation: str) -> bool:
        """Whether answers in ``conversation`` (an address key) are spoken."""
        async with self.engine.connect() as conn:
            row = await conn.execute(
                select(_T.c.conversation).where(_T.c.conversation == conversation)
            )
            return row.first() is not None

    def _of(self, accounts: list[str]) -> Any:
        """Rows a person's accounts own: set by one of them in a direct chat, or (rows from
        before ``set_by``) a conversation that is one of the accounts (a DM's chat id is the
        user id on most platforms).
        """
        return or_(_T.c.set_by.in_(accounts), _T.c.conversation.in_(accounts))

    async def export(self, _person: str, accounts: list[str]) -> dict[str, Any]:
        """``/export``: the person's direct chats that have spoken replies on."""
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                select(_T).where(self._of(accounts)).order_by(_T.c.conversation)
            )
            return {"voice_replies": [dict(row._mapping) for row in rows]}

    async def forget(self, _person: str, accounts: list[str]) -> str:
        """``/forget``: spoken replies off in the person's direct chats. A group's setting is
        the group's (anyone there may have turned it on) and stays.
        """
        async with self.engine.begin() as conn:
            gone = await conn.execute(delete(_T).where(self._of(accounts)))
        return "the spoken-replies setting of your direct chats" if gone.rowcount else ""

    async def set(self, conversation: str, on: bool, *, set_by: str | None = None) -> None:
        """Turn spoken replies on or off in ``conversation`` (``set_by``: the account that
        did, in a direct chat).
        """
        async with self.engine.begin() as conn:
            await conn.execute(delete(_T).where(_T.c.conversation == conversation))
            if on:
                await conn.execute(
                    insert(_T).values(
                        conversation=conversation, updated_at=time.time(), set_by=set_by
                    )
                )


_MARKUP = re.compile(r"```.*?```|`|\*\*|__|^#+\s*|^\s*[-*]\s+|\[([^\]]*)\]\([^)]*\)", re.S | re.M)


def speakable(markdown: str) -> str:
    """The answer as words to read: code blocks, emphasis marks and link targets left out."""

    def keep(match: re.Match[str]) -> str:
        return match.group(1) or ""

    return " ".join(_MARKUP.sub(keep, markdown).split())


class Voice:
    """The ``/voice`` command and the observer that speaks answers."""

    def __init__(self, app: App, replies: VoiceReplies, speaker: Speaker | None) -> None:
        self.app = app
        self.replies = replies
        self.speaker = speaker

    @hookimpl
    def oc_commands(self, router: CommandRouter) -> None:
        """Register ``/voice on|off``."""

        @router.command("voice", args="on|off")
        async def voice(ctx: CommandContext) -> str:
            """Read my answers aloud in this chat too (voice notes): /voice on or /voice off."""
            return await self.command(ctx)

    async def command(self, ctx: CommandContext) -> str:
        """Answer ``/voice [on|off]`` (no argument: say how it stands)."""
        key = ctx.event.address.key
        arg = ctx.args.strip().lower()
        if arg not in ("on", "off", ""):
            return "Send /voice on to hear my answers as voice notes here, /voice off to stop."
        if arg == "":
            state = "on" if await self.replies.is_on(key) else "off"
            return f"Spoken replies are {state} in this chat (/voice on or /voice off)."
        direct = ctx.event.chat.kind is ChatKind.DIRECT
        await self.replies.set(key, arg == "on", set_by=ctx.event.user.key if direct else None)
        if arg == "off":
            return "Spoken replies are off in this chat."
        if self.speaker is None:
            return (
                "Spoken replies are on in this chat, but no text-to-speech server is set up: "
                "the admin can set OC_TTS_URL to an OpenAI-compatible /v1/audio/speech server."
            )
        return "Spoken replies are on in this chat: each answer also comes as a voice note."

    @hookimpl
    async def oc_reply_sent(self, record: Any) -> None:
        """Speak a successful answer in a chat that asked for it."""
        if self.speaker is None or record.meta.failure or not record.text.strip():
            return
        if not await self.replies.is_on(record.address.key):
            return
        words = speakable(record.text)
        if not words:
            return
        try:
            audio = await self.speaker.synthesize(words)
        except Exception as exc:  # the text answer is out: a voice note is never worth a crash
            reason = str(exc) if isinstance(exc, SpeechError) else f"{type(exc).__name__}: {exc}"
            logger.warning("spoken reply in %s not made: %s", record.address.key, reason)
            return
        note = OutFile("reply.ogg", "audio/ogg", audio, voice=True)
        runtime = self.app.runtime
        reply_to = record.message.message_id or None
        await send_file(runtime.connectors, runtime.say, record.address, note, reply_to=reply_to)


async def setup(app: App) -> None:
    """Register ``/voice`` and the speaker; open the speech client when ``OC_TTS_URL`` is set."""
    settings = app.settings
    speaker: OpenAISpeaker | None = None
    if settings.tts_url:
        key = settings.tts_api_key.get_secret_value() if settings.tts_api_key else None
        speaker = OpenAISpeaker(
            settings.tts_url, model=settings.tts_model, voice=settings.tts_voice, api_key=key
        )
        await speaker.start()
        app.on_stop.append(speaker.stop)
    replies = VoiceReplies(app.store.engine)
    app.hooks.register(Voice(app, replies, speaker), "voice")
    app.hooks.register(DataRights(replies.forget, replies.export), "voice-data")
