"""Long replies on a real Synapse."""

from __future__ import annotations

import json

from opencomputer.bot.events import Message
from opencomputer.connectors.matrix.render import HTML_FORMAT, MAX_CHARS
from tests.matrix.matrix_helpers import BotFactory, Human, Sink


async def test_long_reply_is_split_into_formatted_events(
    make_bot: BotFactory, human: Human, sink: Sink
) -> None:
    bot = await make_bot()
    room = await human.create_room([bot.user_id], direct=True)
    await human.wait_membership(room, bot.user_id, "join")
    ask = await human.say(room, "write a lot")
    msg = await sink.wait_for(lambda e: isinstance(e, Message) and e.event_id == ask)

    para = "Some **bold** words and ümlauts, then more text to fill the line. " * 12
    code = "```python\n" + "\n".join(f"print({i})  # <tag> & more" for i in range(900)) + "\n```"
    answer = "\n\n".join([para] * 30 + [code] + [para] * 10)
    chunks = bot.render(answer)
    assert len(chunks) >= 3 and all(len(c) <= MAX_CHARS for c in chunks)
    assert all(c.count("```") % 2 == 0 for c in chunks)  # code blocks closed and reopened

    ids = [await bot.send(msg.address, chunk) for chunk in chunks]
    events = [await human.wait_for(lambda _r, e, i=i: e.get("event_id") == i) for i in ids]
    for chunk, event in zip(chunks, events, strict=True):
        content = event["content"]
        assert content["body"] == chunk and content["format"] == HTML_FORMAT
        assert len(json.dumps(event, ensure_ascii=False).encode()) < 65_536
    html = [e["content"]["formatted_body"] for e in events]
    assert html[0].startswith("<p>Some <strong>bold</strong> words and ümlauts")
    assert any('<pre><code class="language-python">' in h for h in html)
    assert any("# &lt;tag&gt; &amp; more" in h for h in html)
    # An edit of a full-size chunk (text twice) still fits one event.
    await bot.edit(msg.address, ids[0], chunks[0] + " (edited)")
    edit = await human.wait_for(
        lambda _r, e: e["content"].get("m.relates_to", {}).get("rel_type") == "m.replace"
    )
    assert edit["content"]["m.new_content"]["body"].endswith("(edited)")
