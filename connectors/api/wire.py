"""OpenAI's chat-completions wire format: requests in, completions, chunks and errors out.

Only what an OpenAI-compatible client needs from an agent: the request's last user message is
the turn's text (the agent keeps each conversation's history itself, so the history a client
sends with every request is not replayed), and the answer goes back as one ``chat.completion``
or as ``chat.completion.chunk`` deltas. Sampling fields (``temperature``, ``max_tokens``...)
and client-side ``tools`` are accepted and ignored: the agent's own settings and tools apply.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from dataclasses import dataclass
from typing import Any

from aiohttp import web

__all__ = [
    "MODEL_ID",
    "BadRequest",
    "ChatRequest",
    "chunk",
    "clean_text",
    "completion",
    "conversation_id",
    "error_body",
    "error_response",
    "event",
    "now",
    "parse_request",
    "usage",
]

MODEL_ID = "opencomputer"
"""The model id ``/v1/models`` lists: the agent, whatever model serves it underneath."""

_SAFE_ID = re.compile(r"[A-Za-z0-9_.@-]{1,64}")
_MAX_TEXT = 200_000


class BadRequest(ValueError):
    """A request the client must fix: one line saying what is wrong (``param`` names where)."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


@dataclass(frozen=True, slots=True)
class ChatRequest:
    """What the agent takes from a chat-completions request."""

    text: str
    model: str
    stream: bool
    include_usage: bool
    user: str | None


def error_body(
    message: str, kind: str, code: str | None = None, param: str | None = None
) -> dict[str, Any]:
    """OpenAI's error object (clients read ``error.message`` and ``error.code``)."""
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


def error_response(
    status: int,
    message: str,
    kind: str,
    code: str | None = None,
    *,
    param: str | None = None,
    headers: dict[str, str] | None = None,
) -> web.Response:
    """A JSON error response in OpenAI's format."""
    return web.json_response(error_body(message, kind, code, param), status=status, headers=headers)


def clean_text(text: str) -> str:
    """``text`` with lone UTF-16 surrogates (valid JSON escapes, invalid Unicode) replaced by
    U+FFFD: they cannot be stored or sent to the model as UTF-8.
    """
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return text


def parse_request(raw: bytes) -> ChatRequest:
    """Validate a chat-completions body; :class:`BadRequest` names the first problem."""
    try:
        body = json.loads(raw)  # stdlib: it takes lone surrogates, which clean_text repairs
    except (ValueError, RecursionError) as exc:
        raise BadRequest(f"the request body is not valid JSON ({exc})") from None
    if not isinstance(body, dict):
        raise BadRequest("the request body must be a JSON object")
    model = body.get("model", MODEL_ID)
    if not isinstance(model, str):
        raise BadRequest("'model' must be a string", "model")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise BadRequest("'messages' must be a non-empty array of messages", "messages")
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise BadRequest("'stream' must be true or false", "stream")
    options = body.get("stream_options")
    include_usage = isinstance(options, dict) and options.get("include_usage") is True
    user = body.get("user")
    if user is not None and not isinstance(user, str):
        raise BadRequest("'user' must be a string", "user")
    text = _last_user_text(messages)
    if len(text) > _MAX_TEXT:
        raise BadRequest(f"the last user message is longer than {_MAX_TEXT} characters")
    return ChatRequest(clean_text(text), clean_text(model)[:200], stream, include_usage, user)


def _last_user_text(messages: list[Any]) -> str:
    for i in range(len(messages) - 1, -1, -1):
        message = messages[i]
        if not isinstance(message, dict) or "role" not in message:
            raise BadRequest(f"messages[{i}] must be an object with a 'role'", f"messages[{i}]")
        if message["role"] != "user":
            continue
        text = _content_text(message.get("content"), i)
        if not text.strip():
            raise BadRequest("the last user message has no text", f"messages[{i}].content")
        return text
    raise BadRequest("'messages' holds no user message", "messages")


def _content_text(content: Any, i: int) -> str:
    """A message's text: a string, or the text parts of a list (images are not read)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = [
            part["text"]
            for part in content
            if isinstance(part, dict)
            and part.get("type") == "text"
            and isinstance(part.get("text"), str)
        ]
        return "\n".join(texts)
    raise BadRequest(
        f"messages[{i}].content must be a string or an array of parts", f"messages[{i}].content"
    )


def conversation_id(header: str | None, user: str | None) -> str:
    """The conversation within a person's chats: the header, else ``user``, else one default.

    Ids that could not be part of a conversation key (``:``, spaces, long ones) are hashed, so
    any client-chosen string works and none can reach another person's conversations.
    """
    value = header or user or "default"
    if _SAFE_ID.fullmatch(value):
        return value
    return "h" + hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def completion(cid: str, model: str, text: str, created: int) -> dict[str, Any]:
    """A non-streamed answer (token counts are not tracked: zeros)."""
    return {
        "id": cid,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": "stop",
                "logprobs": None,
            }
        ],
        "usage": usage(),
    }


def usage() -> dict[str, int]:
    """Token counts: not tracked by the agent, reported as zeros."""
    return {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}


def chunk(
    cid: str,
    model: str,
    created: int,
    delta: dict[str, Any],
    finish: str | None = None,
) -> bytes:
    """One server-sent event carrying a ``chat.completion.chunk``."""
    body = {
        "id": cid,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}],
    }
    return event(body)


def event(body: dict[str, Any]) -> bytes:
    """``data: <json>`` and the blank line that ends a server-sent event."""
    # ASCII JSON (\u escapes): no character can break the UTF-8 encoding or the framing
    return b"data: " + json.dumps(body).encode() + b"\n\n"


def now() -> int:
    """``created``: seconds since the epoch."""
    return int(time.time())
