"""Text hygiene and splitting long Markdown into platform-sized chunks.

``clean_text`` / ``clean_event`` make platform text safe to store and send: a JSON payload may
carry a lone UTF-16 surrogate (an escaped U+D800), which Python decodes into a ``str`` that no
UTF-8 encoder (SQLite, PostgreSQL, aiohttp, httpx forms) accepts, and PostgreSQL rejects NUL.
Every connector runs its events through ``clean_event`` before emitting them, and
``split_markdown`` cleans what it splits, so one odd character never becomes a storage error
that is retried forever.

Connectors render each chunk to their markup; ``measure`` lets them split by the rendered
length (HTML escaping makes Telegram text longer than its Markdown).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["REPLACEMENT", "clean_event", "clean_payload", "clean_text", "split_markdown"]

_FENCE = "```"
REPLACEMENT = "\ufffd"
_UNSAFE = re.compile("[\ud800-\udfff\x00]")
E = TypeVar("E")


def clean_text(text: str) -> str:
    """Return ``text`` with lone surrogates and NUL replaced by U+FFFD.

    A surrogate pair left as two code points (two escapes decoded without joining)
    becomes the character it encodes; anything else that cannot be UTF-8 is replaced.
    """
    if not _UNSAFE.search(text):
        return text  # the common case: no copy
    joined = text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    return joined.replace("\x00", REPLACEMENT)


def clean_payload(value: Any) -> Any:
    """Return a parsed JSON value with every string (keys too) cleaned by :func:`clean_text`.

    U+FFFD is one UTF-16 unit, like the surrogate it replaces, so entity offsets counted in
    UTF-16 (Telegram) still point at the same text.
    """
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, dict):
        return {clean_payload(k): clean_payload(v) for k, v in value.items()}
    if isinstance(value, list):
        return [clean_payload(v) for v in value]
    return value


def _clean_value(value: Any) -> Any:
    if isinstance(value, str):
        return clean_text(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return clean_event(value)
    return value


def clean_event(event: E) -> E:
    """Return a core event (or ``User``/``Chat``) with every text field cleaned.

    ``raw`` is left alone: it is the platform's own payload, kept for debugging and never
    stored. The same object comes back when nothing needed cleaning.
    """
    if not dataclasses.is_dataclass(event) or isinstance(event, type):
        return event
    changes: dict[str, Any] = {}
    for spec in dataclasses.fields(event):
        if spec.name == "raw" or not spec.init:
            continue
        value = getattr(event, spec.name)
        cleaned = _clean_value(value)
        if cleaned is not value:
            changes[spec.name] = cleaned
    return dataclasses.replace(event, **changes) if changes else event


def split_markdown(text: str, limit: int, measure: Callable[[str], int] = len) -> list[str]:
    """Split ``text`` into chunks with ``measure(chunk) <= limit``.

    Prefers paragraph, then line, then word boundaries; a code block cut in two is closed at
    the end of one chunk and reopened (same language) at the start of the next.
    """
    if limit < 16:
        raise ValueError("limit too small to split Markdown")
    text = clean_text(text)
    if measure(text) <= limit:
        return [text] if text else []
    chunks: list[str] = []
    rest, prefix = text, ""
    while rest:
        candidate = prefix + rest
        if measure(candidate) <= limit:
            chunks.append(candidate)
            break
        cut = _best_cut(candidate, limit - len(_FENCE) - 1, measure, floor=len(prefix))
        head = candidate[:cut].rstrip()
        rest = candidate[cut:].lstrip("\n")
        fence = _open_fence(head)
        prefix = ""
        if fence is not None:
            head += "\n" + _FENCE
            prefix = fence + "\n"
        chunks.append(head)
    return chunks


def _best_cut(text: str, budget: int, measure: Callable[[str], int], floor: int) -> int:
    """Largest boundary index past ``floor`` whose prefix measures within ``budget``."""
    lo, hi = 1, len(text)
    # Largest prefix length that fits (measure is monotone in practice).
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if measure(text[:mid]) <= budget:
            lo = mid
        else:
            hi = mid - 1
    fit = lo
    window = text[:fit]
    for sep in ("\n\n", "\n", " "):
        pos = window.rfind(sep)
        if pos > max(fit // 3, floor):
            return pos + len(sep) if sep == " " else pos
    return max(fit, floor + 1)


def _open_fence(chunk: str) -> str | None:
    """The opening fence line (with language) if ``chunk`` ends inside a code block."""
    opening: str | None = None
    for line in chunk.split("\n"):
        stripped = line.strip()
        if stripped.startswith(_FENCE):
            opening = None if opening is not None else stripped
    return opening
