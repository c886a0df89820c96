"""Signature checks, run on the raw body before anything parses it.

Our format (the Stripe/Slack scheme): ``X-OC-Timestamp: <unix seconds>`` and
``X-OC-Signature: sha256=<hex HMAC-SHA256(secret, timestamp + "." + body)>``. The timestamp is
signed, so a captured request cannot be made fresh again; one older or newer than
:data:`WINDOW` is refused, and within the window the delivery memory refuses a second copy.

GitHub's ``X-Hub-Signature-256: sha256=<hex HMAC(secret, body)>`` is accepted for hooks that
opt in: it signs no time, so only the delivery memory stands between it and a replay.

Every comparison is :func:`hmac.compare_digest`: an early-exit ``==`` leaks, one byte at a
time, how much of a forged signature is right.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass

from opencomputer.connectors.hooks.config import HookSpec

__all__ = ["WINDOW", "Signed", "Unsigned", "check_signature"]

WINDOW = 300.0
"""Seconds a signed timestamp may be off the server's clock, either way."""
_PREFIX = "sha256="


@dataclass(frozen=True, slots=True)
class Signed:
    """A request whose signature holds; ``key`` identifies it for the delivery memory."""

    key: str


@dataclass(frozen=True, slots=True)
class Unsigned:
    """A refused request: ``reason`` goes to the log and the response (never a secret)."""

    reason: str


def _matches(secret: bytes, message: bytes, header: str) -> bool:
    given = header.strip()
    if given[: len(_PREFIX)].lower() != _PREFIX:
        return False
    expected = hmac.new(secret, message, hashlib.sha256).hexdigest()
    # Bytes on both sides: compare_digest refuses a str with non-ASCII characters.
    return hmac.compare_digest(
        expected.encode(), given[len(_PREFIX) :].lower().encode("utf-8", "replace")
    )


def check_signature(
    hook: HookSpec, headers: Mapping[str, str], body: bytes, now: float
) -> Signed | Unsigned:
    """Whether ``body`` with these headers was signed with the hook's secret, and recently."""
    signature = headers.get("X-OC-Signature")
    if signature is not None:
        stamp = headers.get("X-OC-Timestamp", "").strip()
        if not stamp:
            return Unsigned("missing X-OC-Timestamp")
        if not stamp.isascii() or not stamp.isdigit() or len(stamp) > 12:
            return Unsigned("X-OC-Timestamp is not unix seconds")
        if abs(now - int(stamp)) > WINDOW:
            return Unsigned("stale X-OC-Timestamp (more than 5 minutes off)")
        if not _matches(hook.secret, stamp.encode() + b"." + body, signature):
            return Unsigned("bad signature")
        return Signed(f"sig:{signature.strip().lower()}")
    github = headers.get("X-Hub-Signature-256")
    if github is not None and hook.github:
        if not _matches(hook.secret, body, github):
            return Unsigned("bad signature")
        return Signed(f"sig:{github.strip().lower()}")
    return Unsigned("missing X-OC-Signature")
