"""The hook channel: ``POST /hooks/NAME`` on the shared HTTP app, relayed into a chat.

A request is judged in this order, each refusal one log line and no traceback: the name
(404, the same answer for every unknown name), the size (413), the signature over the raw bytes
(401; see ``verify.py``), the content (400), the target's connector (503), and the delivery
memory (a replay: 200 with ``"duplicate": true`` and nothing sent twice; a copy racing the
first: 409). Only then:

- ``post`` hands the content to the target chat through ``say`` (the runtime's, which renders
  it for that platform); the sender hears 200 once the platform took it, or 502 and may retry.
- ``turn`` emits a neutral :class:`~bot.events.Message` from platform ``hook``, chat = the
  hook's name (each hook is its own conversation, stored before 202 is answered, so crash
  recovery finds it). The runtime streams the answer to this connector, which cannot edit and
  so receives only final parts, and relays them into the target chat through ``say``.

The content is someone else's words: the message is a group message from ``hook:<name>`` (not
an owner), so a turn that wants an outward effect asks for approval (``bot/approvals.py``).

``say`` and the store come after construction (:meth:`HookConnector.attach`, or keywords of
:func:`create`): a channel factory gets only ``(settings, emit)``.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

from aiohttp import web

from opencomputer.bot.connector import (
    Capabilities,
    CommandSpec,
    ConnectorState,
    Formatting,
    RuntimeStopped,
)
from opencomputer.bot.events import Address, Chat, ChatKind, Message, User
from opencomputer.bot.http import too_large_as
from opencomputer.connectors.hooks.config import HookSpec, env_with_dotenv, parse_hooks
from opencomputer.connectors.hooks.content import BadContent, content_of
from opencomputer.connectors.hooks.replay import DeliveryMemory
from opencomputer.connectors.hooks.verify import Unsigned, check_signature

if TYPE_CHECKING:
    from opencomputer.bot.checks import Check
    from opencomputer.bot.config import Settings
    from opencomputer.bot.connector import Emit
    from opencomputer.bot.storage.store import SqlStore

__all__ = ["MAX_BODY", "HookConnector", "Say", "create", "diagnose"]

logger = logging.getLogger(__name__)

Say = Callable[..., Awaitable[list[str]]]
"""``say(address, text)``: post a plain message through that platform's connector."""

MAX_BODY = 256 * 1024
"""Bytes a hook's body may have (alerts and CI events are a few KB; GitHub's stay below)."""
_DELIVERY_HEADERS = ("X-OC-Delivery", "X-GitHub-Delivery")


def _answer(status: int, **fields: Any) -> web.Response:
    return web.json_response({"ok": 200 <= status < 300, **fields}, status=status)


