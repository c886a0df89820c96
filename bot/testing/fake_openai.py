"""A fake OpenAI-compatible server speaking the real ``/v1`` wire protocol on loopback.

Chat completions stream as OpenAI streams them: ``data: {chat.completion.chunk}`` events, a role
delta first, content deltas, each tool call opened by a delta with its ``index``, ``id``, ``type``
and name (arguments ``""``) and continued by argument fragments, a final delta with the
``finish_reason``, a usage chunk with empty ``choices`` when ``stream_options.include_usage``
asks for it, then ``data: [DONE]``. Errors are ``{"error": {"message", "type", "param", "code"}}``.
Replies are scripted with the same :class:`~bot.testing.fake_ollama.Reply` as the fake Ollama
(tool arguments given as a string are sent as written: a malformed call); every request is
recorded, headers included.
"""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid
from collections.abc import Callable
from typing import Any

import orjson
from aiohttp import web

from opencomputer.bot.testing.fake_ollama import Reply, ScriptedModel

__all__ = ["FakeOpenAI"]


class FakeOpenAI(ScriptedModel):
    """Serve ``/v1/chat/completions``, ``/v1/models`` and ``/v1/embeddings``."""

    path = "/v1"  # ``url`` is the API base, ``http://127.0.0.1:<port>/v1``

    def __init__(
        self,
        *,
        models: tuple[str, ...] = ("qwen3:8b", "nomic-embed-text"),
        api_key: str | None = None,
        max_model_len: int | None = None,
        embed_dim: int = 8,
    ) -> None:
        self.models = list(models)
        self.api_key = api_key
        """When set, every request needs ``Authorization: Bearer <api_key>``."""
        self.max_model_len = max_model_len
        """Reported in ``/v1/models`` as vLLM does; ``None`` leaves it out, as OpenAI does."""
        self.embed_dim = embed_dim
        super().__init__()
        self._ids = itertools.count(1)

    # --- scripting ---------------------------------------------------------------------
    def fail(self, status: int = 500, message: str = "internal error") -> None:
        """Queue an HTTP error answer to the next chat request."""
        self.script.append(Reply(status=status, error=message))

    @property
    def entry(self) -> str:
        """The server as an ``OC_OLLAMA_HOSTS`` entry (``openai:`` + its URL)."""
        return f"openai:{self.url}"

    @property
    def chats(self) -> list[dict[str, Any]]:
        """Recorded chat completion request bodies."""
        return [r["body"] for r in self.requests if r["path"] == "/v1/chat/completions"]

    # --- lifecycle ---------------------------------------------------------------------
    def app(self) -> web.Application:
        """The OpenAI API's routes under ``/v1``."""
        app = web.Application(middlewares=[self._auth])
        app.add_routes(
            [
                web.get("/v1/models", self._models),
                web.post("/v1/chat/completions", self._chat),
                web.post("/v1/embeddings", self._embeddings),
            ]
        )
        return app

    # --- handlers ----------------------------------------------------------------------
    @web.middleware
    async def _auth(
        self, request: web.Request, handler: Callable[[web.Request], Any]
    ) -> web.StreamResponse:
        raw = await request.read()
        self.requests.append(
            {
                "path": request.path,
                "body": orjson.loads(raw) if raw else None,
                "headers": dict(request.headers),
            }
        )
        if self.api_key is not None:
            given = request.headers.get("Authorization", "")
            if not given:
                return _error(
                    401,
                    "You didn't provide an API key. You need to provide your API key in an "
                    "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
                    code=None,
                )
            if given != f"Bearer {self.api_key}":
                key = given.removeprefix("Bearer ")
                return _error(
                    401,
                    f"Incorrect API key provided: {key[:3]}***{key[-4:]}.",
                    code="invalid_api_key",
                )
        response: web.StreamResponse = await handler(request)
        return response

    def _missing(self, model: str) -> web.Response | None:
        if model in self.models:
            return None
        return _error(
            404,
            f"The model `{model}` does not exist or you do not have access to it.",
            code="model_not_found",
        )

    async def _models(self, _request: web.Request) -> web.Response:
        extra = {} if self.max_model_len is None else {"max_model_len": self.max_model_len}
        return _json(
            {
                "object": "list",
                "data": [
                    {"id": m, "object": "model", "created": 1700000000, "owned_by": "fake", **extra}
                    for m in self.models
                ],
            }
        )

    async def _embeddings(self, request: web.Request) -> web.Response:
        body = await request.json(loads=orjson.loads)
        model = str(body.get("model", ""))
        missing = self._missing(model)
        if missing is not None:
            return missing
        inputs = body.get("input", [])
        inputs = [inputs] if isinstance(inputs, str) else list(inputs)
        tokens = sum(len(t.split()) for t in inputs)
        return _json(
            {
                "object": "list",
                "data": [
                    {"object": "embedding", "index": i, "embedding": self._embedding(text)}
                    for i, text in enumerate(inputs)
                ],
                "model": model,
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            }
        )

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        body = await request.json(loads=orjson.loads)
        model = str(body.get("model", ""))
        missing = self._missing(model)
        if missing is not None:
            return missing
        reply = await self.next_reply(body)
        if reply.status >= 400:
            return _error(reply.status, reply.error or "internal error", kind="server_error")
        calls = [_wire_call(i, call) for i, call in enumerate(reply.tool_calls)]
        finish = "tool_calls" if calls else "stop"
        usage = {
            "prompt_tokens": 10,
            "completion_tokens": max(1, len(reply.content) // 4),
            "total_tokens": 10 + max(1, len(reply.content) // 4),
        }
        head = {
            "id": f"chatcmpl-fake{next(self._ids)}",
            "created": int(time.time()),
            "model": model,
            "system_fingerprint": "fp_fake",
        }
        if not body.get("stream"):
            message: dict[str, Any] = {"role": "assistant", "content": reply.content or None}
            if calls:
                message["tool_calls"] = [
                    {"id": c["id"], "type": "function", "function": c["function"]} for c in calls
                ]
            message["refusal"] = None
            choice = {"index": 0, "message": message, "logprobs": None, "finish_reason": finish}
            return _json({**head, "object": "chat.completion", "choices": [choice], "usage": usage})
        with_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        head = {**head, "object": "chat.completion.chunk"}

        def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
            choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
            data = {**head, "choices": [choice], **({"usage": None} if with_usage else {})}
            return b"data: " + orjson.dumps(data) + b"\n\n"

        resp = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream; charset=utf-8",
                "Cache-Control": "no-cache",
            }
        )
        await resp.prepare(request)
        pieces = _pieces(reply.content, reply.chunks)
        if pieces or not calls:
            await resp.write(chunk({"role": "assistant", "content": "", "refusal": None}))
        for i, piece in enumerate(pieces):
            if reply.pace and i:
                await asyncio.sleep(reply.pace)
            await resp.write(chunk({"content": piece}))
        if reply.stall:
            await self.stall_here(request)
            return resp
        for call in calls:
            name = call["function"]["name"]
            opening = {"index": call["index"], "id": call["id"], "type": "function"}
            opening["function"] = {"name": name, "arguments": ""}
            first: dict[str, Any] = {"tool_calls": [opening]}
            if not pieces and call["index"] == 0:
                first = {"role": "assistant", "content": None, **first, "refusal": None}
            await resp.write(chunk(first))
            for fragment in _pieces(call["function"]["arguments"], 3):
                delta = {"index": call["index"], "function": {"arguments": fragment}}
                await resp.write(chunk({"tool_calls": [delta]}))
        if reply.error:  # a failure after the stream began, reported the way vLLM does
            error = {"message": reply.error, "type": "server_error", "param": None, "code": None}
            await resp.write(b"data: " + orjson.dumps({"error": error}) + b"\n\n")
        else:
            await resp.write(chunk({}, finish))
            if with_usage:
                data = {**head, "choices": [], "usage": usage}
                await resp.write(b"data: " + orjson.dumps(data) + b"\n\n")
        await resp.write(b"data: [DONE]\n\n")
        await resp.write_eof()
        return resp

    def _embedding(self, text: str) -> list[float]:
        vec = [0.0] * self.embed_dim
        for i, ch in enumerate(text.lower()):
            vec[(ord(ch) + i) % self.embed_dim] += 1.0
        norm = sum(v * v for v in vec) ** 0.5 or 1.0
        return [v / norm for v in vec]


def _wire_call(index: int, call: dict[str, Any]) -> dict[str, Any]:
    """A scripted (Ollama-shaped) tool call as OpenAI sends it: arguments as a JSON string."""
    fn = call.get("function") or {}
    args = fn.get("arguments") or {}
    text = args if isinstance(args, str) else orjson.dumps(args).decode()
    return {
        "index": index,
        "id": f"call_{uuid.uuid4().hex[:24]}",
        "function": {"name": str(fn.get("name", "")), "arguments": text},
    }


def _pieces(text: str, n: int) -> list[str]:
    if not text:
        return []
    n = max(1, min(n, len(text)))
    size = -(-len(text) // n)
    return [text[i : i + size] for i in range(0, len(text), size)]


def _error(
    status: int, message: str, *, kind: str = "invalid_request_error", code: str | None = None
) -> web.Response:
    error = {"message": message, "type": kind, "param": None, "code": code}
    return _json({"error": error}, status=status)


def _json(data: dict[str, Any], *, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json")
