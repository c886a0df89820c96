"""A fake Slack Web API (and Socket Mode endpoint) serving real HTTP on 127.0.0.1, port 0.

The real ``slack_sdk`` client talks to it through its ``base_url`` (``SLACK_API_URL``). It keeps
the messages the bot posted (with every edit), records every call with its arguments, and can be
told to fail the next calls of a method (``ratelimited`` with ``Retry-After``, ``invalid_auth``).

Helpers for the inbound direction build Events API envelopes and sign them exactly as Slack does.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

__all__ = [
    "ApiCall",
    "FakeSlackApi",
    "SharedFile",
    "SlackMessage",
    "event_envelope",
    "signed_headers",
]


@dataclass
class ApiCall:
    """One Web API request as the fake received it."""

    method: str
    args: dict[str, Any]
    token: str | None
    at: float = field(default_factory=time.monotonic)


@dataclass
class SlackMessage:
    """A message the bot posted; ``edits`` holds every text it was updated to."""

    channel: str
    ts: str
    text: str
    thread_ts: str | None = None
    edits: list[str] = field(default_factory=list)


@dataclass
class SharedFile:
    """A file the bot uploaded (``files.getUploadURLExternal`` + upload) and shared
    (``files.completeUploadExternal``)."""

    file_id: str
    filename: str
    data: bytes = field(repr=False)
    title: str = ""
    channel: str = ""
    initial_comment: str | None = None
    thread_ts: str | None = None
    length: int = 0
    """The size ``files.getUploadURLExternal`` was told; the upload must match it."""


@dataclass
class _Failure:
    error: str
    status: int
    retry_after: float | None
    times: int
    after: int


class FakeSlackApi:
    """Web API methods the connector uses, with Slack's request and response shapes."""

    def __init__(
        self,
        token: str = "xoxb-test-token",
        *,
        bot_user_id: str = "UBOT",
        bot_id: str = "BBOT",
        team_id: str = "T0001",
        app_token: str = "xapp-test-token",
    ) -> None:
        self.tokens = {token}
        self.app_token = app_token
        self.bot_user_id, self.bot_id, self.team_id = bot_user_id, bot_id, team_id
        self.calls: list[ApiCall] = []
        self.messages: dict[tuple[str, str], SlackMessage] = {}
        self.reactions: list[dict[str, str]] = []
        self.socket_acks: list[dict[str, Any]] = []
        self.not_member: set[str] = set()
        """Channels the bot was not invited to: ``chat.postMessage`` there fails."""
        self.responses: list[tuple[str, dict[str, Any]]] = []
        """Slash-command ``response_url`` posts: (hook id, JSON body)."""
        self._failures: dict[str, list[_Failure]] = {}
        self._ts = itertools.count(1)
        self._changed = asyncio.Condition()
        self._sockets: list[web.WebSocketResponse] = []
        self._runner: web.AppRunner | None = None
        self.port = 0
        self.files: dict[str, bytes] = {}  # files.slack.com path -> bytes
        self.file_redirects: dict[str, str] = {}  # path -> where it redirects instead
        self.file_requests: list[tuple[str, dict[str, str]]] = []  # (path, headers)
        self.uploads: dict[str, SharedFile] = {}  # file id -> upload (shared or not yet)
        self.shared: list[SharedFile] = []  # completed uploads, in order
        self.upload_status = 200  # what the upload URL answers (500: the upload fails)

    # --- lifecycle ---------------------------------------------------------------------
    async def start(self) -> FakeSlackApi:
        """Serve on a free loopback port."""
        app = web.Application()
        app.router.add_route("*", "/api/{method}", self._handle)
        app.router.add_get("/link", self._socket)
        app.router.add_post("/hooks/{hook}", self._hook)
        app.router.add_get("/files-pri/{tail:.+}", self._file)
        app.router.add_post("/upload/v1/{file_id}", self._upload)
        self._runner = web.AppRunner(app, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]
        return self

    async def stop(self) -> None:
        """Close sockets and stop serving."""
        for ws in list(self._sockets):
            await ws.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def response_url(self, hook: str = "cmd") -> str:
        """A ``response_url`` to put in a slash-command payload; posts land in ``responses``."""
        return f"http://127.0.0.1:{self.port}/hooks/{hook}"

    @property
    def url(self) -> str:
        """What ``SLACK_API_URL`` should be set to (trailing slash included)."""
        return f"http://127.0.0.1:{self.port}/api/"

    # --- test controls -----------------------------------------------------------------
    def file(
        self,
        name: str,
        data: bytes,
        *,
        mimetype: str,
        claimed_size: int | None = None,
        redirect_to: str | None = None,
        **extra: Any,
    ) -> dict[str, Any]:
        """A file object as a ``file_share`` message carries it; ``url_private`` serves
        ``data`` to the bot token (or redirects to ``redirect_to``).
        """
        file_id = f"F{next(self._ts):08d}"
        path = f"/files-pri/{self.team_id}-{file_id}/{name}"
        self.files[path] = data
        if redirect_to is not None:
            self.file_redirects[path] = redirect_to
        url = f"http://127.0.0.1:{self.port}{path}"
        return {
            "id": file_id,
            "created": int(time.time()),
            "timestamp": int(time.time()),
            "name": name,
            "title": name,
            "mimetype": mimetype,
            "filetype": name.rsplit(".", 1)[-1],
            "user": "U1",
            "size": len(data) if claimed_size is None else claimed_size,
            "mode": "hosted",
            "is_external": False,
            "url_private": url,
            "url_private_download": url.replace(f"/{name}", f"/download/{name}"),
            "permalink": f"https://example.slack.com/files/U1/{file_id}/{name}",
            **extra,
        }

    def fail_next(
        self,
        method: str,
        error: str = "ratelimited",
        *,
        status: int | None = None,
        retry_after: float | None = 1,
        times: int = 1,
        after: int = 0,
    ) -> None:
        """Answer ``times`` calls of ``method`` with ``error``, once ``after`` more succeeded."""
        code = status if status is not None else (429 if error == "ratelimited" else 200)
        wait = retry_after if code == 429 else None
        self._failures.setdefault(method, []).append(_Failure(error, code, wait, times, after))

    def clear_failures(self) -> None:
        """Forget every failure queued with :meth:`fail_next`."""
        self._failures.clear()

    def calls_of(self, method: str) -> list[ApiCall]:
        """Recorded calls of one method, in order (failed ones included)."""
        return [c for c in self.calls if c.method == method]

    def posted(self, channel: str | None = None) -> list[SlackMessage]:
        """Messages the bot posted, oldest first, optionally in one channel."""
        return [m for m in self.messages.values() if channel in (None, m.channel)]

    async def wait_for(self, predicate: Callable[[], object], within: float = 5.0) -> None:
        """Wait until ``predicate()`` is truthy (re-checked after every call)."""
        async with asyncio.timeout(within), self._changed:
            await self._changed.wait_for(predicate)

    async def push_socket(self, payload: dict[str, Any], kind: str = "events_api") -> str:
        """Deliver a Socket Mode envelope to the connected client; returns its envelope id."""
        envelope_id = f"env-{next(self._ts)}"
        envelope = {
            "envelope_id": envelope_id,
            "type": kind,
            "payload": payload,
            "accepts_response_payload": kind != "events_api",
            "retry_attempt": 0,
            "retry_reason": "",
        }
        await self.wait_for(lambda: self._sockets)
        await self._sockets[-1].send_str(json.dumps(envelope))
        return envelope_id

    async def drop_sockets(self) -> None:
        """Close every Socket Mode connection from the server side (as Slack does on deploys)."""
        for ws in list(self._sockets):
            await ws.close()

    @property
    def socket_count(self) -> int:
        """Open Socket Mode connections."""
        return len(self._sockets)

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    # --- HTTP --------------------------------------------------------------------------
    async def _handle(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        args: dict[str, Any] = dict(request.query)
        if request.can_read_body:
            if request.content_type == "application/json":
                args.update(await request.json())
            else:
                args.update(dict(await request.post()))
        auth = request.headers.get("Authorization", "")
        token = auth.removeprefix("Bearer ") if auth.startswith("Bearer ") else args.get("token")
        self.calls.append(ApiCall(method, args, token))
        try:
            return self._answer(method, args, token)
        finally:
            await self._notify()

    def _answer(self, method: str, args: dict[str, Any], token: str | None) -> web.Response:
        pending = self._failures.get(method)
        if pending and pending[0].after > 0:
            pending[0].after -= 1
        elif pending:
            failure = pending[0]
            failure.times -= 1
            if failure.times <= 0:
                pending.pop(0)
            headers = {}
            if failure.retry_after is not None:
                headers["Retry-After"] = f"{failure.retry_after:g}"
            body = {"ok": False, "error": failure.error}
            return web.json_response(body, status=failure.status, headers=headers)
        if method == "apps.connections.open":
            if token != self.app_token:
                return _error("invalid_auth")
            return _ok(url=f"ws://127.0.0.1:{self.port}/link")
        if token not in self.tokens:
            return _error("invalid_auth" if token else "not_authed")
        handler = getattr(self, "_m_" + method.replace(".", "_"), None)
        if handler is None:
            return _error("unknown_method")
        result: web.Response = handler(args)
        return result

    def _m_auth_test(self, args: dict[str, Any]) -> web.Response:
        return _ok(
            url="https://fake.slack.com/",
            team="Fake",
            user="opencomputer",
            team_id=self.team_id,
            user_id=self.bot_user_id,
            bot_id=self.bot_id,
            is_enterprise_install=False,
        )

    def _m_chat_postMessage(self, args: dict[str, Any]) -> web.Response:
        channel, text = str(args.get("channel", "")), args.get("text")
        if not channel:
            return _error("channel_not_found")
        if not text:
            return _error("no_text")
        if channel in self.not_member:
            return _error("not_in_channel")
        n = next(self._ts)
        ts = f"{1_700_000_000 + n}.{n:06d}"
        thread = args.get("thread_ts") or None
        self.messages[(channel, ts)] = SlackMessage(channel, ts, str(text), thread)
        message = {"type": "message", "text": text, "user": self.bot_user_id, "ts": ts}
        if thread:
            message["thread_ts"] = thread
        return _ok(channel=channel, ts=ts, message=message)

    def _m_chat_update(self, args: dict[str, Any]) -> web.Response:
        key = (str(args.get("channel", "")), str(args.get("ts", "")))
        if key not in self.messages:
            return _error("message_not_found")
        msg = self.messages[key]
        msg.text = str(args.get("text", ""))
        msg.edits.append(msg.text)
        return _ok(channel=key[0], ts=key[1], text=msg.text)

    def _m_reactions_add(self, args: dict[str, Any]) -> web.Response:
        entry = {k: str(args.get(k, "")) for k in ("channel", "timestamp", "name")}
        if entry in self.reactions:
            return _error("already_reacted")
        self.reactions.append(entry)
        return _ok()

    def _m_files_getUploadURLExternal(self, args: dict[str, Any]) -> web.Response:
        filename, length = str(args.get("filename") or ""), str(args.get("length") or "")
        if not filename or not length.isdigit():
            return _error("invalid_arguments")
        file_id = f"F{next(self._ts):08d}"
        self.uploads[file_id] = SharedFile(file_id, filename, b"", length=int(length))
        return _ok(upload_url=f"http://127.0.0.1:{self.port}/upload/v1/{file_id}", file_id=file_id)

    async def _upload(self, request: web.Request) -> web.Response:
        """The upload URL: the raw bytes (or a multipart ``file`` part), as files.slack.com."""
        upload = self.uploads.get(request.match_info["file_id"])
        if upload is None:
            return web.Response(status=404, text="Not Found")
        if self.upload_status != 200:
            return web.Response(status=self.upload_status, text="upload failed")
        if request.content_type == "multipart/form-data":
            form = await request.post()
            part = form.get("file") or form.get("filename")
            data = part.file.read() if isinstance(part, web.FileField) else b""
        else:
            data = await request.read()
        if len(data) != upload.length:
            return web.Response(status=400, text="length mismatch")
        upload.data = data
        await self._notify()
        return web.Response(text=f"OK - {len(data)}")

    def _m_files_completeUploadExternal(self, args: dict[str, Any]) -> web.Response:
        try:
            files = json.loads(str(args.get("files") or "[]"))
        except ValueError:
            return _error("invalid_arguments")
        if not files:
            return _error("invalid_arguments")
        channel = str(args.get("channel_id") or "")
        if channel and channel in self.not_member:
            return _error("not_in_channel")
        done = []
        for entry in files:
            upload = self.uploads.get(str(entry.get("id")))
            if upload is None or not upload.data:
                return _error("file_not_found")
            upload.title = str(entry.get("title") or upload.filename)
            upload.channel = channel
            upload.initial_comment = args.get("initial_comment")
            upload.thread_ts = args.get("thread_ts")
            self.shared.append(upload)
            done.append({"id": upload.file_id, "title": upload.title, "name": upload.filename})
        return _ok(files=done)

    async def _file(self, request: web.Request) -> web.StreamResponse:
        """``files.slack.com``: the bytes for the bot token; Slack's login page otherwise."""
        path = request.path.replace("/download/", "/")
        self.file_requests.append((request.path, dict(request.headers)))
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        if token not in self.tokens:
            return web.Response(status=302, headers={"Location": "https://slack.com/signin"})
        if path in self.file_redirects:
            return web.Response(status=302, headers={"Location": self.file_redirects[path]})
        data = self.files.get(path)
        if data is None:
            return web.Response(status=404, text="file_not_found")
        resp = web.StreamResponse()  # chunked: the size in the event is only a claim
        await resp.prepare(request)
        for start in range(0, len(data), 65536):
            await resp.write(data[start : start + 65536])
        await resp.write_eof()
        return resp

    async def _hook(self, request: web.Request) -> web.Response:
        self.responses.append((request.match_info["hook"], await request.json()))
        await self._notify()
        return web.Response(text="ok")

    # --- Socket Mode -------------------------------------------------------------------
    async def _socket(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        self._sockets.append(ws)
        await ws.send_str(json.dumps({"type": "hello", "num_connections": 1}))
        await self._notify()
        try:
            async for frame in ws:
                if frame.type == WSMsgType.TEXT:
                    self.socket_acks.append(json.loads(frame.data))
                    await self._notify()
        finally:
            self._sockets.remove(ws)
            await self._notify()
        return ws


def _ok(**fields: Any) -> web.Response:
    return web.json_response({"ok": True, **fields})


def _error(error: str) -> web.Response:
    return web.json_response({"ok": False, "error": error})


# --- inbound helpers ---------------------------------------------------------------------
def signed_headers(
    secret: str, body: str, *, timestamp: int | None = None, retry: int | None = None
) -> dict[str, str]:
    """Headers Slack sends with an Events API request: v0 HMAC-SHA256 signature."""
    ts = str(int(time.time()) if timestamp is None else timestamp)
    digest = hmac.new(secret.encode(), f"v0:{ts}:{body}".encode(), hashlib.sha256).hexdigest()
    headers = {
        "Content-Type": "application/json",
        "X-Slack-Request-Timestamp": ts,
        "X-Slack-Signature": f"v0={digest}",
    }
    if retry is not None:
        headers["X-Slack-Retry-Num"] = str(retry)
        headers["X-Slack-Retry-Reason"] = "http_timeout"
    return headers


_event_ids = itertools.count(1)


def event_envelope(
    event: dict[str, Any], *, team_id: str = "T0001", **extra: Any
) -> dict[str, Any]:
    """An ``event_callback`` envelope around ``event`` with a fresh ``event_id``."""
    n = next(_event_ids)
    return {
        "token": "legacy-verification-token",
        "team_id": team_id,
        "api_app_id": "A0001",
        "event": event,
        "type": "event_callback",
        "event_id": f"Ev{n:08d}",
        "event_time": int(time.time()),
        "authorizations": [{"team_id": team_id, "user_id": "UBOT", "is_bot": True}],
        **extra,
    }