class HookConnector:
    """Inbound webhooks as a channel (platform ``hook``)."""

    platform = "hook"

    def __init__(
        self,
        settings: Settings | None,
        emit: Emit,
        *,
        hooks: Sequence[HookSpec] | None = None,
        problems: Sequence[str] = (),
        say: Say | None = None,
        store: SqlStore | None = None,
        reachable: Callable[[str], bool] | None = None,
        max_body: int = MAX_BODY,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if hooks is None:
            raw = getattr(settings, "hooks", None)
            found, found_problems = parse_hooks(raw, env_with_dotenv())
            hooks, problems = found, [*problems, *found_problems]
        self.emit = emit
        self.hooks = {h.name: h for h in hooks}
        self.problems = list(problems)
        self.max_body = max_body
        self.capabilities = Capabilities(
            max_length=1_000_000,  # whole answers: the target's connector splits them
            can_edit=False,  # so the reply stream hands over final text only
            can_react=False,
            can_type=False,
            formatting=Formatting.MARKDOWN,
            edit_interval=0.0,
        )
        self.state = ConnectorState.STOPPED
        self._say = say
        self._reachable = reachable
        self._memory = DeliveryMemory(store)
        self._clock = clock

    def attach(
        self,
        *,
        say: Say,
        store: SqlStore | None = None,
        reachable: Callable[[str], bool] | None = None,
    ) -> None:
        """Give the services a factory of ``(settings, emit)`` cannot: the runtime's ``say``,
        the store (delivery memory shared by every process) and which platforms are served.
        """
        self._say = say
        if store is not None:
            self._memory = DeliveryMemory(store)
        if reachable is not None:
            self._reachable = reachable

    # --- lifecycle -----------------------------------------------------------------------
    async def start(self) -> None:
        """Report each bad hook once; the good ones serve (the routes are already mounted)."""
        for line in self.problems:
            logger.error("%s", line)
        self.state = ConnectorState.CONNECTED if self.hooks else ConnectorState.FAILED
        if self.hooks:
            logger.info("webhooks: %s", ", ".join(f"/hooks/{n}" for n in sorted(self.hooks)))

    async def stop(self) -> None:
        """Nothing to close: requests end with the shared HTTP app."""
        self.state = ConnectorState.STOPPED

    # --- outbound: the answer of a hook's turn, relayed into its target chat ---------------
    def render(self, markdown: str) -> list[str]:
        """The whole answer as one part: the target's connector renders and splits it."""
        return [markdown]

    async def send(self, address: Address, text: str, *, reply_to: str | None = None) -> str:
        """Post one answer of a hook's conversation into the hook's target chat."""
        hook = self.hooks.get(address.chat_id)
        if hook is None:
            raise LookupError(f"hook {address.chat_id!r} is no longer configured")
        if self._say is None:
            raise RuntimeError("hook answers cannot be relayed: the connector was not attached")
        ids = await self._say(hook.target, text)
        return ids[0] if ids else f"{hook.name}-{time.time_ns()}"

    async def edit(self, address: Address, message_id: str, text: str) -> None:
        """Not used (``can_edit`` is false): relayed messages are final."""

    async def react(self, address: Address, message_id: str, emoji: str) -> None:
        """Hooks have nothing to react on."""

    async def typing(self, address: Address) -> None:
        """No typing indicator (``can_type`` is false)."""

    async def register_commands(self, commands: Sequence[CommandSpec]) -> None:
        """Hooks take no commands."""

    def routes(self) -> list[web.RouteDef]:
        """``POST /hooks/{name}``."""
        return [web.post("/hooks/{name}", too_large_as(self._handle, self._too_large))]

    def _too_large(self, _limit: int) -> web.Response:
        """A body over the HTTP app's own limit: the same JSON line as one over ours."""
        return _answer(413, error=f"body larger than {self.max_body} bytes")

    # --- inbound -------------------------------------------------------------------------
    async def _handle(self, request: web.Request) -> web.Response:
        name = request.match_info.get("name", "")
        peer = request.remote or "?"
        hook = self.hooks.get(name)
        if hook is None:
            logger.info("webhook %.40r from %s refused: no such hook", name, peer)
            return _answer(404, error="no such hook")
        body = await request.read()  # already read, bounded, by the HTTP app's middleware
        if len(body) > self.max_body:
            logger.info("webhook %s from %s refused: body of %d bytes", name, peer, len(body))
            return _answer(413, error=f"body larger than {self.max_body} bytes")
        verdict = check_signature(hook, request.headers, body, self._clock())
        if isinstance(verdict, Unsigned):
            logger.warning("webhook %s from %s refused: %s", name, peer, verdict.reason)
            return _answer(401, error=verdict.reason)
        try:
            text = content_of(body, request.headers)
        except BadContent as exc:
            logger.info("webhook %s from %s refused: %s", name, peer, exc)
            return _answer(400, error=str(exc))
        if hook.mode == "post" and self._say is None:
            logger.error("webhook %s: not attached to the runtime; answered 503", name)
            return _answer(503, error="not ready, retry later")
        if self._reachable is not None and not self._reachable(hook.target.platform):
            logger.error(
                "webhook %s: no %s connector runs, so %s cannot be reached; configure it or "
                "change the hook's target",
                name,
                hook.target.platform,
                hook.target.key,
            )
            return _answer(503, error="target unavailable, retry later")
        keys = [verdict.key, *_delivery_ids(request)]
        claim = await self._memory.claim(name, keys)
        if claim == "done":
            logger.info("webhook %s from %s: delivery seen before, ignored", name, peer)
            return _answer(200, duplicate=True)
        if claim == "busy":
            logger.info("webhook %s from %s: the same delivery is under way", name, peer)
            return _answer(409, error="this delivery is being handled, retry later")
        try:
            answer = await self._deliver(hook, verdict.key, text)
        except Exception as exc:
            try:
                await self._memory.release(name, keys)  # the retry must not be a "replay"
            except Exception as forget:  # then it is "busy" until STALE, and goes through
                logger.warning("webhook %s: delivery memory not updated: %s", name, forget)
            if isinstance(exc, _NotAccepted):
                return _answer(403, error="not accepted by this server's access rules")
            if isinstance(exc, RuntimeStopped):
                logger.warning("webhook %s: not taken (%s); answered 503", name, exc)
                return _answer(503, error="shutting down, retry later")
            logger.warning(
                "webhook %s: delivery to %s failed (%s: %s); answered 502",
                name,
                hook.target.key,
                type(exc).__name__,
                exc,
            )
            return _answer(502, error="delivery failed, retry later")
        try:
            await self._memory.confirm(name, keys)
        except Exception as exc:  # delivered all the same; a retry after STALE may repeat it
            logger.warning("webhook %s: delivered, but not remembered as done: %s", name, exc)
        return answer

    async def _deliver(self, hook: HookSpec, key: str, text: str) -> web.Response:
        if hook.mode == "post":
            assert self._say is not None
            ids = await self._say(hook.target, text)
            logger.info("webhook %s: posted to %s", hook.name, hook.target.key)
            return _answer(200, delivered=len(ids))
        chat = Chat(self.platform, hook.name, ChatKind.GROUP, title=f"webhook {hook.name}")
        message = Message(
            platform=self.platform,
            event_id="d" + hashlib.sha256(key.encode("utf-8", "replace")).hexdigest()[:40],
            chat=chat,
            user=User(self.platform, hook.name, f"webhook {hook.name}"),
            text=f"Webhook {hook.name}: {text}",
        )
        await self.emit(message)  # stored before it returns: 202 promises the turn
        if not await self._memory.stored(message.event_id):
            # Dropped by an inbound rule (access, rate limit): the sender must not hear 202.
            logger.warning(
                "webhook %s: the turn was not accepted (access rules or a rate limit); an admin "
                "allows the hook with /allow chat:hook:%s",
                hook.name,
                hook.name,
            )
            raise _NotAccepted
        logger.info("webhook %s: turn queued, answer goes to %s", hook.name, hook.target.key)
        return _answer(202, queued=True)


class _NotAccepted(Exception):
    """The runtime's inbound rules did not store the hook's message."""


def _delivery_ids(request: web.Request) -> list[str]:
    for header in _DELIVERY_HEADERS:
        value = request.headers.get(header, "").strip()
        if value:
            return [f"id:{value[:200]}"]
    return []


def create(settings: Settings, emit: Emit, **services: Any) -> HookConnector:
    """The channel's factory; ``say``, ``store`` and ``reachable`` may come as keywords."""
    return HookConnector(
        settings,
        emit,
        say=services.get("say"),
        store=services.get("store"),
        reachable=services.get("reachable"),
    )


async def diagnose(settings: Settings) -> list[Check]:
    """``opencomputer doctor``: one line per hook, and one per problem with its fix."""
    from opencomputer.bot.checks import Check

    hooks, problems = parse_hooks(getattr(settings, "hooks", None), env_with_dotenv())
    checks = [
        Check(f"hook {h.name}", True, f"POST /hooks/{h.name} -> {h.mode} into {h.target.key}")
        for h in hooks
    ]
    checks += [Check("hooks", False, line) for line in problems]
    return checks
