"""The REST half of the fake Discord: routes, recorded requests, injected failures.

Mixed into :class:`~tests.discord.fake_discord.FakeDiscord`, which owns the state it uses.
"""

from __future__ import annotations

import json
import re
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import aiohttp
from aiohttp import web

from tests.discord import discord_payloads as p

__all__ = ["FILE_LIMIT", "JSON", "FakeRest", "Recorded", "UploadedFile"]

JSON = "application/json"  # exactly: discord.py ignores bodies with "; charset=utf-8"
FILE_LIMIT = 10 * 1024 * 1024  # a bot's upload limit in a server without boosts


@dataclass
class Recorded:
    """One REST request the bot made."""

    method: str
    path: str
    query: dict[str, str]
    body: Any
    headers: dict[str, str]
    files: list[UploadedFile] = field(default_factory=list)
    """The file parts of a multipart request (a message with attachments)."""


@dataclass
class UploadedFile:
    """One ``files[n]`` part of a multipart message request."""

    field: str
    filename: str
    content_type: str
    data: bytes = field(repr=False)


@dataclass
class _Failure:
    method: str
    pattern: re.Pattern[str]
    status: int
    body: dict[str, Any]
    headers: dict[str, str]
    count: int


def _json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        body=json.dumps(data).encode(),
        status=status,
        headers={"Content-Type": JSON, **(headers or {})},
    )


