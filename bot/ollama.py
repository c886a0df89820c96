"""A small client for Ollama's HTTP API (``/api/chat`` NDJSON streaming, ``/api/show``...).

Why not the ``ollama`` package: its httpx pool collapses under concurrency (p99 of hundreds of
milliseconds at 16 chats in flight, measured here), and the model must be the only thing a user
waits for. One long-lived aiohttp session serves every call.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, Self

import aiohttp
import orjson

__all__ = [
    "ChatResult",
    "HttpModelClient",
    "ModelCheck",
    "ModelClient",
    "ModelStalled",
    "OllamaClient",
    "OllamaError",
    "OllamaUnavailable",
    "ToolCall",
    "has_vision",
]

logger = logging.getLogger(__name__)

OnToken = Callable[[str], Awaitable[None]]

NETWORK_ERRORS = (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError, TimeoutError)
"""The server is gone (down, unreachable, or it died in the middle of an answer)."""


class OllamaError(Exception):
    """Ollama answered with an error; ``hint`` says what to do about it."""

    def __init__(self, message: str, *, status: int | None = None, hint: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.hint = hint


class OllamaUnavailable(OllamaError):
    """Ollama could not be reached at all (down, wrong host, timed out)."""


class ModelStalled(OllamaUnavailable):
    """The model server sent no byte for ``stall_timeout`` seconds (``OC_MODEL_STALL_TIMEOUT``).

    A server that hangs mid-answer would otherwise hold the call, and with it one of the
    ``OC_MAX_IN_FLIGHT`` slots, until the total timeout. It is a model failure like a server
    that died mid-answer: the user gets the apology and can ``/retry``.
    """


STALL_ERRORS = (aiohttp.SocketTimeoutError,)
"""aiohttp's ``sock_read`` timeout: no bytes for that long (not the total timeout)."""


def stalled(host: str, stall_timeout: float | None) -> ModelStalled:
    """The error for a call that made no progress for ``stall_timeout`` seconds."""
    return ModelStalled(
        f"the model server at {host} sent nothing for {stall_timeout or 0:g} s; call abandoned",
        hint="Check the model server's load and logs; OC_MODEL_STALL_TIMEOUT sets the limit.",
    )


@dataclass(frozen=True, slots=True)
class ToolCall:
    """One tool call the model asked for (Ollama gives no ids; we number them)."""

    name: str
    arguments: dict[str, Any]
    id: str = ""


@dataclass(slots=True)
class ChatResult:
    """The assembled answer of one ``/api/chat`` call."""

    content: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    done_reason: str = ""


@dataclass(frozen=True, slots=True)
class ModelCheck:
    """Result of checking that a model is ready to serve."""

    ok: bool
    message: str
    context_length: int | None = None


class ModelClient(Protocol):
    """What the graph needs from a model server: one client, or a pool of them."""

    host: str

    async def chat(
        self, model: str, messages: Sequence[dict[str, Any]], **kwargs: Any
    ) -> ChatResult:
        """One chat completion (``tools``, ``options``, ``keep_alive``, ``on_token``)."""
        ...

    async def embed(self, model: str, inputs: Sequence[str]) -> list[list[float]]:
        """Embeddings of ``inputs``."""
        ...

    async def show(self, model: str) -> dict[str, Any]:
        """Model details."""
        ...

    async def check_model(self, model: str, *, needs_tools: bool = True) -> ModelCheck:
        """Whether ``model`` can serve."""
        ...


