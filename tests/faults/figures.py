"""What the crash suite measures, read from the platform's final state alone.

For every user message: is there a bot message whose final text is its complete answer (else
it is *lost*); how many bot messages carry its answer, complete or cut (more than one: *answered
twice*); in each chat, do the answers come in the order of the messages (each descent is one
*out of order* pair); and which bot messages were left showing a truncated answer (*partial*).
A short text that carries no answer (the placeholder a reply's first post may be) is a *stray
placeholder*: counted and printed, but not a failure.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from tests.faults.crash_model import TAG, answer_for
from tests.faults.crash_platform import BotMessage

__all__ = ["Figures", "measure"]

_PLACEHOLDER_MAX = 8  # characters: "…", "...", "⏳", "typing…"


@dataclass(slots=True)
class Figures:
    """The counts, plus examples of each failure for the report."""

    messages: int = 0
    lost: int = 0
    twice: int = 0
    complete_twice: int = 0
    """Of ``twice``: messages whose *complete* answer stands in more than one bot message."""
    out_of_order: int = 0
    partial: int = 0
    placeholders: int = 0
    other: int = 0
    """Bot messages that are none of the above (an apology, two answers in one...)."""
    rewritten: int = 0
    """Bot messages that showed one message's answer and later another's."""
    examples: dict[str, list[str]] = field(default_factory=dict)

    @property
    def failures(self) -> int:
        """The four counts the design promises to be zero."""
        return self.lost + self.twice + self.out_of_order + self.partial

    def note(self, kind: str, example: str) -> None:
        """Keep the first few examples of one kind."""
        kept = self.examples.setdefault(kind, [])
        if len(kept) < 5:
            kept.append(example)

    def line(self) -> str:
        """One line for the closing note."""
        return (
            f"messages={self.messages} lost={self.lost} twice={self.twice} "
            f"(complete_twice={self.complete_twice}) "
            f"out_of_order={self.out_of_order} partial={self.partial} "
            f"stray_placeholders={self.placeholders} other={self.other} "
            f"rewritten={self.rewritten}"
        )


def _tags(text: str) -> list[str]:
    return list(dict.fromkeys(TAG.findall(text)))


def measure(sent: Mapping[int, list[str]], messages: Mapping[int, Iterable[BotMessage]]) -> Figures:
    """Figures for user messages ``sent`` (per chat, in order) given the bot's messages."""
    fig = Figures(messages=sum(len(tags) for tags in sent.values()))
    for chat, tags in sent.items():
        answers = {tag: answer_for(tag) for tag in tags}
        carriers: Counter[str] = Counter()
        complete: Counter[str] = Counter()
        position: dict[str, int] = {}
        for pos, msg in enumerate(messages.get(chat, ())):
            text = msg.text.strip()
            if len({t for shown in msg.history for t in _tags(shown)}) > 1:
                fig.rewritten += 1
                fig.note("rewritten", f"chat {chat} msg {msg.message_id}: {msg.history}")
            found = _tags(text)
            for tag in found:
                carriers[tag] += 1
            if len(found) == 1 and text == answers.get(found[0]):
                position.setdefault(found[0], pos)
                complete[found[0]] += 1
            elif any(a.startswith(text) for a in answers.values()) and text:
                fig.partial += 1
                fig.note("partial", f"chat {chat} msg {msg.message_id}: {text!r}")
            elif not found and len(text) <= _PLACEHOLDER_MAX:
                fig.placeholders += 1
            else:
                fig.other += 1
                fig.note("other", f"chat {chat} msg {msg.message_id}: {text!r}")
        last = -1
        for tag in tags:
            if carriers[tag] > 1:
                fig.twice += 1
                fig.note("twice", f"chat {chat} {tag}: {carriers[tag]} bot messages")
            fig.complete_twice += complete[tag] > 1
            if tag not in position:
                fig.lost += 1
                fig.note("lost", f"chat {chat} {tag}")
                continue
            if position[tag] < last:
                fig.out_of_order += 1
                fig.note("out_of_order", f"chat {chat} {tag} answered before an earlier message")
            last = max(last, position[tag])
    return fig
