"""Decode untrusted attachments in the plugin sandbox: no network, bounded CPU, memory and time.

Pillow, pypdf, python-docx and FFmpeg parse bytes from anyone who can message the bot; a bug in
one of them (FFmpeg has had many) should cost a sandboxed process, not the server. The decoders
in :mod:`opencomputer.bot.media.decoders` run through the same runner as plugin calls
(:class:`~bot.plugins.sandbox.Sandbox`: bubblewrap, seccomp, rlimits, wall-clock timeout), with
a private temporary folder as the only writable place; the bytes travel as files in it. With
``OC_PLUGIN_SANDBOX=off`` the same worker runs unconfined but still under its rlimits.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from pathlib import Path
from typing import Any

from opencomputer.bot.media.documents import DocumentText
from opencomputer.bot.media.limits import MediaError
from opencomputer.bot.plugins.sandbox import CallLimits, Sandbox, SandboxError, SandboxPolicy

__all__ = ["MEDIA_LIMITS", "decode_in_sandbox"]

MEDIA_LIMITS = CallLimits(timeout=60.0, memory_mb=1024, cpu_seconds=60, processes=32)
"""Room for a 40-megapixel photo or a 10-minute voice note, and no more."""

_CODE = Path(__file__).resolve().parents[1] / "media"


async def decode_in_sandbox(
    fn_name: str,
    data: bytes,
    *,
    sandbox: Sandbox,
    limits: CallLimits = MEDIA_LIMITS,
    **params: Any,
) -> Any:
    """Run one decoder of :data:`bot.media.decoders.DECODERS` on ``data`` in the sandbox.

    ``prepare_image`` returns ``(bytes, mime)``, ``extract_text`` a
    :class:`~bot.media.documents.DocumentText`, ``to_wav`` and ``to_ogg_opus`` bytes; ``params``
    are the decoder's keyword arguments (``max_side``, ``mime``, ``max_pages``...). Raises
    :class:`~bot.media.limits.MediaError` with one line: the decoder's refusal, or a limit the
    process hit.
    """
    folder = Path(await asyncio.to_thread(tempfile.mkdtemp, prefix="oc-decode-"))
    try:
        source, target = folder / "input", folder / "output"
        await asyncio.to_thread(source.write_bytes, data)
        request = {
            "kind": "hook",
            "plugin": "media-decoder",
            "package": "opencomputer.bot.media",
            "module": "decoders",
            "target": "decode",
            "event": {"fn": fn_name, "input": str(source), "output": str(target), "params": params},
            "data_dir": str(folder),
            "network": [],
            "process": False,
            "settings": {},
        }
        policy = SandboxPolicy(plugin="media-decoder", code_dir=_CODE, data_dir=folder)
        try:
            answer = await sandbox.run(request, policy, limits)
        except SandboxError as exc:
            raise MediaError(f"the file could not be decoded: {exc}") from None
        if not answer.get("ok"):  # the decoder raised past its own checks
            raise MediaError(_failure(str(answer.get("error") or ""), limits))
        result = answer.get("result")
        if not isinstance(result, dict):
            raise MediaError("the file could not be decoded (the decoder gave no answer)")
        if result.get("error"):
            raise MediaError(str(result["error"]))
        output = await asyncio.to_thread(target.read_bytes)
    finally:
        await asyncio.to_thread(shutil.rmtree, folder, True)
    if fn_name == "prepare_image":
        return output, str(result["mime"])
    if fn_name == "extract_text":
        return DocumentText(output.decode("utf-8"), bool(result["truncated"]), result["pages"])
    return output


def _failure(error: str, limits: CallLimits) -> str:
    if error.startswith("MemoryError"):
        return f"the file needs more than the {limits.memory_mb} MB of memory allowed to decode it"
    first = error.strip().splitlines()[0][:160] if error.strip() else "no reason given"
    return f"the file could not be decoded ({first})"