class HttpModelClient:
    """One long-lived aiohttp session to one model server: ``start`` opens it, ``stop`` closes."""

    def __init__(
        self,
        *,
        timeout: float,
        max_connections: int,
        headers: dict[str, str] | None = None,
        stall_timeout: float | None = None,
    ) -> None:
        self._timeout = timeout
        self.stall_timeout = stall_timeout
        self._max_connections = max_connections
        self._headers = headers or {}
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        """Open the connection pool."""
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._max_connections, ttl_dns_cache=300),
                # sock_read is the progress timeout: it restarts with every chunk received.
                timeout=aiohttp.ClientTimeout(
                    total=self._timeout, connect=5, sock_read=self.stall_timeout
                ),
                headers=self._headers,
                json_serialize=lambda obj: orjson.dumps(obj).decode(),
            )

    async def stop(self) -> None:
        """Close the connection pool."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def session(self) -> aiohttp.ClientSession:
        """The open session (``start`` must have run)."""
        if self._session is None:
            raise RuntimeError(f"{type(self).__name__}.start() was not called")
        return self._session


class OllamaClient(HttpModelClient):
    """Talks to one Ollama server."""

    def __init__(
        self,
        host: str,
        *,
        timeout: float = 300.0,
        max_connections: int = 64,
        stall_timeout: float | None = None,
    ) -> None:
        super().__init__(
            timeout=timeout, max_connections=max_connections, stall_timeout=stall_timeout
        )
        self.host = host.rstrip("/")
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
        """Run one chat completion, streaming content tokens to ``on_token``."""
        body: dict[str, Any] = {"model": model, "messages": list(messages), "stream": True}
        if tools:
            body["tools"] = list(tools)
        if options:
            body["options"] = options
        if keep_alive is not None:
            body["keep_alive"] = keep_alive
        result = ChatResult()
        parts: list[str] = []
        try:
            async with self.session.post(f"{self.host}/api/chat", data=orjson.dumps(body)) as resp:
                if resp.status >= 400:
                    raise await self._http_error(resp, model)
                async for line in resp.content:
                    if not line.strip():
                        continue
                    chunk = orjson.loads(line)
                    if "error" in chunk:
                        raise OllamaError(
                            str(chunk["error"]), hint=_hint(str(chunk["error"]), model)
                        )
                    message = chunk.get("message") or {}
                    token = message.get("content") or ""
                    if token:
                        parts.append(token)
                        if on_token is not None:
                            await on_token(token)
                    for call in message.get("tool_calls") or ():
                        fn = call.get("function") or {}
                        args = fn.get("arguments") or {}
                        if isinstance(args, str):
                            args = orjson.loads(args) if args.strip() else {}
                        result.tool_calls.append(
                            ToolCall(
                                str(fn.get("name", "")), args, f"call_{len(result.tool_calls)}"
                            )
                        )
                    if chunk.get("done"):
                        result.prompt_tokens = int(chunk.get("prompt_eval_count") or 0)
                        result.completion_tokens = int(chunk.get("eval_count") or 0)
                        result.done_reason = str(chunk.get("done_reason") or "stop")
        except STALL_ERRORS as exc:
            raise stalled(self.host, self.stall_timeout) from exc
        except NETWORK_ERRORS as exc:
            raise self._unavailable(exc) from exc
        result.content = "".join(parts)
        return result

    async def show(self, model: str) -> dict[str, Any]:
        """Model details (``capabilities``, ``model_info``...)."""
        return await self._post_json("/api/show", {"model": model}, model)

    async def supports_vision(self, model: str) -> bool:
        """Whether ``model`` takes images (``/api/show`` capabilities); asked once per model.

        Raises :class:`OllamaError` when the server cannot say (not cached: asked again later).
        """
        if model not in self._vision:
            self._vision[model] = has_vision(await self.show(model))
        return self._vision[model]

    async def tags(self) -> list[str]:
        """Names of the models pulled on the server."""
        data = await self._get_json("/api/tags")
        return [str(m.get("name") or m.get("model")) for m in data.get("models", [])]

    async def version(self) -> str:
        """The server's version string."""
        data = await self._get_json("/api/version")
        return str(data.get("version", "unknown"))

    async def embed(self, model: str, inputs: Sequence[str]) -> list[list[float]]:
        """Embeddings for each input, in order."""
        data = await self._post_json("/api/embed", {"model": model, "input": list(inputs)}, model)
        return [list(map(float, vec)) for vec in data.get("embeddings", [])]

    async def check_model(self, model: str, *, needs_tools: bool = True) -> ModelCheck:
        """Check that the server is up, the model pulled, and that it supports tools."""
        try:
            info = await self.show(model)
        except OllamaError as exc:
            return ModelCheck(False, f"{exc}. {exc.hint}".strip())
        caps = info.get("capabilities") or []
        if needs_tools and caps and "tools" not in caps:
            return ModelCheck(
                False,
                f"model {model!r} does not support tool calling (capabilities: "
                f"{', '.join(caps)}). Choose one that does, e.g. OC_MODEL=qwen3:8b.",
            )
        ctx = None
        for key, value in (info.get("model_info") or {}).items():
            if key.endswith(".context_length"):
                ctx = int(value)
        return ModelCheck(True, f"model {model!r} is available", ctx)

    # --- plumbing ----------------------------------------------------------------------
    async def _get_json(self, path: str) -> dict[str, Any]:
        try:
            async with self.session.get(f"{self.host}{path}") as resp:
                if resp.status >= 400:
                    raise await self._http_error(resp, "")
                return dict(orjson.loads(await resp.read()))
        except NETWORK_ERRORS as exc:
            raise self._unavailable(exc) from exc

    async def _post_json(self, path: str, body: dict[str, Any], model: str) -> dict[str, Any]:
        try:
            async with self.session.post(f"{self.host}{path}", data=orjson.dumps(body)) as resp:
                if resp.status >= 400:
                    raise await self._http_error(resp, model)
                return dict(orjson.loads(await resp.read()))
        except NETWORK_ERRORS as exc:
            raise self._unavailable(exc) from exc

    async def _http_error(self, resp: aiohttp.ClientResponse, model: str) -> OllamaError:
        raw = await resp.read()
        try:
            message = str(orjson.loads(raw).get("error", raw.decode(errors="replace")))
        except (orjson.JSONDecodeError, AttributeError):
            message = raw.decode(errors="replace")[:200] or resp.reason or "error"
        return OllamaError(
            f"Ollama at {self.host} answered {resp.status}: {message}",
            status=resp.status,
            hint=_hint(message, model),
        )

    def _unavailable(self, exc: BaseException) -> OllamaUnavailable:
        return OllamaUnavailable(
            f"cannot reach Ollama at {self.host} ({type(exc).__name__}: {exc})".replace(": )", ")"),
            hint="Start it with `ollama serve`, or set OLLAMA_HOST to where it runs.",
        )


