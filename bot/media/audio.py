"""Audio decoding and conversion with PyAV (FFmpeg's libraries, bundled in its wheels).

Voice notes arrive as OGG/Opus (Telegram, WhatsApp), M4A/AAC (iOS), WebM, MP3 or WAV; speech
servers differ in what they accept (whisper.cpp's server takes only WAV unless started with
``--convert``), so audio is decoded here and sent as 16 kHz mono WAV, which every one of them
takes. Decoding also proves the bytes are audio, and the duration cap is enforced while
decoding, so a lying header cannot make us hold hours of samples. Replies go out as OGG/Opus,
the format messengers play as a voice note. All functions are blocking: call them in a thread.
"""

from __future__ import annotations

import io
import wave
from collections.abc import Iterator
from typing import TYPE_CHECKING

from opencomputer.bot.media.limits import DEFAULT_MAX_AUDIO_SECONDS, MediaError

if TYPE_CHECKING:
    import av

__all__ = ["audio_seconds", "decode_pcm", "is_ogg_opus", "to_ogg_opus", "to_wav"]


def _frames(data: bytes, rate: int, layout: str, fmt: str) -> Iterator[av.AudioFrame]:
    """Decoded, resampled frames of the first audio stream of ``data``."""
    import av  # FFmpeg's libraries: loaded with the first audio, not at start-up (~0.1 s)
    import av.error

    decode_errors = (av.error.FFmpegError, ValueError, IndexError, EOFError)
    try:
        container = av.open(io.BytesIO(data), mode="r")
    except decode_errors as exc:
        raise MediaError(f"this is not an audio file we can read ({_why(exc)})") from None
    with container:
        if not container.streams.audio:
            raise MediaError("this file has no audio track")
        stream = container.streams.audio[0]
        resampler = av.AudioResampler(format=fmt, layout=layout, rate=rate)
        try:
            for frame in container.decode(stream):
                yield from resampler.resample(frame)
            yield from resampler.resample(None)
        except decode_errors as exc:
            raise MediaError(f"the audio is damaged or cut short ({_why(exc)})") from None


def decode_pcm(
    data: bytes, *, rate: int = 16000, max_seconds: float = DEFAULT_MAX_AUDIO_SECONDS
) -> bytes:
    """Mono signed 16-bit PCM at ``rate`` Hz; refused past ``max_seconds`` (checked as it goes)."""
    cap = int(max_seconds * rate)
    pcm = bytearray()
    samples = 0
    for frame in _frames(data, rate, "mono", "s16"):
        samples += frame.samples
        if samples > cap:
            raise MediaError(f"the recording is longer than {max_seconds:g} s; send a shorter one")
        pcm += bytes(frame.planes[0])[: frame.samples * 2]
    if not samples:
        raise MediaError("the recording has no sound in it (zero samples)")
    return bytes(pcm)


def to_wav(
    data: bytes, *, rate: int = 16000, max_seconds: float = DEFAULT_MAX_AUDIO_SECONDS
) -> bytes:
    """Any audio PyAV reads, as a 16-bit mono WAV file at ``rate`` Hz."""
    pcm = decode_pcm(data, rate=rate, max_seconds=max_seconds)
    out = io.BytesIO()
    with wave.open(out, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(pcm)
    return out.getvalue()


def audio_seconds(data: bytes, *, max_seconds: float = DEFAULT_MAX_AUDIO_SECONDS) -> float:
    """The real duration of ``data`` (decoded, not read from a header that may lie)."""
    return len(decode_pcm(data, rate=8000, max_seconds=max_seconds)) / 2 / 8000


def is_ogg_opus(data: bytes) -> bool:
    """Whether ``data`` starts like an Ogg file whose first stream is Opus."""
    return data[:4] == b"OggS" and b"OpusHead" in data[:64]


def to_ogg_opus(
    data: bytes, *, bitrate: int = 32000, max_seconds: float = DEFAULT_MAX_AUDIO_SECONDS
) -> bytes:
    """Any audio PyAV reads, as OGG/Opus (48 kHz mono), the format of a messenger voice note."""
    import av

    out = io.BytesIO()
    with av.open(out, mode="w", format="ogg") as container:
        stream = container.add_stream("libopus", rate=48000)
        stream.bit_rate = bitrate
        stream.layout = "mono"
        samples = 0
        for frame in _frames(data, 48000, "mono", "s16"):
            samples += frame.samples
            if samples > max_seconds * 48000:
                raise MediaError(f"the speech is longer than {max_seconds:g} s")
            frame.pts = None  # let the encoder number the resampled frames
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return out.getvalue()


def _why(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:160]
