"""The runtime: accepts events, runs one turn at a time per conversation, streams replies.

Every accepted message is persisted before ``emit`` returns (so a connector may ack it), and
handled later by the conversation's lane; a bounded number of turns talk to the model at once.
Messages a crash or shutdown left unanswered are handled again at the next start.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from bot.commands import CommandContext, CommandRouter
from bot.config import Settings
from bot.connector import Connector, RuntimeStopped
from bot.events import Address, Chat, ChatKind, Command, Message, Reaction, User
from bot.logs import turn_context, turn_id_for
from bot.metrics import Metrics
from bot.middleware import Handler, Middleware, chain, ignore_bots, require_address
from bot.ollama import OllamaError
from bot.reply import ReplySink, ReplyStream
from bot.storage.disk import DiskFull, guard_for_url, refusing
from bot.storage.engine import is_transient
from bot.storage.store import ReplyMeta, SqlStore
from bot.tools import Tool, ToolRegistry
from graphs.agent.prompts import compose_system_prompt
from graphs.agent.state import TurnContext

__all__ = ["Agent", "Job", "ReplyRecord", "Runtime", "RuntimeStopped"]

logger = logging.getLogger(__name__)

APOLOGY = (
    "Sorry, I could not reach my language model just now, so I could not answer. "
    "Your message is saved: send /retry to try again."
)
CRASH_APOLOGY = "Sorry, something went wrong while answering. Your message is saved: send /retry."


class Agent(Protocol):
    """What the runtime needs from the agent graph."""

    async def run_turn(
        self, thread_id: str, text: str, ctx: TurnContext, *, retry: bool = False
    ) -> Any:
        """Run one turn; the result has ``text`` and ``run_id``."""
        ...


@dataclass(slots=True)
class Job:
    """One unit of work in a conversation lane."""

    event: Message | Command
    inbound_id: int | None = None
    retry: bool = False
    attempts: int = 0
    work: Callable[[], Awaitable[None]] | None = None
    """Replaces the default handling (scale-out workers claim and acknowledge around turns)."""


@dataclass(frozen=True, slots=True)
class ReplyRecord:
    """A reply that was sent, for listeners (feedback, metrics)."""

    reply_id: int
    address: Address
    message: Message
    text: str
    meta: ReplyMeta
    message_ids: tuple[str, ...]


@dataclass(slots=True)
class _Lane:
    jobs: deque[Job] = field(default_factory=deque)
    task: asyncio.Task[None] | None = None


PromptChooser = Callable[[Message], Awaitable[tuple[str | None, int | None]]]


class Runtime:
    """Owns connectors, conversation lanes and the turn loop."""

    def __init__(
        self,
        *,
        settings: Settings,
        store: SqlStore,
        agent: Agent,
        tools: ToolRegistry,
        commands: CommandRouter | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.agent = agent
        self.tools = tools
        self.commands = commands or CommandRouter()
        self.metrics = metrics or Metrics()
        self.connectors: dict[str, Connector] = {}
        self.started_at = time.time()
        self.reaction_listeners: list[Callable[[Reaction, int | None], Awaitable[None]]] = []
        self.reply_listeners: list[Callable[[ReplyRecord], Awaitable[None]]] = []
        # Policies other features replace (prompt tuning, per-chat model, plugin enablement).
        self.choose_prompt: PromptChooser = self._default_prompt
        self.choose_model: Callable[[Address], str] = lambda _a: self.settings.model
        self.choose_tools: Callable[[Address], list[Tool]] = lambda _a: list(self.tools)
        self.is_admin: Callable[[User], bool] = self._default_is_admin
        self.person_of: Callable[[User], Awaitable[str]] = self._default_person
        self.thread_id: Callable[[Address, int], str] = lambda a, epoch: f"{a.key}#{epoch}"
        # Where accepted jobs go (local lanes; a scale-out gateway publishes them instead) and
        # where answers go (local connectors; a scale-out worker relays them to the gateway).
        self.route: Callable[[Job], Awaitable[None]] = self.dispatch
        self.open_stream: Callable[[Address, str | None, str | None], ReplySink | None] = (
            self._local_stream
        )
        # Services graph nodes reach through ``TurnContext.services`` (features fill it).
        self.turn_services: dict[str, Any] = {}
        self._middleware: list[Middleware] = [ignore_bots, require_address(settings.group_trigger)]
        self._handler: Handler = chain(self._middleware, self._accept)
        self._slots = asyncio.Semaphore(settings.max_in_flight)
        self._lanes: dict[str, _Lane] = {}
        self._accepting = False
        self._register_core_commands()

    # --- wiring ------------------------------------------------------------------------
    def add_connector(self, connector: Connector) -> None:
        """Route replies for ``connector.platform`` through this connector."""
        self.connectors[connector.platform] = connector

    def add_middleware(self, mw: Middleware, *, first: bool = False) -> None:
        """Insert a rule into the inbound chain (after the built-ins unless ``first``)."""
        if first:
            self._middleware.insert(0, mw)
        else:
            self._middleware.append(mw)
        self._handler = chain(self._middleware, self._accept)

    # --- lifecycle ---------------------------------------------------------------------
    async def start(self) -> None:
        """Accept events (call :meth:`recover` once connectors are up)."""
        self._accepting = True

    async def stop(self, grace: float | None = None) -> None:
        """Stop accepting, let running turns finish for ``grace`` seconds, cancel the rest.

        Cancelled or queued messages stay ``accepted`` in storage and run at the next start.
        """
        self._accepting = False
        grace = self.settings.shutdown_grace if grace is None else grace
        tasks = [lane.task for lane in self._lanes.values() if lane.task is not None]
        for lane in self._lanes.values():
            lane.jobs.clear()  # still 'accepted' in storage: the next start runs them
        if tasks:
            _done, pending = await asyncio.wait(tasks, timeout=grace)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        self._lanes.clear()

    async def wait_idle(self, address: Address | None = None) -> None:
        """Return once the conversation (or every conversation) has no queued work."""
        while True:
            lanes = (
                [self._lanes[address.key]]
                if address is not None and address.key in self._lanes
                else list(self._lanes.values())
                if address is None
                else []
            )
            tasks = [lane.task for lane in lanes if lane.task is not None]
            if not tasks:
                return
            await asyncio.gather(*tasks, return_exceptions=True)

    @property
    def queue_depth(self) -> int:
        """Jobs waiting in every lane (running ones not counted)."""
        return sum(len(lane.jobs) for lane in self._lanes.values())

    # --- inbound -----------------------------------------------------------------------
    async def emit(self, event: Message | Reaction | Command) -> None:
        """The sink connectors call. Returns once the event is accepted (persisted).

        While the data folder's disk is full it raises ``DiskFull`` (a ``RuntimeStopped``):
        the event is not taken, so the connector leaves it for the platform to deliver again.
        """
        if not self._accepting:
            raise RuntimeStopped("opencomputer is shutting down; deliver this event later")
        disk = guard_for_url(self.store.url)
        if disk is None:
            await self._handler(event)
            return
        disk.check()
        with refusing():  # storage raises DiskFull here rather than wait for space
            try:
                await self._handler(event)
            except RuntimeStopped:
                raise
            except Exception as exc:
                if disk.report(exc):
                    raise DiskFull(f"the disk is full ({disk.reason})") from exc
                raise

    async def _accept(self, event: Message | Reaction | Command) -> None:
        self.metrics.inbound.labels(event.platform, type(event).__name__.lower()).inc()
        if isinstance(event, Reaction):
            reply_id = await self.store.record_reaction(event)
            for listener in self.reaction_listeners:
                await listener(event, reply_id)
            return
        if isinstance(event, Message):
            inbound_id = await self.store.accept_inbound(event)
            if inbound_id is None:
                logger.info("duplicate %s event %s ignored", event.platform, event.event_id)
                return
            await self.route(Job(event, inbound_id))
            return
        await self.route(Job(event))

    async def dispatch(self, job: Job) -> None:
        """Queue an accepted job on its conversation's lane (one turn at a time, in order)."""
        if not self._accepting:
            raise RuntimeStopped("opencomputer is shutting down")
        self._enqueue(job)

    def _enqueue(self, job: Job) -> None:
        key = job.event.address.key
        lane = self._lanes.get(key)
        if lane is None:
            lane = self._lanes[key] = _Lane()
        lane.jobs.append(job)
        if lane.task is None:
            lane.task = asyncio.create_task(self._drain(key, lane), name=f"lane:{key}")
        self.metrics.queue_depth.set(self.queue_depth)

    async def _drain(self, key: str, lane: _Lane) -> None:
        try:
            while lane.jobs:
                job = lane.jobs.popleft()
                with turn_context(turn_id_for(job.event.platform, job.event.event_id)):
                    await self._handle(key, lane, job)
        finally:
            if self._lanes.get(key) is lane:
                del self._lanes[key]
            self.metrics.queue_depth.set(self.queue_depth)

    async def _handle(self, key: str, lane: _Lane, job: Job) -> None:
        try:
            if job.work is not None:
                await job.work()
            elif isinstance(job.event, Command):
                await self.run_command(job.event)
            else:
                await self.run_turn(job.event, job.inbound_id, retry=job.retry)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if is_transient(exc) and job.attempts < 3:
                await asyncio.sleep(0.5 * 2**job.attempts)
                job.attempts += 1
                job.retry = True
                lane.jobs.appendleft(job)  # first again: order in the chat holds
                return
            # Not handled: stored messages run again at the next start, and a scale-out
            # worker's unacknowledged stream entry is claimed again.
            logger.exception("handling %s in %s failed", type(job.event).__name__, key)

    # --- turns -------------------------------------------------------------------------
    def model_options(self) -> dict[str, Any]:
        """Ollama options from the settings: only the ones set, so the model keeps its own."""
        options: dict[str, Any] = {}
        if self.settings.temperature is not None:
            options["temperature"] = self.settings.temperature
        if self.settings.num_predict is not None:  # the answer's cap (OpenAI: max_tokens)
            options["num_predict"] = self.settings.num_predict
        return options

    async def run_turn(self, msg: Message, inbound_id: int | None, *, retry: bool = False) -> None:
        """Answer one stored message: run the agent, stream and record the reply."""
        address = msg.address
        key = f"in{inbound_id}" if inbound_id is not None else None
        stream = self.open_stream(address, msg.message_id or None, key)
        if stream is None:
            logger.warning("no connector for %s; message %s waits", msg.platform, msg.event_id)
            return
        prompt, variant_id = await self.choose_prompt(msg)
        model = self.choose_model(address)
        ctx = TurnContext(
            model=model,
            system_prompt=compose_system_prompt(prompt),
            num_ctx=self.settings.num_ctx,
            tools=self.choose_tools(address),
            stream=stream,
            options=self.model_options(),
            keep_alive=self.settings.keep_alive,
            user=msg.user,
            address=address,
            chat_kind=str(msg.chat.kind),
            services=self.turn_services,
        )
        thread = self.thread_id(address, await self.store.epoch(address.key))
        typing = asyncio.create_task(self._keep_typing(stream))
        started = time.perf_counter()
        failure: str | None = None
        run_id = ""
        try:
            async with self._slots:
                outcome = await self.agent.run_turn(thread, msg.text, ctx, retry=retry)
            text, run_id = outcome.text.strip() or "(no answer)", outcome.run_id
            outcome_label = "ok"
        except OllamaError as exc:
            logger.error("model call failed for %s: %s %s", address.key, exc, exc.hint)
            text, failure, outcome_label = APOLOGY, f"model: {exc}", "model_error"
        except Exception as exc:
            if is_transient(exc):  # the database blinked: not the user's fault, try again
                logger.warning("turn in %s interrupted by storage: %s", address.key, exc)
                typing.cancel()
                raise
            logger.exception("turn in %s crashed", address.key)
            text, failure, outcome_label = CRASH_APOLOGY, f"crash: {type(exc).__name__}", "error"
        finally:
            typing.cancel()
        self.metrics.turns.labels(msg.platform, outcome_label).inc()
        self.metrics.turn_seconds.observe(time.perf_counter() - started)
        meta = ReplyMeta(model=model, variant_id=variant_id, run_id=run_id, failure=failure)
        reply_id = await self.store.record_reply(inbound_id, address, text, meta)
        ids = await stream.finish(text)
        await self.store.mark_reply_sent(reply_id, address, ids)
        record = ReplyRecord(reply_id, address, msg, text, meta, tuple(ids))
        for listener in self.reply_listeners:
            await listener(record)

    @staticmethod
    async def _keep_typing(stream: ReplySink) -> None:
        with contextlib.suppress(Exception):
            while not stream.started:
                await stream.typing()
                await asyncio.sleep(4.0)

    def _local_stream(
        self, address: Address, reply_to: str | None, _key: str | None
    ) -> ReplySink | None:
        connector = self.connectors.get(address.platform)
        return None if connector is None else ReplyStream(connector, address, reply_to)

    async def say(self, address: Address, text: str, *, reply_to: str | None = None) -> list[str]:
        """Send a plain (non-model) message, e.g. a command's answer."""
        stream = self.open_stream(address, reply_to, None)
        if stream is None:
            raise LookupError(f"no connector for {address.platform}")
        return await stream.finish(text)

    async def run_command(self, cmd: Command) -> None:
        """Run a chat command for its sender."""
        ctx = CommandContext(cmd, self, self.is_admin(cmd.user))
        await self.commands.dispatch(ctx)

    # --- recovery ----------------------------------------------------------------------
    async def recover(self) -> None:
        """Pick up work a previous run left unfinished: undelivered replies first (they are
        older), then unanswered messages.
        """
        for row in await self.store.pending_replies():
            if row.platform in self.connectors:
                try:
                    await self.deliver_reply(row)
                except Exception as exc:
                    logger.warning("could not deliver saved reply %s yet: %s", row.id, exc)
        for row in await self.store.unfinished_inbound():
            if row.platform not in self.connectors:
                continue
            await self.route(Job(message_from_row(row), int(row.id), retry=True))

    async def deliver_reply(self, row: Any) -> None:
        """Send a reply recorded in the outbox but not confirmed delivered, and mark it sent.

        It goes out under its message's reply key, so if a gateway had already delivered it
        the same messages are returned instead of new ones.
        """
        address = Address(row.platform, row.chat_id, row.thread_id)
        key = f"in{row.inbound_id}" if row.inbound_id is not None else None
        stream = self.open_stream(address, None, key)
        if stream is None:
            raise LookupError(f"no connector for {row.platform}")
        ids = await stream.finish(row.text)
        await self.store.mark_reply_sent(int(row.id), address, ids)

    # --- defaults ----------------------------------------------------------------------
    async def _default_prompt(self, _msg: Message) -> tuple[str | None, int | None]:
        return self.settings.system_prompt, None

    async def _default_person(self, user: User) -> str:
        """Without identity linking every account is its own person."""
        return user.key

    def _default_is_admin(self, user: User) -> bool:
        return user.platform == "terminal" or user.key in self.settings.admins

    def _register_core_commands(self) -> None:
        router = self.commands

        @router.command("help")
        async def help_(ctx: CommandContext) -> str:
            """List the commands you can use."""
            specs = router.specs(admin=ctx.is_admin)
            lines = [f"/{s.name}{' ' + s.args if s.args else ''} — {s.help}" for s in specs]
            return "Commands:\n" + "\n".join(lines)

        @router.command("reset", aliases=("new",))
        async def reset(ctx: CommandContext) -> str:
            """Start a new conversation (the agent forgets this chat's history)."""
            await self.store.reset(ctx.event.address.key)
            return "Started a new conversation."

        @router.command("retry")
        async def retry(ctx: CommandContext) -> str | None:
            """Try your last unanswered message again."""
            row = await self.store.last_failed(ctx.event.address.key)
            if row is None:
                return "There is nothing to retry."
            await self.run_turn(message_from_row(row), int(row.id), retry=True)
            return None


def message_from_row(row: Any) -> Message:
    """Rebuild the core message a stored inbound row came from."""
    return Message(
        platform=row.platform,
        event_id=row.event_id,
        chat=Chat(row.platform, row.chat_id, ChatKind(row.chat_kind)),
        user=User(row.platform, row.user_id, row.user_name),
        thread_id=row.thread_id,
        text=row.text,
        message_id=row.message_id,
        received_at=row.received_at,
    )