def has_vision(info: dict[str, Any]) -> bool:
    """Whether a model's description says it takes images.

    Ollama's ``/api/show`` lists ``capabilities`` (``"vision"``) since 0.6; older servers show a
    ``projector_info`` (the vision projector loaded beside the model) or a ``clip``/``mllama``
    family. OpenAI-compatible ``/models`` entries use ``capabilities`` (llama.cpp server:
    ``"multimodal"``), LM Studio's ``type`` (``vlm``) or OpenRouter's
    ``architecture.input_modalities``; most (OpenAI, vLLM) say nothing, and then the answer is
    yes: the image is sent and a text-only model's server refuses it with an error the user sees.
    """
    if info.get("type") in ("vlm", "llm"):
        return info.get("type") == "vlm"
    caps = info.get("capabilities")
    if isinstance(caps, list):
        return "vision" in caps or "multimodal" in caps
    if isinstance(caps, dict):
        return bool(caps.get("vision") or caps.get("multimodal"))
    architecture = info.get("architecture")
    if isinstance(architecture, dict) and isinstance(architecture.get("input_modalities"), list):
        return "image" in architecture["input_modalities"]
    if info.get("projector_info"):
        return True
    if info.get("object") == "model":  # an OpenAI /models entry that does not say
        return True
    families = (info.get("details") or {}).get("families") or []
    return "clip" in families or "mllama" in families


def _hint(message: str, model: str) -> str:
    if "not found" in message and model:
        return f"Run `ollama pull {model}`, or set OC_MODEL to a model you have (`ollama list`)."
    return ""
