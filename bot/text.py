"""Splitting long Markdown into platform-sized chunks without breaking code blocks.

Connectors render each chunk to their markup; ``measure`` lets them split by the rendered
length (HTML escaping makes Telegram text longer than its Markdown).
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["split_markdown"]

_FENCE = "```"


def split_markdown(text: str, limit: int, measure: Callable[[str], int] = len) -> list[str]:
    """Split ``text`` into chunks with ``measure(chunk) <= limit``.

    Prefers paragraph, then line, then word boundaries; a code block cut in two is closed at
    the end of one chunk and reopened (same language) at the start of the next.
    """
    if limit < 16:
        raise ValueError("limit too small to split Markdown")
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
