"""The decoders as one entry point the plugin sandbox's worker can call (``decode``).

:func:`bot.plugins.media_sandbox.decode_in_sandbox` writes the untrusted bytes to a file in a
private folder, runs ``python -m bot.plugins.worker`` in bubblewrap with this module as the
"plugin" and :func:`decode` as the hook, and reads the result back from that folder: files, not
JSON, carry the bytes, so a 10-minute voice note's WAV does not pass through the worker's
4 MB answer. Refusals come back as ``{"error": "<one line>"}``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from opencomputer.bot.media.limits import MediaError

__all__ = ["DECODERS", "decode"]


def _prepare_image(data: bytes, out: Path, params: dict[str, Any]) -> dict[str, Any]:
    from opencomputer.bot.media.images import prepare_image

    image, mime = prepare_image(data, **params)
    out.write_bytes(image)
    return {"mime": mime}


def _extract_text(data: bytes, out: Path, params: dict[str, Any]) -> dict[str, Any]:
    from opencomputer.bot.media.documents import extract_text

    result = extract_text(data, **params)
    out.write_text(result.text, encoding="utf-8")
    return {"truncated": result.truncated, "pages": result.pages}


def _to_wav(data: bytes, out: Path, params: dict[str, Any]) -> dict[str, Any]:
    from opencomputer.bot.media.audio import to_wav

    out.write_bytes(to_wav(data, **params))
    return {}


def _to_ogg_opus(data: bytes, out: Path, params: dict[str, Any]) -> dict[str, Any]:
    from opencomputer.bot.media.audio import to_ogg_opus

    out.write_bytes(to_ogg_opus(data, **params))
    return {}


DECODERS: dict[str, Callable[[bytes, Path, dict[str, Any]], dict[str, Any]]] = {
    "prepare_image": _prepare_image,
    "extract_text": _extract_text,
    "to_wav": _to_wav,
    "to_ogg_opus": _to_ogg_opus,
}


def decode(event: dict[str, Any]) -> dict[str, Any]:
    """Run ``event["fn"]`` on the file ``event["input"]``, writing ``event["output"]``."""
    fn = DECODERS.get(str(event.get("fn")))
    if fn is None:
        return {"error": f"no decoder named {event.get('fn')!r}"}
    data = Path(event["input"]).read_bytes()
    try:
        return fn(data, Path(event["output"]), dict(event.get("params") or {}))
    except MediaError as exc:
        return {"error": str(exc)}
