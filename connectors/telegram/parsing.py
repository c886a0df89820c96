"""Raw Bot API updates to python-telegram-bot objects, one update at a time.

``Bot.get_updates`` parses a whole batch with ``Update.de_list``: one update the library cannot
parse (a wrong type, a missing field) fails the batch, the offset never moves and every chat's
input stops, retried forever. :class:`UpdatesRequest` is the ``getUpdates`` transport (a
subclass of the library's own ``HTTPXRequest``, its documented seam): it cleans the strings of
every update (lone surrogates, see ``bot.text``) and parses each on its own; an update that
does not parse is set aside in ``poisoned`` (raw payload and reason) and replaced by its bare
``update_id``, so the library's batch parse succeeds and the connector moves the offset past
it after quarantining it.
"""

from __future__ import annotations

import copy
from typing import Any

from telegram import Bot, Update
from telegram.request import HTTPXRequest

from opencomputer.bot.quarantine import PoisonEvent
from opencomputer.bot.text import clean_payload

__all__ = ["UpdatesRequest", "parse_update"]


def parse_update(data: Any, bot: Bot | None) -> Update:
    """Parse one raw update (strings cleaned first); raise :class:`PoisonEvent` if it cannot be."""
    if not isinstance(data, dict):
        raise PoisonEvent(f"an update must be a JSON object, not {type(data).__name__}")
    uid = data.get("update_id")
    if not isinstance(uid, int) or isinstance(uid, bool):
        raise PoisonEvent("the update has no integer update_id")
    try:
        # de_json may take the dict apart: give it a copy so the raw payload stays whole.
        update = Update.de_json(copy.deepcopy(clean_payload(data)), bot)
    except Exception as exc:
        reason = f"python-telegram-bot cannot parse it: {type(exc).__name__}: {exc}"
        raise PoisonEvent(reason) from exc
    if not isinstance(update, Update):
        raise PoisonEvent("python-telegram-bot returned no update")
    return update


class UpdatesRequest(HTTPXRequest):
    """The ``getUpdates`` transport: screens each update so one bad one cannot stop the batch."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.bot: Bot | None = None
        self.poisoned: dict[int | str, tuple[Any, str]] = {}
        self._anonymous = 0

    async def post(self, *args: Any, **kwargs: Any) -> Any:
        """Fetch as usual, then return the batch with unparseable updates reduced to their id."""
        result = await super().post(*args, **kwargs)
        if isinstance(result, list):
            return [self._screen(item) for item in result if self._has_id(item)]
        return result

    def _has_id(self, item: Any) -> bool:
        uid = item.get("update_id") if isinstance(item, dict) else None
        if isinstance(uid, int) and not isinstance(uid, bool):
            return True
        # No id to confirm it by: it cannot be handed back in the batch. Kept for the admin;
        # the offset moves past it with the next well-formed update.
        self._anonymous += 1
        self.poisoned[f"no-id-{self._anonymous}"] = (item, "the update has no integer update_id")
        return False

    def _screen(self, item: dict[str, Any]) -> dict[str, Any]:
        try:
            parse_update(item, self.bot)
        except PoisonEvent as exc:
            self.poisoned[item["update_id"]] = (item, str(exc))
            return {"update_id": item["update_id"]}
        cleaned: dict[str, Any] = clean_payload(item)
        return cleaned
