"""The runtime: accepts events, runs one turn at a time per conversation, streams replies.

Every accepted message is persisted before ``emit`` returns (so a connector may ack it), and
handled later by the conversation's lane; a bounded number of turns talk to the model at once.
Messages a crash or shutdown left unanswered are handled again at the next start.

The delivery protocol, in the order a crash can interrupt it (both modes):

1. ``accept_inbound`` stores the message (``accepted``); only then may the platform be acked.
2. The lane runs the turn; the reply streams under the key ``in<inbound id>``. Each new platform
   message is posted as a placeholder, its id stored (``reply_posts``), then edited to the text.
3. ``record_reply`` stores the final text (reply ``pending``, message ``replying``).
4. The final text is shown (edits of the stored messages), then ``mark_reply_sent`` (reply
   ``sent`` with its parts, message ``answered``/``failed``).

A job run again (a restart's recovery, a storage error) first looks where its message stands:
done -> nothing; reply recorded -> deliver that reply only (never the turn again); otherwise
the turn runs again, editing the messages step 2 stored. At start, recovery queues unfinished
messages (oldest first) before connectors take input; lanes run once connectors are up.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Protocol

from opencomputer.bot.commands import CommandContext, CommandRouter
from opencomputer.bot.config import Settings
from opencomputer.bot.connector import Connector, RuntimeStopped
from opencomputer.bot.events import Address, Chat, ChatKind, Command, Message, Reaction, User
from opencomputer.bot.hooks import (
    INBOUND_STAGES,
    TURN_STAGES,
    Hooks,
    TurnCall,
    TurnInputError,
    compose,
    hookimpl,
)
from opencomputer.bot.logs import turn_context, turn_id_for
from opencomputer.bot.metrics import Metrics
from opencomputer.bot.middleware import Handler, Middleware, ignore_bots, require_address
from opencomputer.bot.ollama import OllamaError
from opencomputer.bot.reply import ReplySink, ReplyStream, reply_key
from opencomputer.bot.storage.attachments import attachments_from_row
from opencomputer.bot.storage.disk import DiskFull, guard_for_url, refusing
from opencomputer.bot.storage.engine import is_transient
from opencomputer.bot.storage.store import ReplyMeta, SqlStore
from opencomputer.bot.tools import Tool, ToolRegistry
from opencomputer.graphs.agent.prompts import compose_system_prompt
from opencomputer.graphs.agent.state import TurnContext

__all__ = ["Agent", "Job", "ReplyRecord", "Runtime", "RuntimeStopped"]

logger = logging.getLogger(__name__)

APOLOGY = (
    "Sorry, I could not reach my language model just now, so I could not answer. "
    "Your message is saved: send /retry to try again."
)
CRASH_APOLOGY = "Sorry, something went wrong while answering. Your message is saved: send /retry."


class Agent(Protocol):
    """What the runtime needs from the agent graph."""

    graph: Any
    """The compiled graph (features read checkpoints and resume paused threads through it)."""

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


class _CoreRules:
    """The core's own inbound rules, registered on the seam like a feature's."""

    def __init__(self, group_trigger: str) -> None:
        self.rules: list[Middleware] = [ignore_bots, require_address(group_trigger)]

    @hookimpl
    def oc_inbound_rules(self) -> list[tuple[str, Middleware]]:
        return [("filter", rule) for rule in self.rules]


class Runtime:
    """Owns connectors, conversation lanes and the turn loop.

    Features extend it only through the hooks of ``bot/hooks.py`` (``hooks.register``); what a
    turn goes through, in order, is :meth:`_accept` (inbound rules first) and :meth:`run_turn`.
    """

    def __init__(
        self,
        *,
        settings: Settings,
        store: SqlStore,
        agent: Agent,
        tools: ToolRegistry,
        commands: CommandRouter | None = None,
        metrics: Metrics | None = None,
        hooks: Hooks | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.agent = agent
        self.tools = tools
        self.commands = commands or CommandRouter()
        self.metrics = metrics or Metrics()
        self.connectors: dict[str, Connector] = {}
        self.started_at = time.time()
        self.hooks = hooks or Hooks()
        self.hooks.register(_CoreRules(settings.group_trigger), "core")
        # Services graph nodes reach through ``TurnContext.services`` (oc_turn_services).
        self.turn_services: dict[str, Any] = {}
        # The chains features declare (oc_inbound_rules, oc_turn_layers), built by ``start``.
        self._handler: Handler = self._accept
        self._agent_call: Callable[[TurnCall], Awaitable[Any]] = self._call_agent
        self._slots = asyncio.Semaphore(settings.max_in_flight)
        self._lanes: dict[str, _Lane] = {}
        self._accepting = False
        self._stopped = False
        self._open = asyncio.Event()  # lanes run once connectors are up (open_lanes)
        self._queued: set[int] = set()  # stored messages queued or running: never twice
        self._register_core_commands()

    # --- wiring ------------------------------------------------------------------------
    def add_connector(self, connector: Connector) -> None:
        """Route replies for ``connector.platform`` through this connector."""
        self.connectors[connector.platform] = connector

    def build(self) -> None:
        """Compose what the registered features declared: the inbound rules, the layers
        around the agent call, the turn services. Called by :meth:`start` (and again by a
        test that registers a feature later).
        """
        call = self.hooks.call
        rules = self.hooks.staged(call.oc_inbound_rules(), INBOUND_STAGES)
        self._handler = compose(rules, self._accept)
        self._agent_call = compose(
            self.hooks.staged(call.oc_turn_layers(), TURN_STAGES), self._call_agent
        )
        self.turn_services = {
            k: v for services in call.oc_turn_services() for k, v in services.items()
        }

    # --- lifecycle ---------------------------------------------------------------------
    async def start(self) -> None:
        """Accept events from connectors (after :meth:`recover`, before :meth:`open_lanes`)."""
        self.build()
        self._accepting = True

    def open_lanes(self) -> None:
        """Let lanes run their jobs: connectors are up, so answers can be delivered."""
        self._open.set()

    async def stop(self, grace: float | None = None) -> None:
        """Stop accepting, let running turns finish for ``grace`` seconds, cancel the rest.

        Cancelled or queued messages stay ``accepted`` in storage and run at the next start.
        """
        self._accepting = False
        self._stopped = True
        self._open.set()  # held lanes wake up, find no jobs and end
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
        self._queued.clear()

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
            await self.hooks.notify(self.hooks.call.oc_reaction(reaction=event, reply_id=reply_id))
            return
        if isinstance(event, Message):
            inbound_id = await self.store.accept_inbound(event)
            if inbound_id is None:
                logger.info("duplicate %s event %s ignored", event.platform, event.event_id)
                return
            await self.route(Job(event, inbound_id))
            return
        await self.route(Job(event))

    async def route(self, job: Job) -> None:
        """Send an accepted job where it runs: this process's lanes, unless a feature takes it
        (a scale-out gateway publishes it to the workers).
        """
        taken = self.hooks.call.oc_route(job=job)
        if taken is None:
            await self.dispatch(job)
        else:
            await taken

    async def dispatch(self, job: Job) -> None:
        """Queue an accepted job on its conversation's lane (one turn at a time, in order)."""
        if self._stopped:
            raise RuntimeStopped("opencomputer is shutting down")
        self._enqueue(job)

    def _enqueue(self, job: Job) -> None:
        if job.work is None and job.inbound_id is not None:
            if job.inbound_id in self._queued:  # recovery and a redelivery met: once is enough
                logger.info("message %s is already queued", job.inbound_id)
                return
            self._queued.add(job.inbound_id)
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
            await self._open.wait()
            while lane.jobs:
                job = lane.jobs.popleft()
                with turn_context(turn_id_for(job.event.platform, job.event.event_id)):
                    again = await self._handle(key, lane, job)
                if not again and job.work is None and job.inbound_id is not None:
                    self._queued.discard(job.inbound_id)
        finally:
            if self._lanes.get(key) is lane:
                del self._lanes[key]
            self.metrics.queue_depth.set(self.queue_depth)

    async def _handle(self, key: str, lane: _Lane, job: Job) -> bool:
        """Run one job; True when it was queued again (a transient storage error)."""
        try:
            if job.work is not None:
                await job.work()
            elif isinstance(job.event, Command):
                await self.run_command(job.event)
            else:
                await self.answer(job.event, job.inbound_id, retry=job.retry)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if is_transient(exc) and job.attempts < 3:
                await asyncio.sleep(0.5 * 2**job.attempts)
                job.attempts += 1
                job.retry = True  # answer() then checks what the failed attempt got done
                lane.jobs.appendleft(job)  # first again: order in the chat holds
                return True
            # Not handled: stored messages run again at the next start, and a scale-out
            # worker's unacknowledged stream entry is claimed again.
            logger.exception("handling %s in %s failed", type(job.event).__name__, key)
        return False

    async def answer(self, msg: Message, inbound_id: int | None, *, retry: bool = False) -> None:
        """Answer a stored message once. Run again (``retry``: recovery, a storage error), it
        first checks what an earlier attempt got done: an answered message is left alone and a
        recorded reply is only delivered, so a turn whose answer exists never runs twice.
        """
        if retry and inbound_id is not None:
            status = await self.store.inbound_status(inbound_id)
            if status not in ("accepted", "processing", "replying"):
                return  # answered (or failed, ignored) by an earlier attempt
            if status == "replying":
                reply = await self.store.pending_reply_for(inbound_id)
                if reply is not None:
                    await self.deliver_reply(reply, reply_to=msg.message_id or None)
                    return
        await self.run_turn(msg, inbound_id, retry=retry, resume=retry)

    # --- turns -------------------------------------------------------------------------
    def model_options(self) -> dict[str, Any]:
        """Ollama options from the settings: only the ones set, so the model keeps its own."""
        options: dict[str, Any] = {}
        if self.settings.temperature is not None:
            options["temperature"] = self.settings.temperature
        if self.settings.num_predict is not None:  # the answer's cap (OpenAI: max_tokens)
            options["num_predict"] = self.settings.num_predict
        return options

    async def run_turn(
        self,
        msg: Message,
        inbound_id: int | None,
        *,
        retry: bool = False,
        resume: bool = False,
    ) -> None:
        """Answer one stored message: run the agent, stream and record the reply.

        ``retry`` tells the graph the message may be in its thread already; ``resume`` edits
        the messages an interrupted run of this reply posted instead of posting new ones.
        """
        address = msg.address
        stream = self.open_stream(address, msg.message_id or None, reply_key(inbound_id))
        if stream is None:
            logger.warning("no connector for %s; message %s waits", msg.platform, msg.event_id)
            return
        if resume:
            await stream.resume()
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
            turn_key=reply_key(inbound_id),
        )
        thread = self.thread_id(address, await self.store.epoch(address.key))
        typing = asyncio.create_task(self._keep_typing(stream))
        started = time.perf_counter()
        failure: str | None = None
        run_id = ""
        try:
            async with self._slots:
                outcome = await self._agent_call(TurnCall(thread, msg.text, ctx, msg, retry))
            text, run_id = outcome.text.strip() or "(no answer)", outcome.run_id
            outcome_label = "ok"
        except OllamaError as exc:
            logger.error("model call failed for %s: %s %s", address.key, exc, exc.hint)
            text, failure, outcome_label = APOLOGY, f"model: {exc}", "model_error"
        except TurnInputError as exc:
            logger.warning("message in %s could not be read: %s", address.key, exc)
            text = f"{exc} Your message is saved: send /retry to try again."
            failure, outcome_label = f"input: {exc}", "input_error"
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
        ids = await self._deliver(stream, reply_id, address, text)
        record = ReplyRecord(reply_id, address, msg, text, meta, tuple(ids))
        await self.hooks.notify(self.hooks.call.oc_reply_sent(record=record))

    async def _call_agent(self, call: TurnCall) -> Any:
        """The innermost step of a turn, inside every layer of ``oc_turn_layers``."""
        return await self.agent.run_turn(call.thread_id, call.text, call.ctx, retry=call.retry)

    async def _deliver(
        self, stream: ReplySink, reply_id: int, address: Address, text: str
    ) -> list[str]:
        """Show a recorded reply and mark it sent. A storage error retries only this (the
        stream keeps its messages, so a repeat edits them): never the turn, never a new post.
        """
        for attempt in range(4):
            try:
                ids = await stream.finish(text)
                await self.store.mark_reply_sent(reply_id, address, ids)
                return ids
            except Exception as exc:
                if not is_transient(exc) or attempt == 3:
                    raise  # the reply stays pending: the next attempt or start delivers it
                logger.warning("reply %s: delivery interrupted, again: %s", reply_id, exc)
                await asyncio.sleep(0.5 * 2**attempt)
        raise AssertionError("unreachable")

    @staticmethod
    async def _keep_typing(stream: ReplySink) -> None:
        with contextlib.suppress(Exception):
            while not stream.started:
                await stream.typing()
                await asyncio.sleep(4.0)

    def open_stream(
        self, address: Address, reply_to: str | None, key: str | None
    ) -> ReplySink | None:
        """Where a reply goes: this process's connector for the platform, unless a feature
        takes it (a scale-out worker relays it to the gateway). None: no connector here.
        """
        sink: ReplySink | None = self.hooks.call.oc_open_stream(
            address=address, reply_to=reply_to, key=key
        )
        if sink is not None:
            return sink
        connector = self.connectors.get(address.platform)
        if connector is None:
            return None
        ledger = self.store if connector.capabilities.keeps_messages else None
        return ReplyStream(connector, address, reply_to, key=key, ledger=ledger)

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
    async def recover(self, *, replies: bool = True) -> None:
        """Queue the work a previous run left unfinished, before connectors take new input
        (call it before :meth:`start`; lanes run it once :meth:`open_lanes`): new messages then
        queue behind it, and none is queued twice. Undelivered replies to no stored message
        (reminders; with ``replies``) come first, then unfinished messages, oldest first: a
        recorded answer is delivered, never made again.
        """
        if replies:
            for row in await self.store.pending_replies():
                if row.inbound_id is None and row.platform in self.connectors:
                    self._enqueue(Job(_reply_event(row), work=partial(self._deliver_saved, row)))
        for row in await self.store.unfinished_inbound(replying=True):
            if row.platform not in self.connectors:
                continue
            await self.route(Job(message_from_row(row), int(row.id), retry=True))

    async def _deliver_saved(self, row: Any) -> None:
        try:
            await self.deliver_reply(row)
        except Exception as exc:
            logger.warning("could not deliver saved reply %s yet: %s", row.id, exc)

    async def deliver_reply(self, row: Any, *, reply_to: str | None = None) -> None:
        """Send a reply recorded in the outbox but not confirmed delivered, and mark it sent.

        It goes out under its reply key: the messages an earlier attempt posted are edited (a
        gateway that had delivered it returns the same ones), never posted again.
        """
        address = Address(row.platform, row.chat_id, row.thread_id)
        stream = self.open_stream(address, reply_to, reply_key(row.inbound_id, int(row.id)))
        if stream is None:
            raise LookupError(f"no connector for {row.platform}")
        await stream.resume()
        await self._deliver(stream, int(row.id), address, row.text)

    # --- policies: the first feature that answers wins, else the core's default -----------
    async def choose_prompt(self, msg: Message) -> tuple[str | None, int | None]:
        """The system prompt and its variant id (prompt tuning), else the configured one."""
        answer = await self.hooks.first(self.hooks.call.oc_choose_prompt(message=msg))
        return (self.settings.system_prompt, None) if answer is None else answer

    def choose_model(self, address: Address) -> str:
        """The model for a conversation (``/model``), else the configured one."""
        return str(self.hooks.call.oc_choose_model(address=address) or self.settings.model)

    def choose_tools(self, address: Address) -> list[Tool]:
        """The core's tools plus those features offer here (plugins enabled in this chat)."""
        tools = {tool.name: tool for tool in self.tools}
        for offered in self.hooks.call.oc_turn_tools(address=address):
            for tool in offered:
                tools.setdefault(tool.name, tool)
        return list(tools.values())

    def is_admin(self, user: User) -> bool:
        """Access control's answer, else: the terminal's user and ``OC_ADMINS``."""
        answer = self.hooks.call.oc_is_admin(user=user)
        if answer is not None:
            return bool(answer)
        return user.platform == "terminal" or user.key in self.settings.admins

    async def person_of(self, user: User) -> str:
        """The person an account belongs to; without identity linking, the account itself."""
        answer = await self.hooks.first(self.hooks.call.oc_person_of(user=user))
        return user.key if answer is None else str(answer)

    @staticmethod
    def thread_id(address: Address, epoch: int) -> str:
        """The graph thread of a conversation's current epoch (``/reset`` starts a new one)."""
        return f"{address.key}#{epoch}"

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
            await self.store.forget_posts(f"in{row.id}")  # a new answer: a new message
            await self.run_turn(message_from_row(row), int(row.id), retry=True)
            return None


def _reply_event(row: Any) -> Message:
    """A stand-in event for a saved reply's lane job (it only names the conversation)."""
    return Message(
        platform=row.platform,
        event_id=f"reply{row.id}",
        chat=Chat(row.platform, row.chat_id),
        user=User(row.platform, "", ""),
        thread_id=row.thread_id,
        text="",
    )


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
        attachments=attachments_from_row(row),
    )
