"""Files made during a turn reach the chat after its answer (the ``files`` feature).

A turn layer at stage ``observe`` collects what tools hand over (:func:`bot.outfiles.collecting`)
while the agent runs; the ``oc_reply_sent`` observer sends those files once the runtime has
recorded the answer and shown it, each with its caption, through the connector's native upload
(:func:`bot.outfiles.send_file`). So a file never comes before the text that explains it, and
the exactly-once protocol of the text reply (``bot/runtime.py``) is untouched.

Delivery is **at most once**: the files live in this process's memory between the turn and
``oc_reply_sent``. If the process dies after the answer was recorded and before the upload,
the recovered answer is delivered without its files (the user can ask again); a turn that
fails (apology) sends none. A file is never sent twice for one answer: the observer pops it.
A scale-out worker has no connectors: its files are reported as not sendable there (one line).
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from opencomputer.bot.hooks import TurnCall, TurnLayer, TurnNext, hookimpl
from opencomputer.bot.outfiles import OutFile, collecting, send_file

if TYPE_CHECKING:
    from opencomputer.bot.features import Host as App

__all__ = ["FileDelivery", "setup"]

logger = logging.getLogger(__name__)

_KEPT = 1000
"""Turns whose files wait for their answer at most (a turn whose reply was never recorded,
say after a storage error, must not hold its files for ever)."""


class FileDelivery:
    """Collects a turn's files and sends them after its answer."""

    def __init__(self, app: App) -> None:
        self.app = app
        self.waiting: OrderedDict[tuple[str, str], list[OutFile]] = OrderedDict()
        """(conversation, message event id) -> files waiting for the answer to that message."""

    @hookimpl
    def oc_turn_layers(self) -> Sequence[tuple[str, TurnLayer]]:
        """Collect files around the whole turn (stage ``observe``, outermost)."""
        return [("observe", self.layer)]

    async def layer(self, call: TurnCall, call_next: TurnNext) -> Any:
        """Run the turn with a collection open; keep what it gathered for ``oc_reply_sent``."""
        key = (call.message.address.key, call.message.event_id)
        with collecting() as files:
            outcome = await call_next(call)
        if files:
            self.waiting[key] = list(files)
            self.waiting.move_to_end(key)
            while len(self.waiting) > _KEPT:
                self.waiting.popitem(last=False)
        return outcome

    @hookimpl
    async def oc_reply_sent(self, record: Any) -> None:
        """The answer is out: send its files, in the order the tools made them."""
        files = self.waiting.pop((record.address.key, record.message.event_id), None)
        if not files:
            return
        if record.meta.failure:  # an apology went out: files of a failed turn are dropped
            logger.info("%d file(s) of a failed turn in %s dropped", len(files), record.address.key)
            return
        runtime = self.app.runtime
        reply_to = record.message.message_id or None
        for file in files:
            await send_file(
                runtime.connectors, runtime.say, record.address, file, reply_to=reply_to
            )


async def setup(app: App) -> None:
    """Register the collecting layer and the sender."""
    app.hooks.register(FileDelivery(app), "files")
