"""A client for OpenAI-compatible chat servers: vLLM, llama.cpp server, LM Studio, LocalAI, OpenAI.

It has :class:`~bot.ollama.OllamaClient`'s surface, so one pool balances over both kinds. The rest
of the bot keeps speaking Ollama's message shape (the graph, its checkpoints); messages, options
and answers are translated here, per request. One long-lived aiohttp session serves every call,
for the reason given in :mod:`opencomputer.bot.ollama`.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Sequence
from typing import Any

import aiohttp
import orjson
from pydantic import SecretStr

from opencomputer.bot.ollama import (
    NETWORK_ERRORS,
    STALL_ERRORS,
    ChatResult,
    HttpModelClient,
    ModelCheck,
    OllamaError,
    OllamaUnavailable,
    OnToken,
    ToolCall,
    has_vision,
    stalled,
)

__all__ = ["OpenAIClient", "data_url", "openai_messages", "openai_params"]

logger = logging.getLogger(__name__)

_SAME_NAME = ("temperature", "top_p", "seed", "stop", "presence_penalty", "frequency_penalty")
"""Ollama options that OpenAI's API takes under the same name and meaning."""

_NOT_RUN = "error: this call was not run (the turn ended first)"


class OpenAIClient(HttpModelClient):
    """Talks to one OpenAI-compatible server at ``base_url`` (the API base, e.g. ``.../v1``)."""

    def __init__(
        self,
        base_url: str,
        *,
        api_key: SecretStr | None = None,
        timeout: float = 300.0,
        max_connections: int = 64,
        stall_timeout: float | None = None,
    ) -> None:
        headers = {"Content-Type": "application/json"}
        if api_key is not None and api_key.get_secret_value():
            headers["Authorization"] = f"Bearer {api_key.get_secret_value()}"
        super().__init__(
            timeout=timeout,
            max_connections=max_connections,
            headers=headers,
            stall_timeout=stall_timeout,
        )
        self.base_url = base_url.rstrip("/")
        self.host = f"openai:{self.base_url}"  # as written in OC_OLLAMA_HOSTS; the pool's key
        self._vision: dict[str, bool] = {}

    # --- calls -------------------------------------------------------------------------
    async def chat(
        self,
        model: str,
        messages: Sequence[dict[str, Any]],
        *,
        tools: Sequence[dict[str, Any]] | None = None,
        options: dict[str, Any] | None = None,
        keep_alive: str | None = None,
        on_token: OnToken | None = None,
    ) -> ChatResult:
        """Run one streamed chat completion, passing content tokens to ``on_token``.

        ``keep_alive`` and ``num_ctx`` have no OpenAI equivalent: the server decides both.
        """
        body: dict[str, Any] = {
            "model": model,
            "messages": openai_messages(messages),
            "stream": True,
            "stream_options": {"include_usage": True},
            **openai_params(options or {}),
        }
        if tools:
            body["tools"] = list(tools)
        stream = _Stream(on_token)
        try:
            async with self.session.post(
                f"{self.base_url}/chat/completions", data=orjson.dumps(body)
            ) as resp:
                if resp.status >= 400:
                    raise await self._http_error(resp, model)
                data: list[bytes] = []  # one SSE event may span several data: lines
                async for raw in resp.content:
                    line = raw.rstrip(b"\r\n")
                    if line.startswith(b"data:"):
                        data.append(line[5:].removeprefix(b" "))
                    elif not line and data:
                        await stream.event(b"\n".join(data), self)
                        data = []
                if data:
                    await stream.event(b"\n".join(data), self)
        except STALL_ERRORS as exc:
            raise stalled(self.host, self.stall_timeout) from exc
        except NETWORK_ERRORS as exc:
            raise self._unavailable(exc) from exc
        return stream.result(self)

    async def embed(self, model: str, inputs: Sequence[str]) -> list[list[float]]:
        """Embeddings for each input, in order."""
        data = await self._request("POST", "/embeddings", {"model": model, "input": list(inputs)})
        items = sorted(data.get("data") or [], key=lambda item: int(item.get("index", 0)))
        return [list(map(float, item["embedding"])) for item in items]

    async def models(self) -> list[dict[str, Any]]:
        """The server's ``/models`` entries (``id``, and ``max_model_len`` on vLLM)."""
        data = await self._request("GET", "/models", None)
        return [dict(m) for m in data.get("data") or [] if isinstance(m, dict)]

    async def tags(self) -> list[str]:
        """Names of the models the server serves."""
        return [str(m.get("id")) for m in await self.models()]

    async def version(self) -> str:
        """What the server is (it has no version endpoint: ``/models`` doubles as health)."""
        count = len(await self.models())
        return f"OpenAI-compatible API, {count} model{'s' if count != 1 else ''}"

    async def show(self, model: str) -> dict[str, Any]:
        """The ``/models`` entry of ``model``; a 404 error when the server does not list it."""
        listed = await self.models()
        for entry in listed:
            if entry.get("id") == model:
                return entry
        names = ", ".join(str(m.get("id")) for m in listed) or "none"
        raise OllamaError(
            f"model {model!r} is not served by {self.base_url} (it serves: {names})",
            status=404,
            hint="Set OC_MODEL (or OC_EMBED_MODEL) to one of those, or load the model there.",
        )

    async def supports_vision(self, model: str) -> bool:
        """Whether ``model`` takes images, from its ``/models`` entry; asked once per model.

        Most servers (OpenAI, vLLM) do not say; then images are sent (see
        :func:`~bot.ollama.has_vision`).
        """
        if model not in self._vision:
            self._vision[model] = has_vision({"object": "model", **await self.show(model)})
        return self._vision[model]

    async def check_model(self, model: str, *, needs_tools: bool = True) -> ModelCheck:
        """Check that the server answers and lists ``model``.

        Tool support is not reported by these servers, so it cannot be checked here. The context
        length is known only where the server reports it (vLLM's ``max_model_len``).
        """
        try:
            entry = await self.show(model)
        except OllamaError as exc:
            return ModelCheck(False, f"{exc}. {exc.hint}".strip())
        ctx = entry.get("max_model_len")
        message = f"model {model!r} is served by {self.base_url}"
        if needs_tools:
            message += "; tool support is not reported (vLLM needs --enable-auto-tool-choice)"
        return ModelCheck(True, message, int(ctx) if isinstance(ctx, int) and ctx > 0 else None)

    # --- plumbing ----------------------------------------------------------------------
    async def _request(self, method: str, path: str, body: dict[str, Any] | None) -> dict[str, Any]:
        model = str(body.get("model", "")) if body else ""
        data = orjson.dumps(body) if body is not None else None
        try:
            async with self.session.request(method, f"{self.base_url}{path}", data=data) as resp:
                if resp.status >= 400:
                    raise await self._http_error(resp, model)
                raw = await resp.read()
        except NETWORK_ERRORS as exc:
            raise self._unavailable(exc) from exc
        try:
            parsed = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise OllamaError(
                f"{self.base_url}{path} did not answer JSON: {raw[:120]!r}",
                hint="Check that the URL is the API base (it usually ends in /v1).",
            ) from None
        if not isinstance(parsed, dict):
            raise OllamaError(f"{self.base_url}{path} answered {type(parsed).__name__}, not JSON")
        return parsed

    async def _http_error(self, resp: aiohttp.ClientResponse, model: str) -> OllamaError:
        raw = await resp.read()
        message = (_error_message(raw) or resp.reason or "error").rstrip(".")
        return OllamaError(
            f"OpenAI-compatible server at {self.base_url} answered {resp.status}: {message}",
            status=resp.status,
            hint=self._hint(resp.status, message, model),
        )

    def _hint(self, status: int, message: str, model: str) -> str:
        if status in (401, 403):
            if "Authorization" not in self._headers:
                return "The server wants a key: set OC_OPENAI_API_KEY."
            return f"Set OC_OPENAI_API_KEY to a key that {self.base_url} accepts."
        if status == 404:
            return (
                f"Check that {self.base_url} is the API base (it usually ends in /v1) and that "
                f"it serves {model or 'the model'} (GET {self.base_url}/models lists them)."
            )
        if status == 400 and "tool" in message.lower():
            return (
                "Enable tool calling on the server (vLLM: --enable-auto-tool-choice and a parser)."
            )
        return ""

    def _unavailable(self, exc: BaseException) -> OllamaUnavailable:
        return OllamaUnavailable(
            f"cannot reach the OpenAI-compatible server at {self.base_url} "
            f"({type(exc).__name__}: {exc})".replace(": )", ")"),
            hint="Start it, or fix its openai: entry in OLLAMA_HOST/OC_OLLAMA_HOSTS.",
        )


