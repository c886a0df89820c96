"""Chat commands: ``/prompt ...`` for admins, ``/feedback <text>`` for everyone."""

from __future__ import annotations

import logging
import time
from typing import Any

from opencomputer.bot.commands import CommandContext, CommandRouter
from opencomputer.bot.feedback.models import Scope
from opencomputer.bot.feedback.repo import VariantStats
from opencomputer.bot.feedback.service import FeedbackService
from opencomputer.bot.feedback.stats import prob_greater
from opencomputer.bot.feedback.tuner import TuningError

__all__ = ["format_stats", "format_variant", "register_commands"]

logger = logging.getLogger(__name__)

PROMPT_USAGE = (
    "Usage: /prompt stats | list [all] | show <id> | add [--chat|--platform] [--name=N] <text> | "
    "tune | pin <id> | unpin <id> | promote <id> | retire <id> | rollback [<id>] | log"
)


def format_variant(v: Any) -> str:
    """One line describing a variant."""
    scope = v.scope if v.scope == Scope.GLOBAL else f"{v.scope}:{v.scope_key}"
    return f"#{v.id} {v.name} v{v.version} [{v.status}] {v.author}, {scope}"


def format_stats(stats: list[VariantStats], *, live_only: bool = True) -> str:
    """Per-variant ratings, the thumbs-up rate and P(better than the global active one)."""
    rows = [s for s in stats if not live_only or s.variant.status != "retired"]
    if not rows:
        return "No prompt variants yet."
    base = next(
        (s for s in rows if s.variant.status == "active" and s.variant.scope == Scope.GLOBAL),
        None,
    )
    lines = ["Prompt variants (👍/👎 blamed on the prompt; failures excluded):"]
    for s in rows:
        post = s.posterior
        rate = f"{100 * s.up / post.n:.0f}%" if post.n else "–"
        better = ""
        if base is not None and s is not base and post.n and base.posterior.n:
            better = f", P(better than #{base.variant.id}) {prob_greater(post, base.posterior):.2f}"
        lines.append(
            f"{format_variant(s.variant)}: 👍 {s.up} 👎 {s.down} ({rate}), "
            f"{s.served} replies, {s.excluded} ratings excluded, {s.failures} failures{better}"
        )
    return "\n".join(lines)


def _id(arg: str) -> int:
    try:
        return int(arg.strip().lstrip("#"))
    except ValueError:
        raise TuningError(f"Expected a variant id, got {arg!r}.") from None


def _parse_add(ctx: CommandContext, rest: str) -> dict[str, Any]:
    scope, key, name = Scope.GLOBAL, "", None
    words = rest.split(" ")
    while words and words[0].startswith("--"):
        flag = words.pop(0)
        address = ctx.event.address
        if flag == "--chat":
            scope, key = Scope.CHAT, f"{address.platform}:{address.chat_id}"
        elif flag == "--platform":
            scope, key = Scope.PLATFORM, address.platform
        elif flag == "--global":
            scope, key = Scope.GLOBAL, ""
        elif flag.startswith("--name="):
            name = flag.partition("=")[2] or None
        else:
            raise TuningError(f"Unknown option {flag}. {PROMPT_USAGE}")
    return {"template": " ".join(words), "scope": scope, "scope_key": key, "name": name}


async def _prompt(service: FeedbackService, ctx: CommandContext) -> str:
    sub, _, rest = ctx.args.strip().partition(" ")
    sub, rest = sub.lower(), rest.strip()
    actor = ctx.event.user.key
    tuner = service.tuner
    if sub in ("", "stats"):
        return format_stats(await service.repo.stats())
    if sub == "list":
        rows = await service.repo.variants(live_only=rest != "all")
        return "\n".join(format_variant(v) for v in rows) or "No prompt variants yet."
    if sub == "show":
        v = await tuner.get(_id(rest))
        notes = await service.repo.notes(variant_id=int(v.id), limit=5)
        extra = "".join(f"\n• {n.text}" for n in notes)
        parent = f", parent #{v.parent_id}" if v.parent_id else ""
        return f"{format_variant(v)}{parent}\n{v.note}\n---\n{v.template}" + (
            f"\n---\nRecent reasons:{extra}" if notes else ""
        )
    if sub == "add":
        row = await tuner.add(actor=actor, **_parse_add(ctx, rest))
        return f"Added {format_variant(row)} with the exploration share."
    if sub == "tune":
        address = ctx.event.address
        row = await service.propose(
            actor=actor, platform=address.platform, chat_key=f"{address.platform}:{address.chat_id}"
        )
        return f"Proposed {format_variant(row)}:\n{row.template}"
    if sub == "log":
        events = await service.repo.events(10)
        return (
            "\n".join(
                f"{time.strftime('%Y-%m-%d %H:%M', time.gmtime(e.at))} {e.kind} #{e.variant_id} "
                f"by {e.actor}{' — ' + e.reason if e.reason else ''}"
                for e in events
            )
            or "No tuning events yet."
        )
    moves = {
        "pin": tuner.pin,
        "unpin": tuner.unpin,
        "promote": tuner.promote,
        "retire": tuner.retire,
    }
    if sub in moves:
        event = await moves[sub](_id(rest), actor=actor)
        return f"Done: {event.kind} #{event.variant_id}."
    if sub == "rollback":
        event = (
            await tuner.rollback(_id(rest), actor=actor) if rest else await tuner.undo(actor=actor)
        )
        return f"Done: {event.kind} #{event.variant_id} ({event.reason or 'by hand'})."
    return PROMPT_USAGE


def register_commands(router: CommandRouter, service: FeedbackService) -> None:
    """Add ``/prompt`` (admins) and ``/feedback`` (everyone) to the router."""

    @router.command(
        "prompt", admin=True, args="stats|list|show|add|tune|pin|promote|retire|rollback"
    )
    async def prompt(ctx: CommandContext) -> str:
        """See and steer prompt tuning."""
        try:
            return await _prompt(service, ctx)
        except TuningError as exc:
            return str(exc)

    @router.command("feedback", args="<text>")
    async def feedback(ctx: CommandContext) -> str:
        """Tell us what was good or bad about the last answer."""
        text = ctx.args.strip()
        if not text:
            return "Usage: /feedback <what was good or bad about my last answer>"
        await service.note(ctx.event.user.key, ctx.event.address.key, text)
        return "Thanks, your feedback is saved."
