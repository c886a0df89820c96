"""The real `opencomputer` command in a subprocess, against the fake Ollama on loopback."""

from __future__ import annotations

import asyncio
import os
import re
import socket
import sys
from pathlib import Path

from opencomputer.bot.testing import FakeOllama, Reply

BIN = [sys.executable, "-m", "opencomputer"]


async def _run(
    args: list[str], env: dict[str, str], stdin: str = "", cwd: Path | None = None
) -> tuple[int, str, str]:
    clean = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("OC_", "OLLAMA_", "TELEGRAM_", "DISCORD_", "SLACK_", "MATRIX_"))
    }
    proc = await asyncio.create_subprocess_exec(
        *BIN,
        *args,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**clean, **env},
        cwd=cwd,
    )
    out, err = await asyncio.wait_for(proc.communicate(stdin.encode()), timeout=60)
    return proc.returncode or 0, out.decode(), err.decode()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _tool_then_answer(body: dict) -> Reply:
    last = body["messages"][-1]
    if last["role"] == "tool":
        return Reply(f"According to the clock: {last['content']}")
    if "time" in last["content"]:
        return Reply.tool("current_time", timezone="UTC")
    users = [m["content"] for m in body["messages"] if m["role"] == "user"]
    return Reply("I remember: " + " | ".join(users))


async def test_piped_chat_does_a_tool_round_trip_and_remembers(
    fake_ollama: FakeOllama, tmp_path: Path
) -> None:
    fake_ollama.responder = _tool_then_answer
    env = {"OLLAMA_HOST": fake_ollama.url, "OC_DATA_DIR": str(tmp_path / "d")}
    code, out, err = await _run(["chat"], env, "what time is it\n")
    assert code == 0, err
    assert out.startswith("According to the clock: ") and "UTC" in out
    assert len(fake_ollama.chats) == 2
    code, out, err = await _run(["chat"], env, "and now?\n\n/help\n")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == "I remember: what time is it | and now?"
    assert "/reset" in out and "/retry" in out


async def test_chat_without_ollama_says_how_to_fix(tmp_path: Path) -> None:
    env = {"OLLAMA_HOST": f"127.0.0.1:{_free_port()}", "OC_DATA_DIR": str(tmp_path / "d")}
    code, _out, err = await _run(["chat"], env, "hello\n")
    assert code == 1
    assert "Cannot chat: cannot reach Ollama" in err and "ollama serve" in err
    assert "Traceback" not in err


async def test_doctor_fails_when_ollama_is_stopped(tmp_path: Path) -> None:
    port = _free_port()
    env = {"OLLAMA_HOST": f"127.0.0.1:{port}", "OC_DATA_DIR": str(tmp_path / "d")}
    code, out, _err = await _run(["doctor"], env)
    assert code == 1
    assert f"[FAIL] ollama: cannot reach Ollama at http://127.0.0.1:{port}" in out
    assert "Start it with `ollama serve`, or set OLLAMA_HOST" in out
    assert "[ok  ] database:" in out


async def test_doctor_passes_and_names_a_missing_model(
    fake_ollama: FakeOllama, tmp_path: Path
) -> None:
    env = {"OLLAMA_HOST": fake_ollama.url, "OC_DATA_DIR": str(tmp_path / "d")}
    code, out, _ = await _run(["doctor"], env)
    assert code == 0, out
    assert "[ok  ] model: model 'qwen3:8b' is available" in out
    assert out.rstrip().endswith("all checks passed")
    code, out, _ = await _run(["doctor"], {**env, "OC_MODEL": "mistral:7b"})
    assert code == 1
    assert "Run `ollama pull mistral:7b`" in out


async def test_bad_setting_is_one_line_not_a_traceback(tmp_path: Path) -> None:
    code, _out, err = await _run(["chat"], {"OC_NUM_CTX": "many", "OC_DATA_DIR": str(tmp_path)})
    assert code == 2
    assert err.strip().splitlines() == [
        "Invalid settings:",
        "  OC_NUM_CTX: Input should be a valid integer, unable to parse "
        "string as an integer (got 'many')",
    ]


async def test_run_without_connectors_lists_what_enables_them(tmp_path: Path) -> None:
    code, _out, err = await _run(["run"], {"OC_DATA_DIR": str(tmp_path)})
    assert code == 1
    assert "No connector is configured" in err
    for variable in (
        "TELEGRAM_BOT_TOKEN",
        "DISCORD_BOT_TOKEN",
        "SLACK_BOT_TOKEN",
        "MATRIX_HOMESERVER",
    ):
        assert variable in err


async def test_help_lists_every_command(tmp_path: Path) -> None:
    code, out, _ = await _run(["--help"], {})
    assert code == 0
    for name in ("run", "chat", "doctor", "db"):
        assert name in out
    code, out, _ = await _run(["db", "upgrade"], {"OC_DATA_DIR": str(tmp_path / "d")})
    assert code == 0 and "up to date" in out
    assert (tmp_path / "d" / "opencomputer.db").exists()


async def test_short_help_and_version_flags() -> None:
    from opencomputer.bot import __version__

    code, out, err = await _run(["-h"], {})
    assert code == 0, err
    assert "Usage: opencomputer" in out and "--version" in out
    code, out, err = await _run(["db", "upgrade", "-h"], {})  # handed down to sub-commands
    assert code == 0, err
    assert "Usage: opencomputer db upgrade" in out
    for flag in ("--version", "-V"):
        code, out, err = await _run([flag], {})
        assert (code, out, err) == (0, f"opencomputer {__version__}\n", "")
    code, _out, err = await _run(["--versoin"], {})
    assert code == 2 and "No such option: --versoin" in err


def _documented_commands() -> set[tuple[str, ...]]:
    """``opencomputer <command> [<sub-command>]`` as written in code in the README and docs."""
    root = Path(__file__).resolve().parents[2]
    found: set[tuple[str, ...]] = set()
    for page in [root / "README.md", *sorted((root / "docs").glob("*.md"))]:
        text = page.read_text(encoding="utf-8")
        code = re.findall(r"```[^\n]*\n(.*?)```", text, re.S) + re.findall(r"`([^`\n]+)`", text)
        for snippet in code:
            for words in re.findall(
                r"(?m)(?:^|[|;&($])\s*opencomputer((?: [a-z][a-z-]*)+)", snippet
            ):
                found.add(tuple(words.split()[:2]))
    return found


def test_every_command_the_docs_show_exists() -> None:
    """A renamed or removed command must take its README/docs examples with it."""
    import typer.main

    from opencomputer.bot.cli import app

    commands = typer.main.get_command(app).commands  # type: ignore[attr-defined]
    documented = _documented_commands()
    assert ("plugins", "list") in documented and ("db", "upgrade") in documented
    for words in sorted(documented):
        command = commands.get(words[0])
        assert command is not None, f"docs show `opencomputer {words[0]}`, which does not exist"
        subcommands = getattr(command, "commands", None)  # a group: the docs name one of them
        if subcommands is not None and len(words) == 2:  # one word alone names the group
            assert words[1] in subcommands, (
                f"docs show `opencomputer {' '.join(words)}`, which does not exist"
            )


def test_readme_says_how_to_put_the_command_on_path_before_using_it() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    first_bare = re.search(r"(?m)(?:^|[`$|] ?)opencomputer [a-z]", readme)
    path_note = readme.find("source .venv/bin/activate")
    assert first_bare is not None and 0 <= path_note < first_bare.start()
