"""Group rooms on a real Synapse: mentions, threads, commands, who may invite the bot."""

from __future__ import annotations

from opencomputer.bot.events import ChatKind, Command, Message
from tests.matrix.matrix_helpers import BotFactory, Human, Sink
from tests.matrix.synapse_server import SynapseServer


async def test_room_mention_thread_and_command(
    make_bot: BotFactory, human: Human, sink: Sink, synapse: SynapseServer
) -> None:
    bot = await make_bot()
    carol = synapse.register(f"carol{bot.user_id[4:12]}")
    room = await human.create_room([bot.user_id, carol.user_id], name="team")
    await human.wait_membership(room, bot.user_id, "join")

    chatter = await human.say(room, "just chatting with carol")
    msg = await sink.wait_for(lambda e: isinstance(e, Message) and e.event_id == chatter)
    assert msg.chat.kind is ChatKind.GROUP and not msg.addressed

    localpart = bot.user_id[1:].split(":")[0]
    asked = await human.say(
        room, f"{localpart}: what is **2+2**?", **{"m.mentions": {"user_ids": [bot.user_id]}}
    )
    msg = await sink.wait_for(lambda e: isinstance(e, Message) and e.event_id == asked)
    assert msg.addressed and msg.text == "what is **2+2**?" and msg.thread_id is None

    # A mention only through m.mentions (a client's pill) counts as well.
    pill = await human.say(room, "hey you", **{"m.mentions": {"user_ids": [bot.user_id]}})
    msg = await sink.wait_for(lambda e: isinstance(e, Message) and e.event_id == pill)
    assert msg.addressed

    # In a group the answer is a real reply to the question.
    reply_id = await bot.send(msg.address, "4", reply_to=asked)
    reply = await human.wait_for(lambda _r, e: e.get("event_id") == reply_id)
    assert reply["content"]["m.relates_to"] == {"m.in_reply_to": {"event_id": asked}}

    # A thread on the chatter: the bot is mentioned inside it and answers in the thread.
    in_thread = await human.say(
        room,
        f"{bot.user_id} thoughts?",
        **{
            "m.relates_to": {
                "rel_type": "m.thread",
                "event_id": chatter,
                "is_falling_back": True,
                "m.in_reply_to": {"event_id": chatter},
            }
        },
    )
    msg = await sink.wait_for(lambda e: isinstance(e, Message) and e.event_id == in_thread)
    assert msg.thread_id == chatter and msg.addressed and msg.text == "thoughts?"
    assert msg.address.thread_id == chatter and msg.reply_to is None
    answer = await bot.send(msg.address, "in the thread", reply_to=msg.message_id)
    event = await human.wait_for(lambda _r, e: e.get("event_id") == answer)
    assert event["content"]["m.relates_to"] == {
        "rel_type": "m.thread",
        "event_id": chatter,
        "is_falling_back": True,
        "m.in_reply_to": {"event_id": in_thread},
    }

    # A follow-up in the thread that (as clients do) falls back to the bot's answer is addressed.
    follow = await human.say(
        room,
        "and then?",
        **{
            "m.relates_to": {
                "rel_type": "m.thread",
                "event_id": chatter,
                "is_falling_back": True,
                "m.in_reply_to": {"event_id": answer},
            }
        },
    )
    msg = await sink.wait_for(lambda e: isinstance(e, Message) and e.event_id == follow)
    assert msg.addressed and msg.thread_id == chatter

    command = await human.say(room, "!reset  now please")
    cmd = await sink.wait_for(lambda e: isinstance(e, Command))
    assert (cmd.name, cmd.args, cmd.event_id, cmd.message_id) == (
        "reset",
        "now please",
        command,
        command,
    )
    assert cmd.chat.id == room and cmd.user.id == human.user_id

    # Notices (what bots send) are never treated as messages: no bot-to-bot loops.
    await human.send(room, {"msgtype": "m.notice", "body": "automated"})
    marker = await human.say(room, "marker")
    await sink.wait_for(lambda e: isinstance(e, Message) and e.event_id == marker)
    assert not [m for m in sink.messages() if m.text == "automated"]


async def test_custom_command_prefix(make_bot: BotFactory, human: Human, sink: Sink) -> None:
    bot = await make_bot(OC_MATRIX_COMMAND_PREFIX="/")
    room = await human.create_room([bot.user_id], direct=True)
    await human.wait_membership(room, bot.user_id, "join")
    await human.say(room, "!help")
    await human.say(room, "/help me")
    cmd = await sink.wait_for(lambda e: isinstance(e, Command))
    assert (cmd.name, cmd.args) == ("help", "me")
    assert [m.text for m in sink.messages()] == ["!help"]


async def test_invites_only_from_admins(
    make_bot: BotFactory, human: Human, synapse: SynapseServer
) -> None:
    bot = await make_bot()  # OC_ADMINS holds the human only
    stranger = Human(synapse.url, synapse.register(f"mallory{bot.user_id[4:12]}"))
    try:
        await stranger.sync(0)
        spam = await stranger.create_room([bot.user_id], direct=True)
        await stranger.wait_membership(spam, bot.user_id, "leave")  # declined
        room = await human.create_room([bot.user_id], direct=True)
        await human.wait_membership(room, bot.user_id, "join")
    finally:
        await stranger.client.close()


async def test_open_dm_policy_accepts_anyone(make_bot: BotFactory, synapse: SynapseServer) -> None:
    bot = await make_bot(OC_ADMINS="", OC_DM_POLICY="open")
    stranger = Human(synapse.url, synapse.register(f"dave{bot.user_id[4:12]}"))
    try:
        await stranger.sync(0)
        room = await stranger.create_room([bot.user_id], direct=True)
        await stranger.wait_membership(room, bot.user_id, "join")
    finally:
        await stranger.client.close()
