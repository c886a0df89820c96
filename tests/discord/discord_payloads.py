"""Discord gateway/REST payloads shaped as Discord sends them (API v10), for the fake."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

BOT_ID = "1100000000000000001"
APP_ID = "1100000000000000002"
OWNER_ID = "1100000000000000003"
USER_ID = "1100000000000000004"
OTHER_BOT_ID = "1100000000000000005"
GUILD_ID = "1100000000000000010"
CHANNEL_ID = "1100000000000000011"
THREAD_ID = "1100000000000000012"
DM_CHANNEL_ID = "1100000000000000013"


def _now() -> str:
    return datetime.now(UTC).isoformat()


def user(user_id: str, name: str, *, bot: bool = False) -> dict[str, Any]:
    """A user object."""
    return {
        "id": user_id,
        "username": name,
        "discriminator": "0",
        "global_name": name.title(),
        "avatar": None,
        "bot": bot,
    }


def bot_user() -> dict[str, Any]:
    """The bot's own user (``GET /users/@me`` and READY)."""
    return user(BOT_ID, "opencomputer", bot=True)


def human_user(user_id: str = USER_ID, name: str = "alice") -> dict[str, Any]:
    """A person talking to the bot."""
    return user(user_id, name)


def application() -> dict[str, Any]:
    """``GET /oauth2/applications/@me``."""
    return {
        "id": APP_ID,
        "name": "opencomputer",
        "description": "",
        "icon": None,
        "bot_public": True,
        "bot_require_code_grant": False,
        "owner": user(OWNER_ID, "owner"),
        "verify_key": "00" * 32,
        "flags": 0,
        "team": None,
    }


def member(user_obj: dict[str, Any], roles: list[str] | None = None) -> dict[str, Any]:
    """A guild member wrapping ``user_obj``."""
    return {
        "user": user_obj,
        "roles": roles or [],
        "joined_at": _now(),
        "deaf": False,
        "mute": False,
        "flags": 0,
        "nick": None,
        "pending": False,
    }


def text_channel(channel_id: str, guild_id: str) -> dict[str, Any]:
    """A guild text channel."""
    return {
        "id": channel_id,
        "type": 0,
        "guild_id": guild_id,
        "name": f"chan-{channel_id[-2:]}",
        "position": 0,
        "permission_overwrites": [],
        "nsfw": False,
        "parent_id": None,
    }


def thread_channel(thread_id: str, parent_id: str, guild_id: str) -> dict[str, Any]:
    """A public thread under ``parent_id``."""
    return {
        "id": thread_id,
        "type": 11,
        "guild_id": guild_id,
        "parent_id": parent_id,
        "name": f"thread-{thread_id[-2:]}",
        "owner_id": USER_ID,
        "message_count": 1,
        "member_count": 2,
        "rate_limit_per_user": 0,
        "thread_metadata": {
            "archived": False,
            "auto_archive_duration": 1440,
            "archive_timestamp": _now(),
            "locked": False,
        },
    }


def guild(guild_id: str, channels: list[str], threads: dict[str, str]) -> dict[str, Any]:
    """GUILD_CREATE: the guild, its channels, active threads and the bot's member."""
    return {
        "id": guild_id,
        "name": "Test Guild",
        "owner_id": OWNER_ID,
        "unavailable": False,
        "member_count": 2,
        "large": False,
        "roles": [
            {
                "id": guild_id,
                "name": "@everyone",
                "permissions": "1071698660929",
                "position": 0,
                "color": 0,
                "hoist": False,
                "managed": False,
                "mentionable": False,
                "flags": 0,
            }
        ],
        "emojis": [],
        "stickers": [],
        "features": [],
        "channels": [text_channel(c, guild_id) for c in channels],
        "threads": [thread_channel(t, parent, guild_id) for t, parent in threads.items()],
        "members": [member(bot_user())],
        "voice_states": [],
        "presences": [],
        "stage_instances": [],
        "guild_scheduled_events": [],
        "joined_at": _now(),
    }


def message(
    *,
    message_id: str,
    channel_id: str,
    content: str,
    author: dict[str, Any],
    guild_id: str | None = None,
    mentions: list[dict[str, Any]] | None = None,
    referenced: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A message object (MESSAGE_CREATE payload / REST answer)."""
    msg: dict[str, Any] = {
        "id": message_id,
        "channel_id": channel_id,
        "author": author,
        "content": content,
        "timestamp": _now(),
        "edited_timestamp": None,
        "tts": False,
        "mention_everyone": False,
        "mentions": mentions or [],
        "mention_roles": [],
        "attachments": [],
        "embeds": [],
        "pinned": False,
        "type": 0,
        "flags": 0,
    }
    if guild_id is not None:
        msg["guild_id"] = guild_id
        msg["member"] = {k: v for k, v in member(author).items() if k != "user"}
    if referenced is not None:
        msg["type"] = 19
        msg["referenced_message"] = referenced
        msg["message_reference"] = {
            "type": 0,
            "message_id": referenced["id"],
            "channel_id": referenced["channel_id"],
            **({"guild_id": guild_id} if guild_id else {}),
        }
    return msg


def reaction(
    *,
    message_id: str,
    channel_id: str,
    emoji: str,
    user_id: str = USER_ID,
    guild_id: str | None = None,
    message_author_id: str | None = BOT_ID,
) -> dict[str, Any]:
    """MESSAGE_REACTION_ADD / _REMOVE payload for a Unicode emoji."""
    data: dict[str, Any] = {
        "user_id": user_id,
        "channel_id": channel_id,
        "message_id": message_id,
        "emoji": {"id": None, "name": emoji},
        "type": 0,
        "burst": False,
    }
    if guild_id is not None:
        data["guild_id"] = guild_id
        data["member"] = member(human_user(user_id))
    if message_author_id is not None:
        data["message_author_id"] = message_author_id
    return data


def interaction(
    *,
    interaction_id: str,
    token: str,
    command: dict[str, Any],
    channel_id: str,
    guild_id: str | None,
    user: dict[str, Any],
    args: str | None,
    admin: bool,
) -> dict[str, Any]:
    """INTERACTION_CREATE for an application (slash) command."""
    data: dict[str, Any] = {
        "id": command["id"],
        "name": command["name"],
        "type": 1,
        "options": [] if args is None else [{"name": "args", "type": 3, "value": args}],
    }
    if "guild_id" in command:
        data["guild_id"] = command["guild_id"]
    payload: dict[str, Any] = {
        "id": interaction_id,
        "application_id": APP_ID,
        "type": 2,
        "data": data,
        "channel_id": channel_id,
        "token": token,
        "version": 1,
        "locale": "en-US",
        "app_permissions": "1071698660929",
        "entitlements": [],
        "authorizing_integration_owners": {"0": guild_id or USER_ID},
        "attachment_size_limit": 8_388_608,
    }
    if guild_id is not None:
        payload["guild_id"] = guild_id
        payload["context"] = 0
        payload["channel"] = text_channel(channel_id, guild_id)
        payload["member"] = {
            **member(user),
            "permissions": "8" if admin else "1024",
        }
    else:
        payload["context"] = 1
        payload["channel"] = {"id": channel_id, "type": 1}
        payload["user"] = user
    return payload