class FakeRest:
    """Discord's REST API as the bot uses it (``/api/v10/...``)."""

    token: str
    guilds: dict[str, list[str]]
    threads: dict[str, str]
    requests: list[Recorded]
    unexpected: list[Recorded]
    messages: dict[str, dict[str, Any]]
    deleted: list[dict[str, Any]]
    commands: dict[str, list[dict[str, Any]]]
    interaction_responses: list[dict[str, Any]]
    _interaction_tokens: dict[str, str]
    _interaction_channels: dict[str, str]
    _failures: list[_Failure]
    channel_limit: tuple[int, float] | None
    rate_limited: int
    accepted_at: list[float]
    _windows: dict[str, deque[float]]

    def new_id(self) -> str:
        """A fresh snowflake."""
        raise NotImplementedError

    async def _notify(self) -> None:
        raise NotImplementedError

    def fail_next(
        self,
        method: str,
        pattern: str,
        *,
        status: int = 429,
        count: int = 1,
        retry_after: float = 0.05,
    ) -> None:
        """Answer the next ``count`` matching requests with ``status`` (429 as Discord does)."""
        body: dict[str, Any] = {"message": "error", "code": 0}
        headers: dict[str, str] = {}
        if status == 429:
            body = {"message": "You are being rate limited.", "retry_after": retry_after}
            body["global"] = False
            # discord.py treats a 429 without Via as a Cloudflare ban, as Discord's carry it.
            headers = {"Via": "1.1 google", "Retry-After": str(retry_after)}
            headers["X-RateLimit-Scope"] = "user"
        self._failures.append(_Failure(method, re.compile(pattern), status, body, headers, count))

    def _take_failure(self, method: str, path: str) -> _Failure | None:
        for failure in self._failures:
            if failure.method == method and failure.pattern.fullmatch(path):
                failure.count -= 1
                if failure.count <= 0:
                    self._failures.remove(failure)
                return failure
        return None

    def _channel_bucket(self, method: str, path: str) -> tuple[web.Response | None, dict[str, str]]:
        """Discord's 5 messages / 5 s per channel (``channel_limit`` scales it), with headers."""
        match = re.fullmatch(r"/channels/(\d+)/messages", path)
        if self.channel_limit is None or method != "POST" or match is None:
            return None, {}
        limit, per = self.channel_limit
        now = time.monotonic()
        # Like Discord, a fixed window: it opens with the first request and resets whole.
        window = self._windows.setdefault(match.group(1), deque())
        if window and now - window[0] >= per:
            window.clear()
        reset_after = per - (now - window[0]) if window else per
        headers = {
            "X-RateLimit-Limit": str(limit),
            "X-RateLimit-Bucket": f"chan-{match.group(1)}",
            "X-RateLimit-Reset-After": f"{reset_after:.3f}",
        }
        if len(window) >= limit:
            self.rate_limited += 1
            headers.update({"X-RateLimit-Remaining": "0", "Via": "1.1 google"})
            headers["X-RateLimit-Scope"] = "user"
            body = {"message": "You are being rate limited.", "retry_after": reset_after}
            return _json({**body, "global": False}, 429, headers), {}
        window.append(now)
        self.accepted_at.append(now)
        headers["X-RateLimit-Remaining"] = str(limit - len(window))
        return None, headers

    async def _rest(self, request: web.Request) -> web.StreamResponse:
        path = "/" + request.match_info["tail"]
        files: list[UploadedFile] = []
        if request.content_type == "multipart/form-data":  # attachments: payload_json + files
            body, files = await _multipart(request)
        else:
            raw = await request.read()
            body = json.loads(raw) if raw and request.content_type == JSON else None
        rec = Recorded(request.method, path, dict(request.query), body, dict(request.headers))
        rec.files = files
        self.requests.append(rec)
        try:
            # Interaction callbacks and webhooks are authorised by the token in the URL.
            by_url = path.startswith(("/interactions/", "/webhooks/"))
            if not by_url and request.headers.get("Authorization") != f"Bot {self.token}":
                return _json({"message": "401: Unauthorized", "code": 0}, 401)
            failure = self._take_failure(request.method, path)
            if failure is not None:
                return _json(failure.body, failure.status, failure.headers)
            limited, headers = self._channel_bucket(request.method, path)
            if limited is not None:
                return limited
            if sum(len(f.data) for f in files) > FILE_LIMIT:
                return _json({"message": "Request entity too large", "code": 40005}, 413)
            response = await self._route(rec)
            response.headers.update(headers)
            return response
        finally:
            await self._notify()

    async def _route(self, rec: Recorded) -> web.StreamResponse:
        m, path, body = rec.method, rec.path, rec.body
        parts = path.strip("/").split("/")
        if (m, path) == ("GET", "/users/@me"):
            return _json(p.bot_user())
        if (m, path) == ("GET", "/oauth2/applications/@me"):
            return _json(p.application())
        if m == "POST" and re.fullmatch(r"/channels/\d+/messages", path):
            return self._create_with_files(parts[1], body or {}, rec.files)
        if m == "PATCH" and re.fullmatch(r"/channels/\d+/messages/\d+", path):
            return self._edit_message(parts[3], body or {})
        if m == "PUT" and re.fullmatch(r"/channels/\d+/messages/\d+/reactions/[^/]+/@me", path):
            return web.Response(status=204)
        if m == "POST" and re.fullmatch(r"/channels/\d+/typing", path):
            return web.Response(status=204)
        if m == "GET" and re.fullmatch(r"/channels/\d+", path):
            return self._get_channel(parts[1])
        if m == "GET" and re.fullmatch(r"/channels/\d+/messages/\d+", path):
            found = self.messages.get(parts[3])
            if found is None or found.get("channel_id") != parts[1]:
                return _json({"message": "Unknown Message", "code": 10008}, 404)
            return _json(found)
        if m == "PUT" and re.fullmatch(r"/applications/\d+(/guilds/\d+)?/commands", path):
            scope = parts[3] if len(parts) == 5 else "global"
            return _json(self._put_commands(scope, body or []))
        if m == "POST" and re.fullmatch(r"/interactions/\d+/[^/]+/callback", path):
            return self._interaction_callback(parts[1], parts[2], body or {})
        if re.fullmatch(r"/webhooks/\d+/[^/]+(/messages/(@original|\d+))?", path):
            return self._webhook(rec, parts)
        self.unexpected.append(rec)
        return _json({"message": "404: Not Found", "code": 0}, 404)

    def _create_message(
        self, channel_id: str, body: dict[str, Any], *, interaction: str | None = None
    ) -> dict[str, Any]:
        msg = p.message(
            message_id=self.new_id(),
            channel_id=channel_id,
            content=body.get("content") or "",
            author=p.bot_user(),
            guild_id=self._guild_of(channel_id),
        )
        ref = body.get("message_reference")
        if ref:
            msg["message_reference"] = ref
            msg["type"] = 19
        msg["interaction_token"] = interaction
        self.messages[msg["id"]] = msg
        return msg

    def _create_with_files(
        self, channel_id: str, body: dict[str, Any], files: list[UploadedFile]
    ) -> web.Response:
        """A message with attachments, checked as Discord checks it: every ``files[n]`` part
        is named in ``attachments`` by id ``n``; no content and no file is an empty message.
        """
        named = {str(a.get("id")): a for a in body.get("attachments") or []}
        attachments = []
        for upload in files:
            index = upload.field.removeprefix("files[").removesuffix("]")
            if index not in named:
                return _json({"message": "Invalid Form Body", "code": 50035}, 400)
            attachment_id = self.new_id()
            attachments.append(
                {
                    "id": attachment_id,
                    "filename": named[index].get("filename") or upload.filename,
                    "size": len(upload.data),
                    "url": f"https://cdn.discordapp.com/attachments/{channel_id}/{attachment_id}/{upload.filename}",
                    "proxy_url": f"https://media.discordapp.net/attachments/{channel_id}/{attachment_id}/{upload.filename}",
                    "content_type": upload.content_type,
                }
            )
        if not body.get("content") and not attachments:
            return _json({"message": "Cannot send an empty message", "code": 50006}, 400)
        msg = self._create_message(channel_id, body)
        msg["attachments"] = attachments
        return _json(msg)

    def _edit_message(self, message_id: str, body: dict[str, Any]) -> web.Response:
        msg = self.messages.get(message_id)
        if msg is None:
            return _json({"message": "Unknown Message", "code": 10008}, 404)
        if "content" in body:
            msg["content"] = body["content"]
        msg["edited_timestamp"] = datetime.now(UTC).isoformat()
        msg["edits"] = msg.get("edits", 0) + 1
        return _json(msg)

    def _get_channel(self, channel_id: str) -> web.Response:
        if channel_id in self.threads:
            parent = self.threads[channel_id]
            return _json(p.thread_channel(channel_id, parent, self._guild_of(parent) or ""))
        guild = self._guild_of(channel_id)
        if guild is None:
            return _json({"message": "Unknown Channel", "code": 10003}, 404)
        return _json(p.text_channel(channel_id, guild))

    def _guild_of(self, channel_id: str) -> str | None:
        channel_id = self.threads.get(channel_id, channel_id)
        for gid, channels in self.guilds.items():
            if channel_id in channels:
                return gid
        return None

    def _put_commands(self, scope: str, body: list[dict[str, Any]]) -> list[dict[str, Any]]:
        out = []
        for cmd in body:
            full = {
                "id": self.new_id(),
                "application_id": p.APP_ID,
                "version": self.new_id(),
                "type": 1,
                "options": [],
                "default_member_permissions": None,
                "nsfw": False,
                **cmd,
            }
            perms = full["default_member_permissions"]
            full["default_member_permissions"] = None if perms is None else str(perms)
            if scope != "global":
                full["guild_id"] = scope
            out.append(full)
        self.commands[scope] = out
        return out

    def _interaction_callback(
        self, interaction_id: str, token: str, body: dict[str, Any]
    ) -> web.Response:
        if self._interaction_tokens.get(interaction_id) != token:
            return _json({"message": "Unknown interaction", "code": 10062}, 404)
        if any(r.get("interaction_id") == interaction_id for r in self.interaction_responses):
            return _json({"message": "Interaction already acknowledged", "code": 40060}, 400)
        self.interaction_responses.append({**body, "interaction_id": interaction_id})
        kind = body.get("type")
        channel_id = self._interaction_channels.get(interaction_id, p.CHANNEL_ID)
        msg = self._create_message(channel_id, body.get("data") or {}, interaction=token)
        msg["original_of"] = token
        return _json(
            {
                "interaction": {
                    "id": interaction_id,
                    "type": 2,
                    "response_message_id": msg["id"],
                    "response_message_loading": kind == 5,
                    "response_message_ephemeral": False,
                },
                "resource": {"type": kind, "message": msg},
            }
        )

    def _webhook(self, rec: Recorded, parts: list[str]) -> web.Response:
        token = parts[2]
        original = next((m for m in self.messages.values() if m.get("original_of") == token), None)
        if len(parts) == 3 and rec.method == "POST":
            channel = original["channel_id"] if original else p.CHANNEL_ID
            return _json(self._create_message(channel, rec.body or {}, interaction=token))
        if len(parts) == 5:
            target = original if parts[4] == "@original" else self.messages.get(parts[4])
            if target is None or target.get("interaction_token") != token:
                return _json({"message": "Unknown Webhook", "code": 10015}, 404)
            if rec.method == "PATCH":
                return self._edit_message(target["id"], rec.body or {})
            if rec.method == "DELETE":
                del self.messages[target["id"]]
                self.deleted.append(target)
                return web.Response(status=204)
            if rec.method == "GET":
                return _json(target)
        self.unexpected.append(rec)
        return _json({"message": "404: Not Found", "code": 0}, 404)


async def _multipart(request: web.Request) -> tuple[Any, list[UploadedFile]]:
    """``payload_json`` and the file parts of a multipart request, as Discord reads them."""
    body: Any = None
    files: list[UploadedFile] = []
    reader = await request.multipart()
    async for part in reader:
        if not isinstance(part, aiohttp.BodyPartReader):
            continue
        data = await part.read()
        if part.name == "payload_json":
            body = json.loads(data)
        elif part.filename is not None:
            content_type = part.headers.get("Content-Type", "application/octet-stream")
            files.append(UploadedFile(part.name or "", part.filename, content_type, bytes(data)))
    return body, files
