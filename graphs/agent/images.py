"""Images in a turn: sent to the model with this turn's message, never written to a checkpoint.

A photo is hundreds of kilobytes of base64; kept in the thread's history it would be written
to the checkpoint at every turn and re-sent to the model for the rest of the conversation. So
the stored user message carries one ``[image]`` placeholder per image (later turns still know
that a picture was shown), and :class:`~graphs.agent.nodes.ModelNode` puts the images
themselves (``TurnContext.images``, base64 of :func:`bot.media.images.prepare_image`'s output)
on that message in the request only, in Ollama's shape (``"images": [base64, ...]``;
:mod:`bot.openai_compat` turns them into content parts). A model without vision gets a note in
their place, so it can say it cannot see the picture instead of inventing one.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

__all__ = ["IMAGE_PLACEHOLDER", "VisionCache", "attach_images", "no_vision_note", "stored_text"]

logger = logging.getLogger(__name__)

IMAGE_PLACEHOLDER = "[image]"


def stored_text(text: str, images: int) -> str:
    """The user message as checkpointed: the text, then one placeholder per image."""
    if not images:
        return text
    marks = " ".join([IMAGE_PLACEHOLDER] * images)
    return f"{text}\n{marks}" if text else marks


def no_vision_note(model: str, images: int) -> str:
    """What a model without vision reads where the images would be."""
    what = "an image" if images == 1 else f"{images} images"
    return (
        f"[The user sent {what}, but the model {model} cannot see images, so it is not "
        "included. If the image matters, tell the user to switch to a vision model.]"
    )


def attach_images(
    messages: Sequence[dict[str, Any]], images: Sequence[str], *, vision: bool, model: str
) -> list[dict[str, Any]]:
    """``messages`` with the images on the newest user message (a copy; the state is untouched).

    Without ``vision`` the images are replaced by :func:`no_vision_note` on that message.
    """
    out = list(messages)
    if not images:
        return out
    for index in range(len(out) - 1, -1, -1):
        if out[index].get("role") == "user":
            message = dict(out[index])
            if vision:
                message["images"] = list(images)
            else:
                content = str(message.get("content") or "")
                note = no_vision_note(model, len(images))
                message["content"] = f"{content}\n{note}" if content else note
            out[index] = message
            break
    return out


class VisionCache:
    """Whether a model sees images, asked of the model client once per model.

    Clients with ``supports_vision`` (:class:`~bot.ollama.OllamaClient`,
    :class:`~bot.openai_compat.OpenAIClient`) answer from their own cache; any other
    :class:`~bot.ollama.ModelClient` (a pool) is asked ``show`` and read with
    :func:`opencomputer.bot.ollama.has_vision`. A failed lookup answers no and is not remembered.
    """

    def __init__(self) -> None:
        self._known: dict[str, bool] = {}

    async def supports(self, llm: Any, model: str) -> bool:
        """Whether ``model`` on ``llm`` takes images."""
        if model in self._known:
            return self._known[model]
        from opencomputer.bot.ollama import OllamaError, has_vision

        ask = getattr(llm, "supports_vision", None)
        try:
            vision = (
                bool(await ask(model)) if ask is not None else has_vision(await llm.show(model))
            )
        except OllamaError as exc:
            logger.warning("cannot tell whether %s sees images (%s); sending a note", model, exc)
            return False
        self._known[model] = vision
        return vision
