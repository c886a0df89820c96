"""Speech to text and text to speech, each behind one small interface.

Back-ends: any server speaking OpenAI's audio API (``POST /v1/audio/transcriptions``, multipart:
``file``, ``model``, ``response_format``; ``POST /v1/audio/speech``, JSON) -- whisper.cpp's
server, faster-whisper servers (speaches), vLLM, LocalAI, OpenAI itself -- and, as the
``whisper`` extra, faster-whisper in this process, or, as the ``stt-local`` extra, PocketSphinx
(its wheel ships an English model). One long-lived aiohttp session per client
(``start``/``stop``). Every failure is a :class:`SpeechError` whose text is one line saying what
went wrong and what to check; the caller keeps the message for ``/retry``.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Protocol, Self

import aiohttp
import orjson

from opencomputer.bot.media.audio import decode_pcm, is_ogg_opus, to_ogg_opus, to_wav
from opencomputer.bot.media.limits import DEFAULT_MAX_AUDIO_SECONDS, MediaError

__all__ = [
    "FasterWhisperTranscriber",
    "OpenAISpeaker",
    "OpenAITranscriber",
    "PocketSphinxTranscriber",
    "Speaker",
    "SpeechError",
    "Transcriber",
]

logger = logging.getLogger(__name__)

_NETWORK = (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError)


class SpeechError(MediaError):
    """Transcription or synthesis failed; the text is one line for the user or the admin."""


class Transcriber(Protocol):
    """Turns a recording into text."""

    async def transcribe(self, audio: bytes, mime: str) -> str:
        """The words spoken in ``audio`` (``mime`` as sniffed, e.g. ``audio/ogg``)."""
        ...


class Speaker(Protocol):
    """Turns text into a voice note."""

    async def synthesize(self, text: str) -> bytes:
        """OGG/Opus audio of ``text`` being spoken."""
        ...


def _endpoint(url: str, path: str) -> str:
    """``url`` may be the API base (``http://host:8000/v1``) or the endpoint itself."""
    url = url.rstrip("/")
    return url if url.endswith(path) else f"{url}{path}"


class _AudioHttp:
    """The shared session and error wording of both OpenAI audio clients."""

    kind = "speech server"
    setting = "OC_STT_URL"

    def __init__(self, url: str, *, api_key: str | None, timeout: float, path: str) -> None:
        self.url = _endpoint(url, path)
        self.timeout = timeout
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        """Open the session."""
        if self._session is None:
            self._session = aiohttp.ClientSession(
                headers=self._headers,
                # sock_read: a server that stops sending is a stall, not a slow transcript
                timeout=aiohttp.ClientTimeout(
                    total=self.timeout, connect=5, sock_read=self.timeout
                ),
            )

    async def stop(self) -> None:
        """Close the session."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def _post(self, **kwargs: Any) -> tuple[bytes, str]:
        """POST to the endpoint; the body and its content type, or a one-line SpeechError."""
        if self._session is None:
            raise RuntimeError(f"{type(self).__name__}.start() was not called")
        try:
            async with self._session.post(self.url, **kwargs) as resp:
                body = await resp.read()
                if resp.status >= 400:
                    raise SpeechError(
                        f"the {self.kind} at {self.url} answered {resp.status}: "
                        f"{_error_text(body) or resp.reason}"
                        + (f"; check {self.setting}" if resp.status == 404 else "")
                        + ("; check its API key" if resp.status in (401, 403) else "")
                    )
                return body, resp.content_type
        except TimeoutError:
            raise SpeechError(
                f"the {self.kind} at {self.url} did not answer within {self.timeout:g} s"
            ) from None
        except _NETWORK as exc:
            raise SpeechError(
                f"cannot reach the {self.kind} at {self.url} ({type(exc).__name__}); "
                f"start it or fix {self.setting}"
            ) from None


class OpenAITranscriber(_AudioHttp):
    """``/v1/audio/transcriptions`` on any OpenAI-compatible server (``OC_STT_URL``).

    The audio is decoded first (proving it is audio, enforcing ``max_seconds``) and sent as
    16 kHz mono WAV, which every such server accepts; ``convert=False`` sends the original
    bytes instead (servers that take OGG/Opus themselves, to save the upload).
    """

    def __init__(
        self,
        url: str,
        *,
        model: str = "whisper-1",
        api_key: str | None = None,
        language: str | None = None,
        timeout: float = 120.0,
        max_seconds: float = DEFAULT_MAX_AUDIO_SECONDS,
        max_chars: int = 8000,
        convert: bool = True,
    ) -> None:
        super().__init__(url, api_key=api_key, timeout=timeout, path="/audio/transcriptions")
        self.model = model
        self.language = language
        self.max_seconds = max_seconds
        self.max_chars = max_chars
        self.convert = convert

    async def transcribe(self, audio: bytes, mime: str) -> str:
        """The transcript, at most ``max_chars`` characters (a cut one ends with "…")."""
        if self.convert:
            payload = await asyncio.to_thread(to_wav, audio, max_seconds=self.max_seconds)
            name, mime = "audio.wav", "audio/wav"
        else:
            await asyncio.to_thread(decode_pcm, audio, max_seconds=self.max_seconds)
            payload, name = audio, "audio." + (mime.split("/")[-1].split(";")[0] or "bin")
        form = aiohttp.FormData()
        form.add_field("file", payload, filename=name, content_type=mime)
        form.add_field("model", self.model)
        form.add_field("response_format", "json")
        if self.language:
            form.add_field("language", self.language)
        body, content_type = await self._post(data=form)
        return _cut(_transcript(body, content_type, self.url), self.max_chars)


class OpenAISpeaker(_AudioHttp):
    """``/v1/audio/speech`` on any OpenAI-compatible server (``OC_TTS_URL``), as OGG/Opus.

    ``opus`` is asked for; a server that answers MP3 or WAV anyway (many local ones do) is
    converted here, so the caller always gets a voice note.
    """

    kind = "text-to-speech server"
    setting = "OC_TTS_URL"

    def __init__(
        self,
        url: str,
        *,
        model: str = "tts-1",
        voice: str = "alloy",
        api_key: str | None = None,
        timeout: float = 120.0,
        max_chars: int = 4000,
    ) -> None:
        super().__init__(url, api_key=api_key, timeout=timeout, path="/audio/speech")
        self.model = model
        self.voice = voice
        self.max_chars = max_chars

    async def synthesize(self, text: str) -> bytes:
        """OGG/Opus of ``text`` (cut to ``max_chars``: OpenAI's own limit is 4096)."""
        request = {
            "model": self.model,
            "input": text[: self.max_chars],
            "voice": self.voice,
            "response_format": "opus",
        }
        body, _ = await self._post(
            data=orjson.dumps(request), headers={"Content-Type": "application/json"}
        )
        if is_ogg_opus(body):
            return body
        try:
            return await asyncio.to_thread(to_ogg_opus, body)
        except MediaError as exc:
            raise SpeechError(
                f"the {self.kind} at {self.url} sent no usable audio: {exc}"
            ) from None


class FasterWhisperTranscriber:
    """faster-whisper in this process (the ``whisper`` extra); the model loads on first use.

    ``model`` is a size name or a local folder; weights are never fetched during a turn when
    ``local_only`` is set (the default), so an offline server says what to install instead.
    """

    def __init__(
        self,
        model: str = "base",
        *,
        device: str = "auto",
        compute_type: str = "int8",
        local_only: bool = True,
        max_seconds: float = DEFAULT_MAX_AUDIO_SECONDS,
        max_chars: int = 8000,
    ) -> None:
        self.model_name = model
        self.device = device
        self.compute_type = compute_type
        self.local_only = local_only
        self.max_seconds = max_seconds
        self.max_chars = max_chars
        self._model: Any = None
        self._lock = asyncio.Lock()

    def _load(self) -> Any:
        try:
            from faster_whisper import WhisperModel
        except ImportError:
            raise SpeechError(
                "faster-whisper is not installed: pip install 'opencomputer[whisper]', "
                "or set OC_STT_URL to a speech server"
            ) from None
        try:
            return WhisperModel(
                self.model_name,
                device=self.device,
                compute_type=self.compute_type,
                local_files_only=self.local_only,
            )
        except Exception as exc:  # missing weights, bad device: one line, not a traceback
            raise SpeechError(
                f"the faster-whisper model {self.model_name!r} could not be loaded ({exc})"
            ) from None

    def _run(self, audio: bytes) -> str:
        import numpy as np

        pcm = decode_pcm(audio, max_seconds=self.max_seconds)
        samples = np.frombuffer(pcm, dtype=np.int16).astype(np.float32) / 32768.0
        segments, _info = self._model.transcribe(samples, beam_size=1)
        return " ".join(segment.text.strip() for segment in segments)

    async def transcribe(self, audio: bytes, mime: str) -> str:
        """The transcript (decoding and inference run in a worker thread)."""
        async with self._lock:  # one inference at a time: it already uses every core
            if self._model is None:
                self._model = await asyncio.to_thread(self._load)
            text = await asyncio.to_thread(self._run, audio)
        return _cut(text, self.max_chars)


class PocketSphinxTranscriber:
    """PocketSphinx in this process (the ``stt-local`` extra, ``OC_STT_ENGINE=pocketsphinx``).

    Its PyPI wheel ships the US English acoustic model, dictionary and language model, so it
    works offline from the install on, with nothing fetched ever. It is small and fast but far
    less accurate than Whisper (tests/media/test_speech_real.py measures it on synthetic
    speech): a fallback for servers without a speech server, English only. ``model_dir``,
    ``lm`` and ``dictionary`` point at another language's model files.
    """

    def __init__(
        self,
        *,
        model_dir: str | None = None,
        lm: str | None = None,
        dictionary: str | None = None,
        max_seconds: float = DEFAULT_MAX_AUDIO_SECONDS,
        max_chars: int = 8000,
    ) -> None:
        self.paths = {"hmm": model_dir, "lm": lm, "dict": dictionary}
        self.max_seconds = max_seconds
        self.max_chars = max_chars
        self._decoder: Any = None
        self._lock = asyncio.Lock()

    def _load(self) -> Any:
        try:
            from pocketsphinx import Decoder
        except ImportError:
            raise SpeechError(
                "pocketsphinx is not installed: pip install 'opencomputer[stt-local]', "
                "or set OC_STT_URL to a speech server"
            ) from None
        given = {key: value for key, value in self.paths.items() if value}
        try:  # the defaults are the model files inside the wheel
            return Decoder(samprate=16000, loglevel="FATAL", **given)
        except Exception as exc:  # a missing or broken model file: one line
            raise SpeechError(f"the pocketsphinx model could not be loaded ({exc})") from None

    def _run(self, audio: bytes) -> str:
        pcm = decode_pcm(audio, max_seconds=self.max_seconds)  # 16 kHz mono s16, as it wants
        decoder = self._decoder
        decoder.start_utt()
        # Streaming mode (live cepstral mean): on espeak-ng's speech, full_utt=True (batch
        # mean over the utterance) made nearly every word wrong.
        decoder.process_raw(pcm, full_utt=False)
        decoder.end_utt()
        hyp = decoder.hyp()
        return "" if hyp is None else str(hyp.hypstr)

    async def transcribe(self, audio: bytes, mime: str) -> str:
        """The transcript (decoding and recognition run in a worker thread, one at a time:
        the decoder holds one utterance's state).
        """
        async with self._lock:
            if self._decoder is None:
                self._decoder = await asyncio.to_thread(self._load)
            text = await asyncio.to_thread(self._run, audio)
        return _cut(text.strip(), self.max_chars)


def _transcript(body: bytes, content_type: str, url: str) -> str:
    """The text of a transcription answer: ``{"text": ...}``, or plain text from some servers."""
    if content_type == "application/json" or body.lstrip()[:1] == b"{":
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError:
            raise SpeechError(f"the speech server at {url} sent malformed JSON") from None
        if not isinstance(data, dict) or not isinstance(data.get("text"), str):
            raise SpeechError(f"the speech server at {url} sent no transcript (no 'text' field)")
        return str(data["text"]).strip()
    return body.decode("utf-8", errors="replace").strip()


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _error_text(body: bytes) -> str:
    """OpenAI's ``{"error": {"message"}}``, its variants, or the start of a plain body."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return body.decode(errors="replace").strip().splitlines()[0][:200] if body.strip() else ""
    if isinstance(data, dict):
        error = data.get("error")
        if isinstance(error, dict):
            return str(error.get("message") or error)[:200]
        return str(error or data.get("detail") or data.get("message") or data)[:200]
    return str(data)[:200]
