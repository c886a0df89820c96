from __future__ import annotations

import asyncio

from opencomputer.bot.events import Address
from opencomputer.connectors.discord import DiscordConnector
from tests.discord import discord_payloads as p
from tests.discord.fake_discord import FakeDiscord

CHANNEL = Address("discord", p.CHANNEL_ID)


async def test_send_and_edit(fake: FakeDiscord, connector: DiscordConnector):
    mid = await connector.send(CHANNEL, "Thinking…")
    await connector.edit(CHANNEL, mid, "**Done**: 42")
    (msg,) = fake.bot_messages(p.CHANNEL_ID)
    assert msg["id"] == mid and msg["content"] == "**Done**: 42" and msg["edits"] == 1
    (post,) = fake.calls("POST", rf"/channels/{p.CHANNEL_ID}/messages")
    assert post.body["content"] == "Thinking…"
    # the model's text must never ping @everyone or users
    assert post.body["allowed_mentions"]["parse"] == []
    (patch,) = fake.calls("PATCH", rf"/channels/{p.CHANNEL_ID}/messages/{mid}")
    assert patch.body["content"] == "**Done**: 42"
    assert fake.unexpected == []


async def test_reply_to_references_the_question(fake: FakeDiscord, connector: DiscordConnector):
    question = fake.new_id()
    await connector.send(CHANNEL, "answer", reply_to=question)
    (post,) = fake.calls("POST", rf"/channels/{p.CHANNEL_ID}/messages")
    ref = post.body["message_reference"]
    assert ref["message_id"] == int(question) and ref["fail_if_not_exists"] is False


async def test_thread_address_posts_in_thread(fake: FakeDiscord, connector: DiscordConnector):
    where = Address("discord", p.CHANNEL_ID, p.THREAD_ID)
    mid = await connector.send(where, "in thread")
    await connector.edit(where, mid, "in thread, edited")
    assert fake.messages[mid]["channel_id"] == p.THREAD_ID
    assert fake.messages[mid]["content"] == "in thread, edited"


async def test_long_answer_is_split_with_code_blocks_intact(
    fake: FakeDiscord, connector: DiscordConnector
):
    code = "\n".join(f"    print({i})  # line {i}" for i in range(120))
    answer = "Here is the script:\n\n```python\n" + code + "\n```\n\n" + "Done. " * 200
    assert len(answer) > 4000
    chunks = connector.render(answer)
    assert len(chunks) >= 3
    assert all(len(c) <= 2000 for c in chunks)
    for chunk in chunks:
        assert chunk.count("```") % 2 == 0, chunk  # every chunk opens and closes its fences
    assert chunks[1].startswith("```python\n")
    ids = [await connector.send(CHANNEL, c) for c in chunks]
    posted = [fake.messages[i]["content"] for i in ids]
    assert posted == chunks
    body = "".join(posted)
    for i in range(120):
        assert f"print({i})  # line {i}" in body
    assert body.count("Done.") == 200


async def test_render_keeps_markdown(connector: DiscordConnector):
    assert connector.render("**bold** and `code`\n\n# Title") == ["**bold** and `code`\n\n# Title"]
    assert connector.render("") == []


async def test_429_is_survived_and_the_text_lands(fake: FakeDiscord, connector: DiscordConnector):
    fake.fail_next("POST", rf"/channels/{p.CHANNEL_ID}/messages", status=429, count=2)
    mid = await connector.send(CHANNEL, "after the storm")
    assert fake.messages[mid]["content"] == "after the storm"
    posts = fake.calls("POST", rf"/channels/{p.CHANNEL_ID}/messages")
    assert len(posts) == 3  # two 429s, then the message
    assert [m["content"] for m in fake.bot_messages()] == ["after the storm"]

    fake.fail_next("PATCH", rf"/channels/{p.CHANNEL_ID}/messages/{mid}", status=429)
    await connector.edit(CHANNEL, mid, "edited after a 429")
    assert fake.messages[mid]["content"] == "edited after a 429"


async def test_typing_and_react(fake: FakeDiscord, connector: DiscordConnector):
    mid = await connector.send(CHANNEL, "hi")
    await connector.typing(CHANNEL)
    await connector.react(CHANNEL, mid, "👍")
    assert fake.calls("POST", rf"/channels/{p.CHANNEL_ID}/typing")
    (put,) = fake.calls("PUT", rf"/channels/{p.CHANNEL_ID}/messages/{mid}/reactions/.+/@me")
    assert "%F0%9F%91%8D" in put.path or "👍" in put.path


async def test_typing_failure_is_swallowed(fake: FakeDiscord, connector: DiscordConnector):
    fake.fail_next("POST", rf"/channels/{p.CHANNEL_ID}/typing", status=403)
    await connector.typing(CHANNEL)  # best effort: no exception
    assert fake.calls("POST", rf"/channels/{p.CHANNEL_ID}/typing")


async def test_concurrent_sends_to_many_channels(fake: FakeDiscord, connector: DiscordConnector):
    where = [Address("discord", p.DM_CHANNEL_ID), CHANNEL]
    ids = await asyncio.gather(*(connector.send(where[i % 2], f"n{i}") for i in range(10)))
    assert sorted(fake.messages[i]["content"] for i in ids) == sorted(f"n{i}" for i in range(10))


async def test_channel_rate_limit_is_honoured(fake: FakeDiscord, connector: DiscordConnector):
    # Discord's 5 messages per 5 s per channel, scaled down to 5 per 0.5 s for speed.
    fake.channel_limit = (5, 0.5)
    texts = [f"part {i}" for i in range(12)]
    first = await connector.send(CHANNEL, texts[0])  # the first answer tells the bucket
    ids = [first, *await asyncio.gather(*(connector.send(CHANNEL, t) for t in texts[1:]))]
    assert sorted(fake.messages[i]["content"] for i in ids) == sorted(texts)
    assert len(set(ids)) == 12
    times = fake.accepted_at
    assert len(times) == 12 and times[-1] - times[0] >= 1.0  # 12 messages need three windows
    # discord.py read the bucket headers and waited instead of running into 429s (sending all
    # 11 at once blind would draw 6; a loaded machine can skew one window edge, so allow 2)
    assert fake.rate_limited <= 2
