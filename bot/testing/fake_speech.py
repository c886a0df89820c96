"""A fake OpenAI-compatible audio server: ``/v1/audio/transcriptions`` and ``/v1/audio/speech``.

It speaks the real wire format: a multipart upload with the fields ``file``, ``model`` and
``response_format``, answered ``{"text": ...}``; a JSON speech request answered with audio bytes.
The uploaded file is decoded with PyAV on the server side, as a real server would, and what was
heard (sample rate, channels, seconds) is recorded, so a test asserts on real audio.
"""

from __future__ import annotations

import asyncio
import io
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

import av
import orjson
from aiohttp import web

from opencomputer.bot.testing.fake_server import FakeServer

__all__ = ["FakeSpeechServer", "Heard", "sine_audio"]


@dataclass(frozen=True, slots=True)
class Heard:
    """One upload as the server decoded it."""

    fields: dict[str, str]
    filename: str
    content_type: str
    codec: str
    rate: int
    channels: int
    seconds: float


def sine_audio(
    seconds: float, *, fmt: str = "ogg", codec: str = "libopus", rate: int = 48000
) -> bytes:
    """A real encoded recording (a 440 Hz tone): OGG/Opus by default, as Telegram sends."""
    import numpy as np

    out = io.BytesIO()
    with av.open(out, mode="w", format=fmt) as container:
        stream = cast(av.AudioStream, container.add_stream(codec, rate=rate))
        stream.layout = "mono"
        t = np.arange(int(seconds * rate)) / rate
        pcm = (np.sin(2 * math.pi * 440 * t) * 12000).astype(np.int16).reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(pcm, format="s16", layout="mono")
        frame.sample_rate = rate
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return out.getvalue()


class FakeSpeechServer(FakeServer):
    """Transcribes to ``transcriber(heard)`` (default: the duration heard); speaks a tone."""

    path = "/v1"

    def __init__(self) -> None:
        super().__init__()
        self.heard: list[Heard] = []
        self.speech_requests: list[dict[str, Any]] = []
        self.transcriber: Callable[[Heard], str] = lambda h: f"{h.seconds:.1f} seconds of audio"
        self.status = 200
        """An error status to answer every request with (a broken server)."""
        self.stall = False
        """Accept the request, then send nothing until the server stops (a hung server)."""
        self.speech_format = "opus"
        """What ``/audio/speech`` answers: ``opus`` (OGG/Opus), ``wav`` or ``mp3``."""
        self._release = asyncio.Event()

    def app(self) -> web.Application:
        """OpenAI's audio routes."""
        app = web.Application(client_max_size=64 * 2**20)
        app.add_routes(
            [
                web.post("/v1/audio/transcriptions", self._transcribe),
                web.post("/v1/audio/speech", self._speak),
            ]
        )
        return app

    async def stop(self) -> None:
        """Release stalled requests, then stop."""
        self._release.set()
        await super().stop()
        self._release = asyncio.Event()

    async def _fault(self) -> web.Response | None:
        if self.stall:
            await self._release.wait()
        if self.status >= 400:
            error = {"message": "model crashed", "type": "server_error", "code": None}
            return _json({"error": error}, status=self.status)
        return None

    async def _transcribe(self, request: web.Request) -> web.Response:
        form = await request.post()
        upload = form.get("file")
        if not isinstance(upload, web.FileField):
            return _json({"error": {"message": "field 'file' is required"}}, status=400)
        data = upload.file.read()
        try:
            heard = _decode(data, form, upload)
        except (av.error.FFmpegError, ValueError, IndexError) as exc:
            return _json({"error": {"message": f"invalid audio: {exc}"}}, status=400)
        self.heard.append(heard)
        fault = await self._fault()
        if fault is not None:
            return fault
        text = self.transcriber(heard)
        if heard.fields.get("response_format") == "text":
            return web.Response(text=text)
        return _json({"text": text})

    async def _speak(self, request: web.Request) -> web.Response:
        body = orjson.loads(await request.read())
        self.speech_requests.append(body)
        fault = await self._fault()
        if fault is not None:
            return fault
        if self.speech_format == "opus":
            audio, kind = sine_audio(0.5), "audio/ogg"
        elif self.speech_format == "wav":
            audio, kind = sine_audio(0.5, fmt="wav", codec="pcm_s16le", rate=24000), "audio/wav"
        else:
            audio, kind = sine_audio(0.5, fmt="mp3", codec="libmp3lame", rate=24000), "audio/mpeg"
        return web.Response(body=audio, content_type=kind)


def _decode(data: bytes, form: Any, upload: web.FileField) -> Heard:
    with av.open(io.BytesIO(data), mode="r") as container:
        stream = container.streams.audio[0]
        samples = sum(frame.samples for frame in container.decode(stream))
        rate = stream.codec_context.sample_rate
        fields = {k: str(v) for k, v in form.items() if k != "file"}
        return Heard(
            fields=fields,
            filename=upload.filename,
            content_type=upload.content_type,
            codec=stream.codec_context.name,
            rate=rate,
            channels=stream.codec_context.channels,
            seconds=samples / rate,
        )


def _json(data: dict[str, Any], *, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json")