class _Stream:
    """Assembles one streamed answer from ``chat.completion.chunk`` events."""

    def __init__(self, on_token: OnToken | None) -> None:
        self.on_token = on_token
        self.parts: list[str] = []
        self.calls: dict[int, dict[str, Any]] = {}  # by the delta's index
        self.usage: dict[str, Any] = {}
        self.finish_reason = ""
        self.done = False

    async def event(self, data: bytes, client: OpenAIClient) -> None:
        """Take one SSE ``data`` payload."""
        if data.strip() == b"[DONE]":
            self.done = True
            return
        try:
            chunk = orjson.loads(data)
        except orjson.JSONDecodeError:
            raise OllamaError(
                f"{client.base_url} sent a stream event that is not JSON: {data[:120]!r}"
            ) from None
        if not isinstance(chunk, dict):
            return
        if chunk.get("error"):  # vLLM and others report failures inside the stream
            message = _error_message(orjson.dumps(chunk)) or "error"
            raise OllamaError(f"OpenAI-compatible server at {client.base_url} failed: {message}")
        if isinstance(chunk.get("usage"), dict):  # the last chunk (include_usage), or each one
            self.usage = chunk["usage"]
        for choice in chunk.get("choices") or ():  # empty in the usage chunk
            if choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") or {}
            token = delta.get("content")
            if token:
                self.parts.append(token)
                if self.on_token is not None:
                    await self.on_token(token)
            for call in delta.get("tool_calls") or ():
                self._add_call(call)
            if choice.get("finish_reason"):
                self.finish_reason = str(choice["finish_reason"])

    def _add_call(self, delta: dict[str, Any]) -> None:
        # The first delta of a call has its id and name; later ones carry argument fragments.
        index = delta.get("index")
        if not isinstance(index, int):  # some servers leave it out: a new id starts a call
            index = len(self.calls) if delta.get("id") or not self.calls else max(self.calls)
        call = self.calls.setdefault(index, {"id": "", "name": "", "arguments": []})
        fn = delta.get("function") or {}
        if delta.get("id"):
            call["id"] = str(delta["id"])
        name = fn.get("name")
        if name and name != call["name"]:  # whole in one delta, or (rarely) in pieces
            call["name"] += str(name)
        if fn.get("arguments"):
            call["arguments"].append(str(fn["arguments"]))

    def result(self, client: OpenAIClient) -> ChatResult:
        """The assembled answer; a clear error if the stream broke off or a call is malformed."""
        if not (self.done or self.finish_reason):
            raise OllamaError(
                f"OpenAI-compatible server at {client.base_url} ended the stream before the "
                "answer was finished",
                hint="Check the server's log; the URL must be the API base (usually ends in /v1).",
            )
        calls = []
        for index in sorted(self.calls):
            call = self.calls[index]
            calls.append(ToolCall(call["name"], _arguments(call, client), call["id"]))
        return ChatResult(
            content="".join(self.parts),
            tool_calls=calls,
            prompt_tokens=int(self.usage.get("prompt_tokens") or 0),
            completion_tokens=int(self.usage.get("completion_tokens") or 0),
            done_reason=self.finish_reason or "stop",
        )


