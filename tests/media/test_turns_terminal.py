"""Voice notes, photos, PDFs and a tool's file end to end in the terminal (``opencomputer chat``).

The whole App runs with the terminal channel reading a scripted session: ``/file PATH [text]``
sends a local file; the fake Ollama records what the model was sent, the fake speech server
decodes the audio as a real one would, and files out land under ``<data dir>/files`` with their
paths printed after the answer.
"""

from __future__ import annotations

import asyncio
import io
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from opencomputer.bot.app import App
from opencomputer.bot.config import Settings
from opencomputer.bot.testing import FakeOllama
from opencomputer.bot.tools import Tool
from opencomputer.connectors.terminal import TerminalConnector, create
from tests.media.turn_kit import (
    HEARD,
    PLOT_CAPTION,
    QUESTION,
    SANDBOX,
    TRANSCRIPT,
    assert_heard,
    assert_plot,
    assert_read_pdf,
    assert_saw_photo,
    invoice_pdf,
    phone_photo,
    post_note_tool,
    script_pdf_turn,
    script_plot_turn,
    speech_server,
    voice_note,
)


async def _chat(
    make_settings: Callable[..., Settings],
    script: str,
    *tools: Tool,
    **settings: Any,
) -> list[str]:
    """Run one terminal session of ``script`` (lines typed) through the whole App; the lines
    it printed."""
    app = App(make_settings(OC_PLUGIN_SANDBOX=SANDBOX, **settings))
    out = io.StringIO()
    holder: list[TerminalConnector] = []

    def factory(s: Settings, _runtime: object) -> list[TerminalConnector]:
        folder = create(s, app.runtime.emit, wait_idle=app.runtime.wait_idle).files_dir
        holder.append(
            TerminalConnector(
                app.runtime.emit, wait_idle=app.runtime.wait_idle, stdin=io.StringIO(script),
                stdout=out, interactive=False, user="me", files_dir=folder,
            )
        )  # fmt: skip
        return holder

    await app.start(factory, http=False)  # type: ignore[arg-type]
    try:
        for tool in tools:
            app.tools.add(tool)
        await holder[0].run()
        await app.runtime.wait_idle()
    finally:
        await app.stop()
    return out.getvalue().splitlines()


async def test_voice_note_is_answered_from_its_transcript(
    make_settings: Callable[..., Settings], fake_ollama: FakeOllama, tmp_path: Path
) -> None:
    (tmp_path / "memo.ogg").write_bytes(voice_note())
    async with speech_server() as speech:
        shown = await _chat(make_settings, f"/file {tmp_path}/memo.ogg\n", OC_STT_URL=speech.url)
    assert shown == [HEARD, f"echo: {TRANSCRIPT}"]
    assert_heard(speech, fake_ollama)


async def test_photo_reaches_a_vision_model(
    make_settings: Callable[..., Settings], fake_ollama: FakeOllama, tmp_path: Path
) -> None:
    fake_ollama.capabilities.append("vision")
    (tmp_path / "IMG 0001.jpg").write_bytes(phone_photo())
    await _chat(make_settings, f'/file "{tmp_path}/IMG 0001.jpg" what is this?\n')
    assert_saw_photo(fake_ollama, "what is this?")


async def test_pdf_text_reaches_the_model_and_taints_the_turn(
    make_settings: Callable[..., Settings], fake_ollama: FakeOllama, tmp_path: Path
) -> None:
    posted: list[str] = []
    script_pdf_turn(fake_ollama)
    (tmp_path / "invoice.pdf").write_bytes(invoice_pdf())
    shown = await _chat(
        make_settings, f"/file {tmp_path}/invoice.pdf summarise this\n", post_note_tool(posted)
    )
    assert_read_pdf(fake_ollama, "summarise this")
    question = "\n".join(shown)
    assert QUESTION in question and 'the attached file "invoice.pdf"' in question
    assert posted == []  # it waits for the owner


async def test_a_matplotlib_plot_the_code_tool_made_lands_in_the_data_dir_with_its_caption(
    make_settings: Callable[..., Settings], fake_ollama: FakeOllama, tmp_path: Path
) -> None:
    script_plot_turn(fake_ollama)
    shown = await _chat(make_settings, "plot my visits\n")
    assert shown[0] == "Here is your chart."
    [(caption, path)] = [line.rsplit(" ", 1) for line in shown[1:]]
    assert caption == f"📎 {PLOT_CAPTION}"
    written = Path(path)
    assert written.parent == tmp_path / "data" / "files" and written.name.endswith("-plot.png")
    assert_plot(await asyncio.to_thread(written.read_bytes))


def _zip_bomb_docx() -> bytes:
    """A Word file whose text part unpacks to 64 MB of zeros (about 64 KB packed)."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        with archive.open("word/document.xml", "w", force_zip64=True) as part:
            zeros = b"\0" * 2**20
            for _ in range(64):
                part.write(zeros)
    return out.getvalue()


async def test_a_zip_bomb_is_one_line_and_the_bot_answers_on(
    make_settings: Callable[..., Settings], fake_ollama: FakeOllama, tmp_path: Path
) -> None:
    (tmp_path / "notes.docx").write_bytes(_zip_bomb_docx())
    shown = await _chat(make_settings, f"/file {tmp_path}/notes.docx\nstill there?\n")
    assert shown == [
        'I could not read your message: "notes.docx" could not be read: the DOCX file unpacks '
        "to 64 MB in 2 parts, over the 50 MB limit (a zip bomb?). Your message is saved: send "
        "/retry to try again.",
        "echo: still there?",
    ]
    assert len(fake_ollama.chats) == 1
