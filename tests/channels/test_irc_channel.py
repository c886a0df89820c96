"""The IRC channel package, end to end: a third-party channel installed into its own venv,
found through ``opencomputer.channels``, served by ``opencomputer run`` against a real IRC
server (ngIRCd) on loopback, answering through the real runtime with a fake model.

ngIRCd drops a client that sends a line over 512 bytes ("Request too long"), so a wrong split
is a lost answer here, not a silently truncated one.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from opencomputer.bot.testing import FakeOllama
from tests.channels.irc_kit import (
    NGIRCD,
    BotProcess,
    IrcClient,
    IrcServer,
    free_port,
    make_venv,
)

# A process start, a server restart, paced lines: generous on a busy two-core machine.
pytestmark = pytest.mark.timeout(300)

CHANNEL = "#oc"
BOT = "ocbot"


class GatedOllama(FakeOllama):
    """A fake model that holds each answer until the test opens the gate."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()
        self.gate.set()
        self.asked = asyncio.Event()

    async def next_reply(self, body: dict[str, Any]) -> Any:
        self.asked.set()
        await self.gate.wait()
        return await super().next_reply(body)


@pytest.fixture(scope="session")
def irc_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_venv(tmp_path_factory.mktemp("irc-venv"))


@pytest.fixture
async def ircd(tmp_path: Path) -> AsyncIterator[IrcServer]:
    if NGIRCD is None:
        message = "ngircd is not installed: scripts/system-deps.sh installs it"
        if os.environ.get("CI"):
            pytest.fail(f"{message} (mandatory in CI)", pytrace=False)
        pytest.skip(message)
    server = IrcServer(tmp_path)
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def model() -> AsyncIterator[GatedOllama]:
    async with GatedOllama() as fake:
        yield fake


@pytest.fixture
async def bot(
    irc_python: Path, ircd: IrcServer, model: GatedOllama, tmp_path: Path
) -> AsyncIterator[BotProcess]:
    env = {
        "OLLAMA_HOST": model.url,
        "OC_DATA_DIR": str(tmp_path / "data"),
        "OC_HTTP_PORT": str(free_port()),
        "OC_DM_POLICY": "open",
        "OC_RATE_LIMIT_USER": "0",
        "OC_RATE_LIMIT_CHAT": "0",
        "IRC_SERVER": f"127.0.0.1:{ircd.port}",
        "IRC_NICK": BOT,
        "IRC_CHANNELS": CHANNEL,
        "IRC_RECONNECT_DELAY": "0.1",
        "IRC_RECONNECT_MAX": "0.5",
        "IRC_LINE_INTERVAL": "0.05",
    }
    proc = BotProcess(irc_python, tmp_path, env)
    await proc.start()
    yield proc
    code = await proc.stop()
    print(proc.output()[-6000:])  # shown when the test failed
    assert code == 0, proc.output()[-3000:]


async def person(ircd: IrcServer, nick: str = "ada") -> IrcClient:
    """Someone in the channel once the bot has joined it."""
    client = IrcClient(nick, ircd.port)
    await client.connect(CHANNEL)
    client.send(f"NAMES {CHANNEL}")

    def bot_is_there(line: str) -> bool:
        names = [n.lstrip("@+%&~") for n in line.rsplit(":", 1)[-1].split()]
        joined = line.startswith(f":{BOT}!") and " JOIN " in line
        return joined or (f" 353 {nick} " in line and BOT in names)

    await client.wait_for(bot_is_there, timeout=90)
    return client


async def answers(client: IrcClient, target: str, count: int, timeout: float = 60) -> list[str]:
    await client.wait_for(lambda _l: len(client.privmsgs(BOT, target)) >= count, timeout)
    return client.privmsgs(BOT, target)


def test_the_package_is_found_through_its_entry_point_only_where_installed(
    irc_python: Path,
) -> None:
    code = (
        "from opencomputer.bot.channels import load_channels; "
        "print([c.name for c in load_channels()])"
    )
    there = subprocess.run([str(irc_python), "-c", code], capture_output=True, text=True)
    here = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert "'irc'" in there.stdout, there.stderr
    assert "'telegram'" in there.stdout
    assert "'irc'" not in here.stdout  # the project's own venv is left as it was


async def test_a_mention_in_a_channel_and_a_private_message_are_answered(
    bot: BotProcess, ircd: IrcServer, model: GatedOllama
) -> None:
    ada = await person(ircd)
    try:
        model.reply("Hello Ada, nice to meet you.")
        ada.say(CHANNEL, f"{BOT}: hello there")
        assert await answers(ada, CHANNEL, 1) == ["Hello Ada, nice to meet you."]
        asked = [m for m in model.chats[-1]["messages"] if m["role"] == "user"]
        assert "hello there" in asked[-1]["content"]
        assert BOT + ":" not in asked[-1]["content"]  # the address is not part of the text

        model.reply("Only you can read this.")
        ada.say(BOT, "a secret question")
        assert await answers(ada, "ada", 1) == ["Only you can read this."]
    finally:
        await ada.close()


