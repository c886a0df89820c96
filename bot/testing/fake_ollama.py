"""A fake Ollama server speaking Ollama's real HTTP API on loopback.

The real clients (ours, the ``ollama`` package, ``langchain-ollama``) run unmodified against
it. Replies are scripted (a queue of :class:`Reply`, or a function of the request); with no
script it echoes the last user message. Every request body is recorded for assertions.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

from opencomputer.bot.testing.fake_server import FakeServer

__all__ = ["FakeOllama", "Reply"]


@dataclass(slots=True)
class Reply:
    """One scripted answer: text (streamed in ``chunks`` pieces) and/or tool calls."""

    content: str = ""
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    chunks: int = 4
    delay: float = 0.0
    pace: float = 0.0
    """Seconds between streamed chunks (a model that writes at a human-visible speed)."""
    error: str | None = None
    status: int = 200
    hang_up: bool = False
    """Drop the connection after the streamed text, before the final line (a crashed server)."""
    stall: bool = False
    """Send nothing more after the streamed text, keeping the connection open (a hung server),
    until :meth:`ScriptedModel.release_stalls` or the server stops."""

    @classmethod
    def tool(cls, name: str, **arguments: Any) -> Reply:
        """A reply that asks for one tool call."""
        return cls(tool_calls=[{"function": {"name": name, "arguments": arguments}}])


Responder = Callable[[dict[str, Any]], Reply]


def _echo(body: dict[str, Any]) -> Reply:
    users = [m for m in body.get("messages", []) if m.get("role") == "user"]
    return Reply(f"echo: {users[-1].get('content', '')}" if users else "hello")


class ScriptedModel(FakeServer):
    """What both fake model servers share: queued answers (else ``responder``'s), and a record
    of every request.
    """

    def __init__(self) -> None:
        super().__init__()
        self.script: deque[Reply] = deque()
        self.responder: Responder = _echo
        self.requests: list[dict[str, Any]] = []
        self.stalled = 0  # streams now hanging (``Reply.stall``)
        self._release = asyncio.Event()

    async def stall_here(self, request: web.Request) -> None:
        """Hang a stream (``Reply.stall``) without a byte until released, then drop it."""
        self.stalled += 1
        try:
            await self._release.wait()
        finally:
            self.stalled -= 1
            if request.transport is not None:
                request.transport.close()

    def release_stalls(self) -> None:
        """End every hanging stream (they drop the connection)."""
        self._release.set()

    async def stop(self) -> None:
        """Release hanging streams, then stop serving."""
        self.release_stalls()
        await super().stop()
        self._release = asyncio.Event()  # a restarted server hangs again

    # --- scripting ---------------------------------------------------------------------
    def reply(self, content: str = "", **kwargs: Any) -> None:
        """Queue a text answer."""
        self.script.append(Reply(content, **kwargs))

    def call_tool(self, name: str, **arguments: Any) -> None:
        """Queue an answer that calls a tool."""
        self.script.append(Reply.tool(name, **arguments))

    async def next_reply(self, body: dict[str, Any]) -> Reply:
        """The next queued answer, else the responder's, once its delay has passed."""
        reply = self.script.popleft() if self.script else self.responder(body)
        if reply.delay:
            await asyncio.sleep(reply.delay)
        return reply


class FakeOllama(ScriptedModel):
    """Serve ``/api/chat``, ``/api/show``, ``/api/tags``, ``/api/version``, ``/api/embed``..."""

    def __init__(
        self,
        *,
        models: tuple[str, ...] = ("qwen3:8b", "nomic-embed-text"),
        capabilities: tuple[str, ...] = ("completion", "tools"),
        context_length: int = 32768,
        embed_dim: int = 8,
    ) -> None:
        self.models = list(models)
        self.capabilities = list(capabilities)
        self.context_length = context_length
        self.embed_dim = embed_dim
        self.embedder: Callable[[str], list[float]] = self._default_embedding
        super().__init__()

    @property
    def chats(self) -> list[dict[str, Any]]:
        """Recorded ``/api/chat`` request bodies."""
        return [r["body"] for r in self.requests if r["path"] == "/api/chat"]

    # --- lifecycle ---------------------------------------------------------------------
    def app(self) -> web.Application:
        """Ollama's routes."""
        app = web.Application()
        app.add_routes(
            [
                web.get("/", self._root),
                web.post("/api/chat", self._chat),
                web.post("/api/show", self._show),
                web.get("/api/tags", self._tags),
                web.get("/api/version", self._version),
                web.post("/api/embed", self._embed),
                web.get("/api/ps", self._ps),
            ]
        )
        return app

    # --- handlers ----------------------------------------------------------------------
    async def _body(self, request: web.Request) -> dict[str, Any]:
        raw = await request.read()
        body = orjson.loads(raw) if raw else {}
        self.requests.append({"path": request.path, "body": body})
        return dict(body)

    def _model_error(self, model: str) -> web.Response | None:
        if model and model not in self.models and f"{model}:latest" not in self.models:
            return _json({"error": f"model '{model}' not found"}, status=404)
        return None

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        body = await self._body(request)
        missing = self._model_error(str(body.get("model", "")))
        if missing is not None:
            return missing
        reply = await self.next_reply(body)
        if reply.status >= 400:
            return _json({"error": reply.error or "internal error"}, status=reply.status)
        model = body.get("model", "")
        stats = {"prompt_eval_count": 10, "eval_count": max(1, len(reply.content) // 4)}
        if not body.get("stream", True):
            message: dict[str, Any] = {"role": "assistant", "content": reply.content}
            if reply.tool_calls:
                message["tool_calls"] = reply.tool_calls
            return _json(
                {**_head(model), "message": message, "done": True, "done_reason": "stop", **stats}
            )
        resp = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
        await resp.prepare(request)
        for i, piece in enumerate(_pieces(reply.content, reply.chunks)):
            if reply.pace and i:
                await asyncio.sleep(reply.pace)
            line = {
                **_head(model),
                "message": {"role": "assistant", "content": piece},
                "done": False,
            }
            await resp.write(orjson.dumps(line) + b"\n")
        if reply.hang_up and request.transport is not None:
            request.transport.close()
            return resp
        if reply.stall:
            await self.stall_here(request)
            return resp
        if reply.tool_calls:
            line = {
                **_head(model),
                "message": {"role": "assistant", "content": "", "tool_calls": reply.tool_calls},
                "done": False,
            }
            await resp.write(orjson.dumps(line) + b"\n")
        if reply.error:
            await resp.write(orjson.dumps({"error": reply.error}) + b"\n")
        else:
            last = {
                **_head(model),
                "message": {"role": "assistant", "content": ""},
                "done": True,
                "done_reason": "stop",
                "total_duration": 1000,
                "load_duration": 10,
                "prompt_eval_duration": 100,
                "eval_duration": 500,
                **stats,
            }
            await resp.write(orjson.dumps(last) + b"\n")
        await resp.write_eof()
        return resp

    async def _show(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        model = str(body.get("model") or body.get("name") or "")
        missing = self._model_error(model)
        if missing is not None:
            return missing
        caps = ["embedding"] if "embed" in model else self.capabilities
        return _json(
            {
                "modelfile": "",
                "parameters": "",
                "template": "{{ .Prompt }}",
                "details": {"format": "gguf", "family": "fake", "parameter_size": "8B"},
                "model_info": {
                    "general.architecture": "fake",
                    "fake.context_length": self.context_length,
                },
                "capabilities": caps,
            }
        )

    async def _tags(self, request: web.Request) -> web.Response:
        self.requests.append({"path": request.path, "body": None})
        return _json(
            {
                "models": [
                    {"name": m, "model": m, "size": 1, "digest": "0" * 12, "details": {}}
                    for m in self.models
                ]
            }
        )

    async def _version(self, _request: web.Request) -> web.Response:
        return _json({"version": "0.12.0-fake"})

    async def _ps(self, _request: web.Request) -> web.Response:
        return _json({"models": []})

    async def _root(self, _request: web.Request) -> web.Response:
        return web.Response(text="Ollama is running")

    async def _embed(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        inputs = body.get("input", [])
        inputs = [inputs] if isinstance(inputs, str) else list(inputs)
        return _json({"model": body.get("model"), "embeddings": [self.embedder(t) for t in inputs]})

    def _default_embedding(self, text: str) -> list[float]:
        vec = [0.0] * self.embed_dim
        for i, ch in enumerate(text.lower()):
            vec[(ord(ch) + i) % self.embed_dim] += 1.0
        norm = sum(v * v for v in vec) ** 0.5 or 1.0
        return [v / norm for v in vec]


def _head(model: str) -> dict[str, Any]:
    return {"model": model, "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


def _pieces(text: str, n: int) -> list[str]:
    if not text:
        return []
    n = max(1, min(n, len(text)))
    size = -(-len(text) // n)
    return [text[i : i + size] for i in range(0, len(text), size)]


def _json(data: dict[str, Any], *, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json")
