"""What the terminal channel prints: Rich-rendered Markdown on a TTY, the text as written in a pipe.

Kept apart from the connector so the connector only decides *what* to show (an answer, a
note, a replayed answer) and this module only *how*. On a TTY an answer being streamed is a
Rich ``Live`` region re-rendered as Markdown at each edit, and settled (left on screen as
rendered) before anything else is printed; in a pipe, output is plain text with no escape
codes, so scripts read exactly what the model wrote.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:  # Rich is imported where it draws: a pipe never needs it, a TTY at first use
    from rich.console import Console
    from rich.live import Live
    from rich.markdown import Markdown
    from rich.text import Text

__all__ = ["Screen", "chat_markdown"]

_FENCE = re.compile(r"(^```.*?(?:^```[^\n]*$|\Z))", re.M | re.S)
_CODE_SPAN = re.compile(r"(`+[^`]*`+)")


def chat_markdown(text: str) -> str:
    """Markdown as chat apps show it: a single newline is a line break, ``<x>`` is text.

    CommonMark joins lines of a paragraph and drops inline HTML; a chat answer means its
    line breaks, and ``<name>`` in "/plugin enable <name>" is a placeholder, not a tag.
    Code (fenced blocks, inline spans) is left exactly as written.
    """
    out: list[str] = []
    for i, block in enumerate(_FENCE.split(text)):
        if i % 2:  # a fenced code block
            out.append(block)
            continue
        block = re.sub(r"(?<=\S)\n(?=[^\n])", "  \n", block)
        for j, piece in enumerate(_CODE_SPAN.split(block)):
            out.append(piece if j % 2 else piece.replace("<", "\\<"))
    return "".join(out)


class Screen:
    """One output stream; ``pretty`` selects Rich Markdown, ``streaming`` live answers."""

    def __init__(self, out: TextIO, *, pretty: bool, streaming: bool) -> None:
        self.out = out
        self.pretty = pretty
        self.streaming = streaming
        self._console: Console | None = None
        if pretty:
            from rich.console import Console

            self._console = Console(file=out, force_terminal=True, highlight=False, soft_wrap=False)
        self._live: Live | None = None
        self._live_id: str | None = None
        self._shown: dict[str, str] = {}
        self._line_open = False  # plain streaming left the cursor after some text
        self._tail: str | None = None  # the answer whose text was printed last (plain)
        self._plain: set[str] = set()  # answers shown as plain text (commands')

    def raw(self, text: str) -> None:
        """Write ``text`` as is (prompts, the banner), after settling any live answer."""
        self.settle()
        self._write(text)
        self._line_open = not text.endswith("\n")
        self._tail = None

    def line(self, text: str, *, note: bool = False) -> None:
        """``text`` on a line of its own, whatever was printed before it."""
        self.settle()
        self.fresh_line()
        if self._console is not None:
            from rich.text import Text

            self._console.print(Text(text, style="dim" if note else ""))
        else:
            self._write(text + "\n")
        self._line_open = False
        self._tail = None

    def fresh_line(self) -> None:
        """Move to the start of a new line unless already there."""
        if self._line_open:
            self._write("\n")
            self._line_open = False

    def answer(self, message_id: str, text: str, *, markdown: bool = True) -> None:
        """Show a new answer (the first version of a streamed one).

        ``markdown`` false: a command's answer, lines of plain text, printed as they are.
        """
        self.settle()
        self.fresh_line()
        self._shown[message_id] = text
        self._tail = message_id
        if not markdown:
            self._plain.add(message_id)
        if self._console is not None and self.streaming:
            from rich.live import Live

            self._live = Live(
                self._render(message_id, text),
                console=self._console,
                auto_refresh=False,
                redirect_stdout=False,
                redirect_stderr=False,
                # taller than the screen: cut while streaming (lines scrolled off could not
                # be redrawn), shown whole when settled (Live.stop renders it "visible")
                vertical_overflow="ellipsis",
            )
            self._live_id = message_id
            self._live.start(refresh=True)
        elif self._console is not None:
            self._console.print(self._render(message_id, text))
        elif self.streaming:
            self._write(text)
            self._line_open = not text.endswith("\n")
        else:
            self._write(text + "\n")

    def update(self, message_id: str, text: str) -> None:
        """A newer version of an answer: re-rendered live, or the added text appended."""
        shown = self._shown.get(message_id, "")
        self._shown[message_id] = text
        if self._live is not None and message_id == self._live_id:
            self._live.update(self._render(message_id, text), refresh=True)
        elif self._console is None and self._tail == message_id and text.startswith(shown):
            self._write(text[len(shown) :])
            self._line_open = not text.endswith("\n")
        else:  # an older answer changed after something else was printed: show it again
            self.answer(message_id, text, markdown=message_id not in self._plain)

    def settle(self) -> None:
        """Leave the live answer on screen as last rendered; later output goes below it."""
        if self._live is not None:
            self._live.stop()
            self._live = None
            self._live_id = None

    def _render(self, message_id: str, text: str) -> Markdown | Text:
        from rich.markdown import Markdown
        from rich.text import Text

        if message_id in self._plain:
            return Text(text)
        return Markdown(chat_markdown(text), hyperlinks=False)

    def _write(self, text: str) -> None:
        self.out.write(text)
        self.out.flush()
