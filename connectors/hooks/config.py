"""Which hooks exist: ``OC_HOOKS`` plus one ``OC_HOOK_<NAME>_SECRET`` per hook.

``OC_HOOKS`` is JSON (a list of objects, or an object keyed by name) or a compact list::

    OC_HOOKS='ci=post:telegram:12345, alerts=turn:slack:C123'
    OC_HOOKS='[{"name": "gh", "mode": "turn", "target": "matrix:!room:example.org",
               "github": true}]'

Secrets stay out of ``OC_HOOKS`` (which is shown in logs and ``doctor``): each lives in its own
variable, in the environment or ``.env``. A hook that is wrong is one line naming it and the
fix; the other hooks still work, because one typo must not close every webhook.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from opencomputer.bot.events import Address

__all__ = [
    "MIN_SECRET",
    "HookSpec",
    "env_with_dotenv",
    "parse_hooks",
    "secret_variable",
]

Mode = Literal["post", "turn"]
MIN_SECRET = 16
"""Shortest secret accepted: a guessable one would make the signature worthless."""
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
_MAKE_SECRET = "e.g. `openssl rand -hex 32`"


@dataclass(frozen=True, slots=True)
class HookSpec:
    """One configured hook.

    Attributes:
        name: The path segment (``/hooks/<name>``) and the hook's own conversation id.
        secret: The HMAC key (bytes, never logged).
        target: Where ``post`` content and ``turn`` answers appear.
        mode: ``post`` (the content as a message, no model) or ``turn`` (an agent turn).
        github: Also accept GitHub's ``X-Hub-Signature-256`` (no timestamp: replays are
            refused by delivery memory only, see ``docs/webhooks.md``).
    """

    name: str
    secret: bytes
    target: Address
    mode: Mode
    github: bool = False

    def __repr__(self) -> str:  # the secret must not reach a log through a repr
        return f"HookSpec({self.name!r}, {self.mode}, {self.target.key!r})"


def secret_variable(name: str) -> str:
    """The variable holding a hook's secret: ``ci-main`` -> ``OC_HOOK_CI_MAIN_SECRET``."""
    return f"OC_HOOK_{name.upper().replace('-', '_')}_SECRET"


def env_with_dotenv(env_file: Path = Path(".env")) -> dict[str, str]:
    """The environment over ``.env`` (as pydantic-settings reads them: the environment wins)."""
    values: dict[str, str] = {}
    if env_file.is_file():
        from dotenv import dotenv_values

        values = {k: v for k, v in dotenv_values(env_file).items() if v is not None}
    values.update(os.environ)
    return values


def parse_hooks(raw: str | None, environ: Mapping[str, str]) -> tuple[list[HookSpec], list[str]]:
    """The valid hooks, and one line per problem (what is wrong, how to fix it)."""
    if raw is None or not raw.strip():
        return [], []
    try:
        entries = _entries(raw.strip())
    except ValueError as exc:
        return [], [f"OC_HOOKS: {exc}"]
    hooks: list[HookSpec] = []
    problems: list[str] = []
    seen: set[str] = set()
    for index, entry in enumerate(entries, 1):
        label = str(entry.get("name") or f"#{index}")
        try:
            hook = _hook(entry, environ)
        except ValueError as exc:
            problems.append(f"hook {label}: {exc}")
            continue
        if hook.name in seen:
            problems.append(f"hook {hook.name}: named twice in OC_HOOKS; keep one")
            continue
        seen.add(hook.name)
        hooks.append(hook)
    return hooks, problems


def _entries(raw: str) -> list[dict[str, Any]]:
    if raw[0] in "[{":
        try:
            data = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise ValueError(f"not valid JSON ({exc.msg} at character {exc.pos})") from None
        if isinstance(data, dict):
            data = [
                {"name": k, **v} if isinstance(v, dict) else {"name": k} for k, v in data.items()
            ]
        if not isinstance(data, list) or not all(isinstance(d, dict) for d in data):
            raise ValueError('expected a list of {"name", "mode", "target"} objects')
        return data
    entries = []
    for part in re.split(r"[,;\s]+", raw):
        if not part:
            continue
        name, eq, rest = part.partition("=")
        mode, colon, target = rest.partition(":")
        if not eq or not colon:
            raise ValueError(
                f"cannot read {part[:60]!r}; expected name=mode:platform:chat "
                "(e.g. ci=post:telegram:12345), or JSON"
            )
        parsed = Address.parse(target)
        entries.append(
            {
                "name": name,
                "mode": mode,
                "target": f"{parsed.platform}:{parsed.chat_id}",
                "thread": parsed.thread_id,
            }
        )
    return entries


def _hook(entry: Mapping[str, Any], environ: Mapping[str, str]) -> HookSpec:
    name = entry.get("name")
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValueError(
            "the name must be 1-63 lowercase letters, digits, '-' or '_' (it is the URL path)"
        )
    mode = entry.get("mode")
    if mode not in ("post", "turn"):
        raise ValueError(f"mode {mode!r} is unknown; use 'post' (deliver as is) or 'turn'")
    target = entry.get("target")
    platform, _, chat = target.partition(":") if isinstance(target, str) else ("", "", "")
    if not platform or not chat:
        raise ValueError(
            f"target {target!r} is not platform:chat (e.g. telegram:12345 or slack:C0123)"
        )
    if platform == "hook":
        raise ValueError("the target must be a chat on a messenger, not another hook")
    thread = entry.get("thread")
    if thread is not None and not isinstance(thread, str | int):
        raise ValueError("thread must be a string")
    variable = secret_variable(name)
    secret = environ.get(variable, "")
    if not secret:
        raise ValueError(f"no secret; set {variable} ({_MAKE_SECRET})")
    if len(secret) < MIN_SECRET:
        raise ValueError(f"{variable} is shorter than {MIN_SECRET} characters ({_MAKE_SECRET})")
    return HookSpec(
        name=name,
        secret=secret.encode(),
        target=Address(platform, chat, str(thread) if thread not in (None, "") else None),
        mode=mode,
        github=entry.get("github") is True,
    )
