"""A fake Telegram Bot API serving real HTTP on loopback.

python-telegram-bot runs unmodified against it (``base_url = fake.base_url``). It answers
``POST /bot<token>/<method>`` with form-encoded or JSON arguments the way Telegram does
(``{"ok": true, "result": ...}`` / ``{"ok": false, "error_code": ..., "description": ...}``),
keeps the chat history the bot wrote (so edits can be checked), validates HTML the way Telegram
does (allowed tags, balanced, ``< > &`` escaped, 4096 visible characters), serves ``getUpdates``
with Telegram's offset and long-poll semantics, and lets a test script failures (``fail``).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

from tests.telegram.bot_api_wire import entities, error, read_args, utf16_len, validate_html

__all__ = ["ApiCall", "FakeBotApi", "Upload", "utf16_len", "validate_html"]

TOKEN = "123456789:AAFakeTokenForTestsOnly_abcdefghijkl"
BOT_ID = 123456789
BOT_USERNAME = "oc_test_bot"

_DEFAULT_UPDATES = {"message", "edited_message", "channel_post", "callback_query", "my_chat_member"}


@dataclass(slots=True)
class ApiCall:
    """One Bot API request as the fake received it."""

    method: str
    args: dict[str, Any]
    at: float = field(default_factory=time.monotonic)

    def __getitem__(self, key: str) -> Any:
        return self.args[key]

    def get(self, key: str, default: Any = None) -> Any:
        """An argument, or ``default``."""
        return self.args.get(key, default)


@dataclass(slots=True)
class Upload:
    """A file the bot uploaded (``sendDocument``, ``sendPhoto``, ``sendVoice``, ``sendAudio``)."""

    method: str
    chat_id: int
    filename: str
    content_type: str
    data: bytes = field(repr=False)
    caption: str | None = None


@dataclass(slots=True)
class _Failure:
    method: str
    status: int
    description: str
    parameters: dict[str, Any] | None
    times: int
    when: Callable[[dict[str, Any]], bool] | None


class FakeBotApi:
    """Serve the Bot API methods a bot needs; record every call."""

    def __init__(self, *, token: str = TOKEN, bot_id: int = BOT_ID, username: str = BOT_USERNAME):
        self.token = token
        self.bot_user = {"id": bot_id, "is_bot": True, "first_name": "OC", "username": username}
        self.calls: list[ApiCall] = []
        self.updates: list[dict[str, Any]] = []
        self._confirmed: list[dict[str, Any]] = []
        self.allowed_updates: set[str] = set(_DEFAULT_UPDATES)
        self.texts: dict[tuple[int, int], str] = {}  # (chat, message id) -> current HTML
        self.chats: dict[int, dict[str, Any]] = {}
        self.webhook: dict[str, Any] | None = None
        self.webhook_error = ""  # getWebhookInfo's last_error_message
        self.commands: dict[str, list[dict[str, Any]]] = {}  # scope JSON -> commands
        self.failures: list[_Failure] = []
        self.files: dict[str, dict[str, Any]] = {}  # file_id -> getFile result + "data"
        self.file_requests: list[str] = []  # paths asked of the file endpoint
        self.uploads: list[Upload] = []  # files the bot sent, as Telegram received them
        self.base_url = ""
        self.api_url = ""
        self._ids = itertools.count(1000)
        self._update_ids = itertools.count(500_000)
        self._changed = asyncio.Condition()
        self._runner: web.AppRunner | None = None
        self._closing = False

    # --- lifecycle ---------------------------------------------------------------------
    async def __aenter__(self) -> FakeBotApi:
        app = web.Application()
        app.router.add_route("*", "/bot{token}/{method}", self._dispatch)
        app.router.add_get("/file/bot{token}/{path:.+}", self._file)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.api_url = f"http://127.0.0.1:{port}"
        self.base_url = f"{self.api_url}/bot"
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._closing = True
        await self._notify()
        if self._runner is not None:
            await self._runner.cleanup()

    # --- scripting ---------------------------------------------------------------------
    def fail(
        self,
        method: str,
        *,
        status: int = 429,
        description: str | None = None,
        retry_after: int | None = None,
        times: int = 1,
        when: Callable[[dict[str, Any]], bool] | None = None,
        parameters: dict[str, Any] | None = None,
    ) -> None:
        """Answer the next ``times`` calls of ``method`` (matching ``when``) with an error."""
        if status == 429 and retry_after is None:
            retry_after = 1
        params = {"retry_after": retry_after} if retry_after is not None else parameters
        text = description or (
            f"Too Many Requests: retry after {retry_after}" if status == 429 else "Bad Request"
        )
        self.failures.append(_Failure(method, status, text, params, times, when))

    def user(self, user_id: int = 42, name: str = "Alice", **extra: Any) -> dict[str, Any]:
        """A user object."""
        return {"id": user_id, "is_bot": False, "first_name": name, **extra}

    def chat(self, chat_id: int, kind: str = "private", **extra: Any) -> dict[str, Any]:
        """A chat object (remembered, so the bot's messages there carry it)."""
        chat = {"id": chat_id, "type": kind, **extra}
        if kind == "private":
            chat.setdefault("first_name", "Alice")
        else:
            chat.setdefault("title", "Test group")
        self.chats[chat_id] = chat
        return chat

    def message(
        self,
        text: str,
        *,
        chat_id: int = 42,
        user_id: int = 42,
        kind: str = "private",
        thread_id: int | None = None,
        reply_to: dict[str, Any] | None = None,
        from_user: dict[str, Any] | None = None,
        **extra: Any,
    ) -> dict[str, Any]:
        """A ``message`` object as Telegram sends it (entities included)."""
        chat_extra = {"is_forum": True} if thread_id else {}
        msg: dict[str, Any] = {
            "message_id": next(self._ids),
            "date": int(time.time()),
            "chat": self.chat(chat_id, kind, **chat_extra),
            "from": from_user or self.user(user_id),
            "text": text,
            **extra,
        }
        if found := entities(text):
            msg["entities"] = found
        if thread_id:
            msg["message_thread_id"] = thread_id
            msg["is_topic_message"] = True
        if reply_to is not None:
            msg["reply_to_message"] = reply_to
        return msg

    def bot_message(self, chat_id: int, message_id: int) -> dict[str, Any]:
        """A message the bot sent (for ``reply_to``)."""
        return {
            "message_id": message_id,
            "date": int(time.time()),
            "chat": self.chats.get(chat_id) or self.chat(chat_id),
            "from": self.bot_user,
            "text": validate_html(self.texts.get((chat_id, message_id), "x")),
        }

    def reaction(
        self,
        chat_id: int,
        message_id: int,
        *,
        new: list[str],
        old: list[str] | tuple[str, ...] = (),
        user_id: int = 42,
    ) -> dict[str, Any]:
        """A ``message_reaction`` object."""
        return {
            "chat": self.chats.get(chat_id) or self.chat(chat_id),
            "message_id": message_id,
            "user": self.user(user_id),
            "date": int(time.time()),
            "old_reaction": [{"type": "emoji", "emoji": e} for e in old],
            "new_reaction": [{"type": "emoji", "emoji": e} for e in new],
        }

    async def push(self, payload: dict[str, Any], kind: str = "message", **kw: Any) -> int:
        """Queue an update (``{kind: payload}``) for ``getUpdates``; return its update_id."""
        update_id = kw.get("update_id") or next(self._update_ids)
        self.updates.append({"update_id": update_id, kind: payload})
        await self._notify()
        return int(update_id)

    async def redeliver(self, update_id: int) -> None:
        """Serve an update again (as Telegram does when it thinks it was not received)."""
        for update in list(self.updates) + self._confirmed:
            if update["update_id"] == update_id:
                self.updates.append(dict(update))
                break
        await self._notify()

    async def post_webhook(
        self, url: str, update: dict[str, Any], secret: str | None = None
    ) -> tuple[int, str]:
        """POST an update to the bot's webhook as Telegram would; return (status, body)."""
        if secret is None:
            secret = (self.webhook or {}).get("secret_token", "")
        headers = {"X-Telegram-Bot-Api-Secret-Token": secret} if secret else {}
        async with (
            aiohttp.ClientSession() as session,
            session.post(url, json=update, headers=headers) as resp,
        ):
            return resp.status, await resp.text()

    # --- assertions --------------------------------------------------------------------
    def calls_to(self, method: str) -> list[ApiCall]:
        """Recorded calls of one method, oldest first."""
        return [c for c in self.calls if c.method == method]

    def shown(self, chat_id: int | None = None) -> list[str]:
        """What each message the bot posted shows now (edits applied), oldest first.

        Replies are posted as a placeholder and edited to their text, so this, not the
        ``sendMessage`` calls, is what a person reads.
        """
        return [
            text
            for (chat, _mid), text in sorted(self.texts.items(), key=lambda kv: kv[0][1])
            if chat_id is None or chat == chat_id
        ]

    async def wait_for(
        self,
        method: str,
        predicate: Callable[[ApiCall], bool] = lambda _c: True,
        *,
        count: int = 1,
        within: float = 5.0,
    ) -> list[ApiCall]:
        """Wait until ``count`` calls of ``method`` match ``predicate``; return them."""

        def matching() -> list[ApiCall]:
            return [c for c in self.calls_to(method) if predicate(c)]

        async with asyncio.timeout(within), self._changed:
            await self._changed.wait_for(lambda: len(matching()) >= count)
        return matching()

    # --- the API -----------------------------------------------------------------------
    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def _dispatch(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        args = await read_args(request)
        if request.content_type == "multipart/form-data":  # uploads: the file parts too
            args.update(await _file_parts(request, args))
        self.calls.append(ApiCall(method, args))
        await self._notify()
        if request.match_info["token"] != self.token:
            return error(401, "Unauthorized")
        for failure in self.failures:
            if failure.method == method and failure.times > 0:
                if failure.when is None or failure.when(args):
                    failure.times -= 1
                    return error(failure.status, failure.description, failure.parameters)
        handler = getattr(self, f"_m_{method}", None)
        if handler is None:
            return error(404, "Not Found: method not found")
        try:
            result = await handler(args)
        except ValueError as exc:
            return error(400, f"Bad Request: {exc}")
        except _Conflict:
            return error(409, "Conflict: can't use getUpdates method while webhook is active")
        return web.json_response({"ok": True, "result": result})

    def add_file(self, data: bytes, *, path: str, claimed_size: int | None = None) -> str:
        """Store a file the bot may fetch (``getFile`` then the file URL); returns its file_id.

        ``claimed_size`` is what ``getFile`` and the message report (default: the real size).
        """
        file_id = f"FILE{next(self._ids)}"
        size = len(data) if claimed_size is None else claimed_size
        self.files[file_id] = {
            "file_id": file_id,
            "file_unique_id": f"U{file_id}",
            "file_size": size,
            "file_path": path,
            "data": data,
        }
        return file_id

    async def _file(self, request: web.Request) -> web.StreamResponse:
        """``GET /file/bot<token>/<file_path>`` as the Bot API's file server answers it."""
        path = request.match_info["path"]
        self.file_requests.append(path)
        if request.match_info["token"] != self.token:
            return error(401, "Unauthorized")
        for entry in self.files.values():
            if entry["file_path"] == path:
                resp = web.StreamResponse()  # chunked: no Content-Length to trust
                await resp.prepare(request)
                data = entry["data"]
                for start in range(0, len(data), 65536):
                    await resp.write(data[start : start + 65536])
                await resp.write_eof()
                return resp
        return error(404, "Not Found")

    async def _m_getFile(self, args: dict[str, Any]) -> Any:
        entry = self.files.get(str(args.get("file_id")))
        if entry is None:
            raise ValueError("wrong file_id or the file is temporarily unavailable")
        return {k: v for k, v in entry.items() if k != "data"}

    async def _m_getMe(self, _args: dict[str, Any]) -> Any:
        return {**self.bot_user, "can_join_groups": True, "can_read_all_group_messages": False}

    async def _m_getWebhookInfo(self, _args: dict[str, Any]) -> Any:
        info: dict[str, Any] = {
            "url": (self.webhook or {}).get("url", ""),
            "has_custom_certificate": False,
            "pending_update_count": len(self.updates),
        }
        if self.webhook_error:
            info.update(last_error_date=int(time.time()), last_error_message=self.webhook_error)
        return info

    async def _m_deleteWebhook(self, _args: dict[str, Any]) -> Any:
        self.webhook = None
        return True

    async def _m_setWebhook(self, args: dict[str, Any]) -> Any:
        self.webhook = args
        return True

    async def _m_getUpdates(self, args: dict[str, Any]) -> Any:
        if self.webhook is not None:
            raise _Conflict
        if "allowed_updates" in args:
            self.allowed_updates = set(args["allowed_updates"]) or set(_DEFAULT_UPDATES)
        offset = int(args.get("offset") or 0)
        if offset:  # confirm everything before offset, as Telegram does
            self._confirmed = self._confirmed + [u for u in self.updates if u["update_id"] < offset]
            self.updates = [u for u in self.updates if u["update_id"] >= offset]
        deadline = time.monotonic() + float(args.get("timeout") or 0)
        while True:
            ready = [u for u in self.updates if self._wanted(u)][: int(args.get("limit") or 100)]
            if ready or self._closing or time.monotonic() >= deadline:
                return ready
            async with self._changed:
                try:
                    async with asyncio.timeout(deadline - time.monotonic()):
                        await self._changed.wait()
                except TimeoutError:
                    pass

    def _wanted(self, update: dict[str, Any]) -> bool:
        return any(k in self.allowed_updates for k in update if k != "update_id")

    def _sent(self, chat_id: int, message_id: int, text: str, thread: Any) -> dict[str, Any]:
        msg: dict[str, Any] = {
            "message_id": message_id,
            "date": int(time.time()),
            "chat": self.chats.get(chat_id) or self.chat(chat_id),
            "from": self.bot_user,
            "text": text,
        }
        if thread:
            msg["message_thread_id"] = int(thread)
        return msg

    @staticmethod
    def _checked(args: dict[str, Any]) -> str:
        text = str(args.get("text", ""))
        visible = validate_html(text) if args.get("parse_mode") == "HTML" else text
        if not visible.strip():
            raise ValueError("message text is empty")
        if utf16_len(visible) > 4096:
            raise ValueError("message is too long")
        return visible

    async def _m_sendMessage(self, args: dict[str, Any]) -> Any:
        visible = self._checked(args)
        chat_id, message_id = int(args["chat_id"]), next(self._ids)
        self.texts[(chat_id, message_id)] = str(args["text"])
        return self._sent(chat_id, message_id, visible, args.get("message_thread_id"))

    async def _m_editMessageText(self, args: dict[str, Any]) -> Any:
        visible = self._checked(args)
        key = (int(args["chat_id"]), int(args["message_id"]))
        if key not in self.texts:
            raise ValueError("message to edit not found")
        if self.texts[key] == args["text"]:
            raise ValueError(
                "message is not modified: specified new message content and reply markup are "
                "exactly the same as a current content and reply markup of the message"
            )
        self.texts[key] = str(args["text"])
        return self._sent(key[0], key[1], visible, None)

    async def _m_sendDocument(self, args: dict[str, Any]) -> Any:
        upload = self._upload("sendDocument", args, "document")
        return self._media_message(args, "document", {"file_name": upload.filename})

    async def _m_sendPhoto(self, args: dict[str, Any]) -> Any:
        upload = self._upload("sendPhoto", args, "photo")
        if upload.data[:8] != b"\x89PNG\r\n\x1a\n" and upload.data[:3] != b"\xff\xd8\xff":
            raise ValueError("IMAGE_PROCESS_FAILED")
        if len(upload.data) > 10 * 1024 * 1024:
            raise ValueError("PHOTO_INVALID_DIMENSIONS")
        return self._media_message(args, "photo", {"width": 1, "height": 1}, many=True)

    async def _m_sendVoice(self, args: dict[str, Any]) -> Any:
        upload = self._upload("sendVoice", args, "voice")
        if not upload.data.startswith(b"OggS") or b"OpusHead" not in upload.data[:256]:
            raise ValueError("VOICE_MESSAGES_FORBIDDEN: the voice note must be OGG/Opus")
        return self._media_message(args, "voice", {"duration": 1, "mime_type": "audio/ogg"})

    async def _m_sendAudio(self, args: dict[str, Any]) -> Any:
        upload = self._upload("sendAudio", args, "audio")
        return self._media_message(args, "audio", {"duration": 1, "file_name": upload.filename})

    def _upload(self, method: str, args: dict[str, Any], field_name: str) -> Upload:
        """The file of an upload call: a multipart part named by the field (or ``attach://``)."""
        value = args.get(field_name)
        if isinstance(value, str) and value.startswith("attach://"):
            value = args.get(value.removeprefix("attach://"))
        if not isinstance(value, _Part):
            raise ValueError(f"there is no {field_name} in the request")
        caption = args.get("caption")
        if caption is not None and utf16_len(str(caption)) > 1024:
            raise ValueError("message caption is too long")
        if len(value.data) > 50 * 1024 * 1024:
            raise ValueError("file is too big")
        upload = Upload(
            method, int(args["chat_id"]), value.filename, value.content_type, value.data,
            None if caption is None else str(caption),
        )  # fmt: skip
        self.uploads.append(upload)
        return upload

    def _media_message(
        self, args: dict[str, Any], kind: str, extra: dict[str, Any], *, many: bool = False
    ) -> dict[str, Any]:
        chat_id, message_id = int(args["chat_id"]), next(self._ids)
        msg = self._sent(chat_id, message_id, "", args.get("message_thread_id"))
        del msg["text"]
        media = {
            "file_id": f"SENT{message_id}",
            "file_unique_id": f"USENT{message_id}",
            "file_size": len(self.uploads[-1].data),
            **extra,
        }
        msg[kind] = [media] if many else media
        if args.get("caption"):
            msg["caption"] = str(args["caption"])
        return msg

    async def _m_sendChatAction(self, _args: dict[str, Any]) -> Any:
        return True

    async def _m_setMessageReaction(self, _args: dict[str, Any]) -> Any:
        return True

    async def _m_setMyCommands(self, args: dict[str, Any]) -> Any:
        if len(args["commands"]) > 100:
            raise ValueError("too many commands")
        scope = json.dumps(args.get("scope") or {"type": "default"}, sort_keys=True)
        self.commands[scope] = args["commands"]
        return True


class _Conflict(Exception):
    pass


@dataclass(slots=True)
class _Part:
    filename: str
    content_type: str
    data: bytes = field(repr=False)


async def _file_parts(request: web.Request, args: dict[str, Any]) -> dict[str, _Part]:
    """The file parts of a multipart request (``read_args`` keeps only the text fields)."""
    form = await request.post()  # aiohttp parsed it once already and keeps the result
    return {
        key: _Part(value.filename, value.content_type, value.file.read())
        for key, value in form.items()
        if isinstance(value, web.FileField)
    }
