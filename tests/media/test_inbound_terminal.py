"""Terminal media in: ``/file PATH [text]`` sends a local file; a missing path is one line."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from opencomputer.bot.attachments import AttachmentError, AttachmentTooLarge, fetch
from opencomputer.bot.events import Address, AttachmentKind, Command, Message, Reaction
from opencomputer.connectors.terminal import TerminalConnector
from tests.media.samples import EXE, OGG_OPUS, PDF, PNG, big

MB = 1024 * 1024


async def _run(lines: str) -> tuple[list[Message | Command | Reaction], str, TerminalConnector]:
    events: list[Message | Command | Reaction] = []

    async def emit(event: Message | Command | Reaction) -> None:
        events.append(event)

    async def idle(_address: Address) -> None:
        return None

    out = io.StringIO()
    term = TerminalConnector(
        emit, wait_idle=idle, stdin=io.StringIO(lines), stdout=out, interactive=False, user="me"
    )
    await term.start()
    await term.run()
    return events, out.getvalue(), term


async def test_file_command_attaches_local_files(tmp_path: Path) -> None:
    (tmp_path / "voice.ogg").write_bytes(OGG_OPUS)
    (tmp_path / "my photo.png").write_bytes(PNG)
    (tmp_path / "report.pdf").write_bytes(PDF)
    events, out, term = await _run(
        f"/file {tmp_path}/voice.ogg\n"
        f'/file "{tmp_path}/my photo.png" what is in it?\n'
        f"/file {tmp_path}/report.pdf\n"
    )
    assert out == ""
    said, shown, filed = events
    assert isinstance(said, Message) and isinstance(shown, Message) and isinstance(filed, Message)
    assert (said.text, shown.text, filed.text) == ("", "what is in it?", "")
    assert [e.attachments[0].kind for e in (said, shown, filed)] == [
        AttachmentKind.AUDIO,
        AttachmentKind.IMAGE,
        AttachmentKind.DOCUMENT,
    ]
    assert shown.attachments[0].name == "my photo.png"
    for event, data, mime in ((said, OGG_OPUS, "audio/ogg"), (shown, PNG, "image/png"),
                              (filed, PDF, "application/pdf")):  # fmt: skip
        got = await fetch(term, event.attachments[0], 20 * MB)
        assert got.data == data and got.attachment.mime == mime


async def test_mistakes_get_one_line_and_send_nothing(tmp_path: Path) -> None:
    events, out, _ = await _run(f"/file\n/file {tmp_path}/nope.pdf\n/file {tmp_path}\n/file 'x\n")
    assert events == []
    assert out.splitlines() == [
        "Usage: /file PATH [text] (quote a path with spaces).",
        f"No such file: {tmp_path}/nope.pdf",
        f"Not a file: {tmp_path} (send one file at a time).",
        "Cannot read that: No closing quotation. Usage: /file PATH [text]",
    ]


async def test_cap_program_sniffing_and_a_file_gone_before_fetching(tmp_path: Path) -> None:
    (tmp_path / "small.pdf").write_bytes(PDF)
    (tmp_path / "invoice.pdf").write_bytes(EXE)
    (tmp_path / "gone.pdf").write_bytes(PDF)
    events, _, term = await _run(
        f"/file {tmp_path}/small.pdf\n/file {tmp_path}/invoice.pdf\n/file {tmp_path}/gone.pdf\n"
    )
    small, program, gone = (e.attachments[0] for e in events if isinstance(e, Message))
    (tmp_path / "small.pdf").write_bytes(big(2 * MB))  # grew after it was sent
    with pytest.raises(AttachmentTooLarge):
        await fetch(term, small, 1 * MB)
    got = await fetch(term, program, 1 * MB)
    assert (got.attachment.mime, got.attachment.kind) == (
        "application/x-msdownload",
        AttachmentKind.OTHER,
    )
    (tmp_path / "gone.pdf").unlink()
    with pytest.raises(AttachmentError, match=r"^cannot read gone\.pdf: No such file"):
        await fetch(term, gone, 1 * MB)
