"""Serve the fake Ollama API for demos and manual checks: `python scripts/fake_ollama.py 11500`.

An optional second argument makes every answer take that many seconds (a stand-in for a GPU).

It calls the current_time tool when asked about the time, the calculator for "calculate ...",
answers with the tool's result after a tool round trip, and echoes anything else.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

from opencomputer.bot.testing.fake_ollama import FakeOllama, Reply

DELAY = 0.0


def respond(body: dict[str, Any]) -> Reply:
    reply = _respond(body)
    reply.delay = DELAY
    return reply


def _respond(body: dict[str, Any]) -> Reply:
    messages = body.get("messages", [])
    last = messages[-1] if messages else {}
    if last.get("role") == "tool":
        return Reply(f"The {last.get('tool_name', 'tool')} tool says: {last.get('content')}")
    text = str(last.get("content", ""))
    if "time" in text.lower():
        return Reply.tool("current_time", timezone="UTC")
    if text.lower().startswith("calculate "):
        return Reply.tool("calculate", expression=text[len("calculate ") :])
    earlier = [m["content"] for m in messages if m.get("role") == "user"][:-1]
    memory = f" (earlier you said: {' | '.join(earlier)})" if earlier else ""
    return Reply(f"echo: {text}{memory}")


async def main(port: int) -> None:
    fake = FakeOllama()
    fake.responder = respond
    print(f"fake Ollama on {await fake.start(port)}", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    DELAY = float(sys.argv[2]) if len(sys.argv) > 2 else 0.0
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 11434))