async def test_a_long_answer_is_split_into_lines_within_512_bytes(
    bot: BotProcess, ircd: IrcServer, model: GatedOllama
) -> None:
    words = ["naïve", "café", "日本語の文章", "😀emoji😀", "x" * 700, "end."]
    text = " ".join(words[i % len(words)] for i in range(180))  # ~4 KB, multi-byte throughout
    model.reply(text, chunks=40)
    ada = await person(ircd)
    try:
        ada.say(CHANNEL, f"{BOT}, tell me everything")
        await ada.wait_for(lambda _l: " ".join(ada.privmsgs(BOT, CHANNEL)).endswith("end."), 120)
        got = ada.privmsgs(BOT, CHANNEL)
        assert len(got) >= 9
        relayed = [r for r in ada.raw if r.startswith(f":{BOT}!".encode()) and b" PRIVMSG " in r]
        assert max(len(r) for r in relayed) <= 512
        assert max(len(r) for r in relayed) >= 480  # lines are filled, not cut timidly
        for r in relayed:
            r.decode("utf-8")  # strict: no character cut in half
        assert " ".join(got).replace(" ", "") == text.replace(" ", "")
        assert "Request too long" not in bot.output()
    finally:
        await ada.close()


async def test_after_a_server_restart_the_bot_reconnects_and_loses_no_message(
    bot: BotProcess, ircd: IrcServer, model: GatedOllama
) -> None:
    """The answer to a question asked before the restart is finished while the server is
    down: it must wait for the reconnect and arrive, and the next question must work too.
    """
    ada = await person(ircd)
    model.gate.clear()
    model.asked.clear()
    model.reply("First answer, after the restart.")
    ada.say(CHANNEL, f"{BOT}: one")
    await asyncio.wait_for(model.asked.wait(), 60)
    await ada.close()
    await ircd.stop()
    async with Refuser(ircd.port) as refuser:  # the port answers nothing while "down"
        model.gate.set()
        await turns_finished(bot, 1)  # the answer exists; now it can only wait to be sent
        await refuser.attempts(3)  # the bot is alive and still reconnecting meanwhile
    await ircd.start()  # same port, empty server: everyone must come back and rejoin

    bob = await person(ircd, "bob")
    try:
        assert await answers(bob, CHANNEL, 1) == ["First answer, after the restart."]
        model.reply("Second answer.")
        bob.say(CHANNEL, f"{BOT}: two")
        assert await answers(bob, CHANNEL, 2) == [
            "First answer, after the restart.",
            "Second answer.",
        ]
        assert "closed the connection" in bot.output()
    finally:
        await bob.close()


class Refuser:
    """A TCP listener that closes every connection at once, counting the attempts."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.count = 0
        self._changed = asyncio.Event()
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> Refuser:
        async def refuse(_r: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.count += 1
            self._changed.set()
            writer.close()

        self._server = await asyncio.start_server(refuse, "127.0.0.1", self.port)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    async def attempts(self, more: int, timeout: float = 60) -> None:
        goal = self.count + more
        async with asyncio.timeout(timeout):
            while self.count < goal:
                self._changed.clear()
                await self._changed.wait()


async def turns_finished(bot: BotProcess, count: int, timeout: float = 60) -> None:
    """Poll the bot's /metrics until ``count`` IRC turns are done (model answered)."""
    url = f"http://127.0.0.1:{bot.env['OC_HTTP_PORT']}/metrics"
    async with aiohttp.ClientSession() as http, asyncio.timeout(timeout):
        while True:
            async with http.get(url) as resp:
                body = await resp.text()
            done = sum(
                float(line.rsplit(" ", 1)[1])
                for line in body.splitlines()
                if line.startswith("oc_turns_total{") and 'platform="irc"' in line
            )
            if done >= count:
                return
            await asyncio.sleep(0.05)


def test_split_text_never_cuts_a_character_and_keeps_every_word(irc_python: Path) -> None:
    """Every budget from the smallest allowed up, over text mixing 1- to 4-byte characters,
    words longer than a line, blank lines and CR/LF (IRC lines carry neither).
    """
    code = """
from opencomputer_irc.protocol import split_text
text = "a\\r\\nnaïve 日本語の文章 😀😀😀😀 " + "z" * 90 + "\\n\\n  end é"
for budget in range(16, 120):
    lines = split_text(text, budget)
    assert all(0 < len(x.encode()) <= budget for x in lines), budget
    assert all("\\n" not in x and "\\r" not in x and x == x.strip() for x in lines), budget
    assert "".join("".join(lines).split()) == "".join(text.split()), budget
try:
    split_text("x", 15)
except ValueError:
    pass
else:
    raise AssertionError("a budget too small to hold a 4-byte character must be refused")
print("ok")
"""
    done = subprocess.run([str(irc_python), "-c", code], capture_output=True, text=True)
    assert done.stdout.strip() == "ok", done.stderr


async def test_doctor_lists_and_runs_the_installed_channels_check(
    irc_python: Path, ircd: IrcServer, model: GatedOllama, tmp_path: Path
) -> None:
    async def doctor(**env: str) -> str:
        proc = BotProcess(irc_python, tmp_path, {"OLLAMA_HOST": model.url, **env})
        proc.args = ("doctor",)
        await proc.start()
        await proc.stop_when_done()
        return proc.output()

    off = await doctor(OC_DATA_DIR=str(tmp_path / "d1"))
    assert "irc: set IRC_SERVER (+ IRC_NICK, IRC_CHANNELS)" in off  # how to turn it on

    server = f"127.0.0.1:{ircd.port}"
    on = await doctor(OC_DATA_DIR=str(tmp_path / "d2"), IRC_SERVER=server, IRC_CHANNELS=CHANNEL)
    assert f"[ok  ] irc: {server} accepts us; joins {CHANNEL}" in on
    assert "configured: irc" in on

    await ircd.stop()
    down = await doctor(OC_DATA_DIR=str(tmp_path / "d3"), IRC_SERVER=server)
    assert f"[FAIL] irc: cannot reach IRC_SERVER {server}" in down