def _arguments(call: dict[str, Any], client: OpenAIClient) -> dict[str, Any]:
    text = "".join(call["arguments"]).strip()
    if not text:
        return {}
    try:
        args = orjson.loads(text)
    except orjson.JSONDecodeError:
        args = None
    if not isinstance(args, dict):
        raise OllamaError(
            f"the model at {client.base_url} called tool {call['name']!r} with malformed "
            f"arguments (not a JSON object): {text[:200]!r}",
            hint="Models with weak tool calling do this; try again, or choose a stronger model.",
        )
    return args


def _error_message(raw: bytes) -> str:
    """The message of an error body: OpenAI's ``{"error": {"message"}}`` and its variants."""
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return raw.decode(errors="replace").strip()[:200]
    if not isinstance(body, dict):
        return str(body)[:200]
    error = body.get("error")
    if isinstance(error, dict):
        return str(error.get("message") or error)
    if error:
        return str(error)
    # vLLM's older {"object": "error", "message": ...}; FastAPI's {"detail": ...}
    return str(body.get("message") or body.get("detail") or body)[:200]


def openai_messages(messages: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Ollama-shaped messages in OpenAI's shape.

    Ollama pairs a tool result with its call by position; OpenAI by id, and it refuses a call
    left without a result or a result that answers no call. Calls get ids here (``call_<m>_<n>``,
    unique within the request) and results take them in order. A call left unanswered (a turn
    stopped at the tool-round limit) gets a "not run" result; a result whose call fell outside
    the history window becomes plain text. A user message's Ollama ``images`` (base64) become
    ``image_url`` content parts with ``data:`` URLs.
    """
    out: list[dict[str, Any]] = []
    pending: deque[str] = deque()
    for m_index, message in enumerate(messages):
        role = str(message.get("role") or "user")
        content = str(message.get("content") or "")
        if role == "tool":
            if pending:
                out.append({"role": "tool", "tool_call_id": pending.popleft(), "content": content})
            else:
                name = message.get("tool_name") or "a tool"
                out.append({"role": "user", "content": f"(result of {name})\n{content}"})
            continue
        while pending:
            out.append({"role": "tool", "tool_call_id": pending.popleft(), "content": _NOT_RUN})
        calls = []
        for c_index, call in enumerate(message.get("tool_calls") or ()):
            fn = call.get("function") or {}
            args = fn.get("arguments")
            call_id = f"call_{m_index}_{c_index}"
            pending.append(call_id)
            calls.append(
                {
                    "id": call_id,
                    "type": "function",
                    "function": {
                        "name": str(fn.get("name") or ""),
                        "arguments": args
                        if isinstance(args, str)
                        else orjson.dumps(args or {}).decode(),
                    },
                }
            )
        images = message.get("images") or ()
        body: str | list[dict[str, Any]] = content
        if images and role == "user":  # Ollama's images become content parts
            body = [{"type": "text", "text": content}] if content else []
            body += [{"type": "image_url", "image_url": {"url": data_url(b)}} for b in images]
        out.append({"role": role, "content": body, **({"tool_calls": calls} if calls else {})})
    while pending:
        out.append({"role": "tool", "tool_call_id": pending.popleft(), "content": _NOT_RUN})
    return out


_IMAGE_HEADS = {"/9j/": "image/jpeg", "iVBORw0KGgo": "image/png", "R0lGOD": "image/gif"}


def data_url(image: str) -> str:
    """A base64 image as a ``data:`` URL, its type read from its first bytes.

    Images come from :func:`bot.media.images.prepare_image` (JPEG or PNG); a URL is kept.
    """
    if image.startswith(("data:", "https://", "http://")):
        return image
    mime = next((m for head, m in _IMAGE_HEADS.items() if image.startswith(head)), "image/jpeg")
    return f"data:{mime};base64,{image}"


def openai_params(options: dict[str, Any]) -> dict[str, Any]:
    """Ollama ``options`` as OpenAI request parameters, where there is an equivalent."""
    params = {key: options[key] for key in _SAME_NAME if options.get(key) is not None}
    num_predict = options.get("num_predict")
    if isinstance(num_predict, int) and num_predict > 0:  # -1 and -2 mean "no limit" in Ollama
        params["max_tokens"] = num_predict
    return params
