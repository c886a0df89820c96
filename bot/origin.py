"""Where something was said: a direct chat, or one group chat (the privacy scope of memories).

What a person said in a direct chat is recalled only in direct chats, never into a group; what
they said in a group may come back in that same group and in their direct chats (see
``bot.memory.store``; ``plugins/notes`` scopes notes the same way). It lives in the core so that
the agent graph (``graphs.agent.recall``) can say where a turn speaks without importing the
memory feature.
"""

from __future__ import annotations

from dataclasses import dataclass

from opencomputer.bot.events import Address

__all__ = ["Origin"]


@dataclass(frozen=True, slots=True)
class Origin:
    """Where a memory was learned, or where the turn that recalls memories speaks.

    ``kind`` is ``"direct"`` (one person and the bot) or ``"group"``; any other value counts
    as a group, the stricter reading. ``chat`` is ``platform:chat_id`` (threads of one group
    chat are one place).
    """

    kind: str = "direct"
    chat: str = ""

    @property
    def private(self) -> bool:
        """A direct chat: everything of the person may be recalled here."""
        return self.kind == "direct"

    @classmethod
    def of(cls, address: Address | None, kind: str) -> Origin:
        """The origin of a chat message at ``address`` in a chat of ``kind``."""
        chat = f"{address.platform}:{address.chat_id}" if address is not None else ""
        return cls("direct" if kind == "direct" else "group", chat)
