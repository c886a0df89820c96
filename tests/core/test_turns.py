"""End to end through the real App: runtime, storage, LangGraph graph, fake Ollama over HTTP."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from sqlalchemy import select

from opencomputer.bot.config import Settings
from opencomputer.bot.storage.models import InboundRow, ReactionRow, ReplyPartRow, ReplyRow
from opencomputer.bot.testing import FakeOllama, Reply
from opencomputer.bot.testing.harness import Harness


async def _rows(h: Harness, model: type) -> list:
    async with h.app.store.engine.connect() as conn:
        return list(await conn.execute(select(model.__table__)))


async def test_tool_round_trip_reaches_the_user(
    settings: Settings, fake_ollama: FakeOllama
) -> None:
    fake_ollama.call_tool("current_time", timezone="UTC")
    fake_ollama.reply("It is late.")
    async with Harness(settings) as h:
        answer = await h.say("what time is it")
    assert answer == "It is late."
    first, second = fake_ollama.chats
    assert first["messages"][0]["role"] == "system"
    assert first["messages"][-1] == {"role": "user", "content": "what time is it"}
    assert {t["function"]["name"] for t in first["tools"]} >= {"current_time", "calculate"}
    assert first["options"]["num_ctx"] == settings.num_ctx
    tool_msg = second["messages"][-1]
    assert tool_msg["role"] == "tool" and tool_msg["tool_name"] == "current_time"
    assert "UTC" in tool_msg["content"]
    assert second["messages"][-2]["tool_calls"][0]["function"]["name"] == "current_time"


async def test_tool_errors_go_back_to_the_model(
    settings: Settings, fake_ollama: FakeOllama
) -> None:
    fake_ollama.call_tool("calculate", expression="1/0")
    fake_ollama.call_tool("no_such_tool")
    fake_ollama.reply("Could not compute.")
    async with Harness(settings) as h:
        assert await h.say("divide") == "Could not compute."
    assert fake_ollama.chats[1]["messages"][-1]["content"].startswith("error: cannot evaluate")
    assert "no tool named 'no_such_tool'" in fake_ollama.chats[2]["messages"][-1]["content"]


async def test_history_survives_a_restart(settings: Settings, fake_ollama: FakeOllama) -> None:
    async with Harness(settings) as h:
        await h.say("my name is Ann")
    async with Harness(settings) as h:
        await h.say("what is my name?")
    contents = [m["content"] for m in fake_ollama.chats[-1]["messages"]]
    assert contents[1:] == ["my name is Ann", "echo: my name is Ann", "what is my name?"]


async def test_reset_starts_a_new_conversation(settings: Settings, fake_ollama: FakeOllama) -> None:
    async with Harness(settings) as h:
        await h.say("remember 42")
        assert await h.command("reset") == "Started a new conversation."
        await h.say("hello")
    assert [m["role"] for m in fake_ollama.chats[-1]["messages"]] == ["system", "user"]


async def test_conversations_are_separate(settings: Settings, fake_ollama: FakeOllama) -> None:
    async with Harness(settings) as h:
        await h.say("I am alice", user="alice")
        await h.say("I am bob", user="bob")
        await h.say("thread one", user="alice", thread="t1")
    assert len(fake_ollama.chats[1]["messages"]) == 2
    assert len(fake_ollama.chats[2]["messages"]) == 2


async def test_reply_is_stored_with_its_parts_and_a_reaction_links_to_it(
    settings: Settings, fake_ollama: FakeOllama
) -> None:
    async with Harness(settings) as h:
        await h.say("hi")
        mid = h.last_message_id
        await h.react(mid, "👍")
        inbound = await _rows(h, InboundRow)
        replies = await _rows(h, ReplyRow)
        parts = await _rows(h, ReplyPartRow)
        reactions = await _rows(h, ReactionRow)
        await h.react(mid, "👍", added=False)
        after_removal = await _rows(h, ReactionRow)
    assert [(r.text, r.status) for r in inbound] == [("hi", "answered")]
    assert [(r.text, r.status, r.inbound_id, r.model) for r in replies] == [
        ("echo: hi", "sent", inbound[0].id, settings.model)
    ]
    assert [(p.reply_id, p.message_id) for p in parts] == [(replies[0].id, mid)]
    assert [(r.reply_id, r.emoji, r.user_id) for r in reactions] == [(replies[0].id, "👍", "alice")]
    assert after_removal == []


async def test_duplicate_event_is_answered_once(
    settings: Settings, fake_ollama: FakeOllama
) -> None:
    async with Harness(settings) as h:
        await h.say("once", event_id="evt-1")
        again = await h.say("once", event_id="evt-1")
    assert again == ""
    assert len(fake_ollama.chats) == 1


async def test_long_answer_is_streamed_and_split(
    make_settings: Callable[..., Settings], fake_ollama: FakeOllama
) -> None:
    text = "\n\n".join(f"Paragraph {i}: " + "lorem ipsum " * 30 for i in range(30))
    fake_ollama.reply(text, chunks=50)
    async with Harness(make_settings(), max_length=2000) as h:
        await h.say("write a lot")
        sends = [c for c in h.conn.calls if c.action == "send"]
        edits = [c for c in h.conn.calls if c.action == "edit"]
        final = [h.conn.messages[c.message_id] for c in sends]
    assert len(sends) == len(final) >= 6
    assert all(len(t) <= 2000 for t in final)
    assert " ".join(" ".join(final).split()) == " ".join(text.split())
    assert edits, "the reply was streamed by editing"
    assert sends[0].reply_to is not None and all(s.reply_to is None for s in sends[1:])


async def test_ollama_down_apologises_keeps_message_and_retry_works(
    settings: Settings, fake_ollama: FakeOllama
) -> None:
    fake_ollama.script.append(Reply(status=500, error="CUDA out of memory"))
    async with Harness(settings) as h:
        answer = await h.say("are you there?")
        assert "could not reach my language model" in answer
        inbound = await _rows(h, InboundRow)
        assert [(r.status, r.text) for r in inbound] == [("failed", "are you there?")]
        assert "CUDA out of memory" in inbound[0].error
        replies = await _rows(h, ReplyRow)
        assert replies[0].failure.startswith("model:")
        retried = await h.command("retry")
        assert retried == "echo: are you there?"
        assert [r.status for r in await _rows(h, InboundRow)] == ["answered"]
        assert await h.command("retry") == "There is nothing to retry."
    # the failed attempt left no trace in the graph history: the user's words appear once
    assert [m["content"] for m in fake_ollama.chats[-1]["messages"][1:]] == ["are you there?"]


async def test_ollama_stopped_mid_conversation(
    make_settings: Callable[..., Settings], fake_ollama: FakeOllama
) -> None:
    settings = make_settings(OC_MODEL_RETRY_SECONDS=0)
    async with Harness(settings) as h:
        assert await h.say("one") == "echo: one"
        await fake_ollama.stop()
        assert "could not reach my language model" in await h.say("two")
        await fake_ollama.start(int(settings.ollama_host.rsplit(":", 1)[1]))
        assert await h.say("three") == "echo: three"


async def test_unfinished_message_is_answered_after_restart(
    settings: Settings, fake_ollama: FakeOllama
) -> None:
    fake_ollama.reply("slow answer", delay=5)
    h = Harness(settings)
    await h.start()
    from opencomputer.bot.events import Chat, Message, User

    msg = Message(
        platform="test",
        event_id="x1",
        chat=Chat("test", "alice"),
        user=User("test", "alice"),
        text="hello?",
    )
    await h.app.runtime.emit(msg)
    await asyncio.sleep(0.2)  # the turn is waiting on the model
    await h.app.runtime.stop(grace=0)
    await h.stop()
    assert [c for c in h.conn.calls if c.action == "send"] == []
    async with Harness(settings) as h2:
        await h2.app.runtime.wait_idle()
        assert h2.last_text() == "echo: hello?"
        assert [r.status for r in await _rows(h2, InboundRow)] == ["answered"]


async def test_group_messages_need_a_mention(settings: Settings, fake_ollama: FakeOllama) -> None:
    async with Harness(settings) as h:
        assert await h.say("chatter", chat="g1", group=True, addressed=False) == ""
        assert await h.say("@bot hi", chat="g1", group=True, addressed=True) == "echo: @bot hi"
    assert len(fake_ollama.chats) == 1


async def test_bounded_turns_in_flight(
    make_settings: Callable[..., Settings], fake_ollama: FakeOllama
) -> None:
    active = peak = 0

    def responder(body: dict) -> Reply:
        return Reply("ok", delay=0.05)

    fake_ollama.responder = responder
    original = fake_ollama._chat

    async def counting(request):  # type: ignore[no-untyped-def]
        nonlocal active, peak
        active += 1
        peak = max(peak, active)
        try:
            return await original(request)
        finally:
            active -= 1

    fake_ollama._chat = counting  # type: ignore[method-assign]
    await fake_ollama.stop()
    await fake_ollama.start(int(fake_ollama.url.rsplit(":", 1)[1]))
    async with Harness(make_settings(OC_MAX_IN_FLIGHT=2)) as h:
        from opencomputer.bot.events import Chat, Message, User

        for i in range(6):
            await h.app.runtime.emit(
                Message(
                    platform="test",
                    event_id=f"c{i}",
                    chat=Chat("test", f"chat{i}"),
                    user=User("test", f"u{i}"),
                    text="go",
                )
            )
        await h.app.runtime.wait_idle()
    assert peak == 2
    assert len(fake_ollama.chats) == 6


async def test_history_is_trimmed_to_the_context_window(
    make_settings: Callable[..., Settings], fake_ollama: FakeOllama
) -> None:
    async with Harness(make_settings(OC_NUM_CTX=1024)) as h:
        for i in range(40):
            await h.say(f"message {i} " + "blah " * 40)
    last = fake_ollama.chats[-1]["messages"]
    assert last[0]["role"] == "system"
    assert last[1]["role"] == "user"  # cut at an exchange boundary
    assert sum(len(m["content"]) for m in last) / 3.5 < 1024
    assert last[-1]["content"].startswith("message 39")


async def test_a_restarting_ollama_is_waited_for(
    make_settings: Callable[..., Settings], fake_ollama: FakeOllama
) -> None:
    """Within OC_MODEL_RETRY_SECONDS the turn waits for Ollama instead of apologising."""
    settings = make_settings(OC_MODEL_RETRY_SECONDS=10)
    port = int(settings.ollama_host.rsplit(":", 1)[1])
    async with Harness(settings) as h:
        await fake_ollama.stop()

        async def come_back() -> None:
            await asyncio.sleep(0.6)
            await fake_ollama.start(port)

        task = asyncio.create_task(come_back())
        answer = await h.say("still there?")
        await task
    assert answer == "echo: still there?"


async def test_failover_between_ollama_hosts(
    make_settings: Callable[..., Settings], fake_ollama: FakeOllama
) -> None:
    """With two hosts, a dead one is skipped and the other answers every turn."""
    async with FakeOllama() as second:
        second.responder = lambda body: Reply("from the second host")
        settings = make_settings(
            OC_OLLAMA_HOSTS=f"{fake_ollama.url},{second.url}", OC_MODEL_RETRY_SECONDS=0
        )
        async with Harness(settings) as h:
            await fake_ollama.stop()
            answers = [await h.say(f"q{i}") for i in range(3)]
    assert answers == ["from the second host"] * 3
