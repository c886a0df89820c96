"""Common misconfigurations end in one line on stderr and exit status 2, never a traceback.

Each test runs the real `python -m bot` in a subprocess with a scratch working directory (so
its own ``.env``) and a clean environment, and asserts the exact line.
"""

from __future__ import annotations

import asyncio
import os
import socket
import sys
import uuid
from pathlib import Path

from sqlalchemy.engine import make_url

from opencomputer.bot.testing import FakeOllama

BIN = [sys.executable, "-m", "opencomputer"]
PREFIXES = ("OC_", "OLLAMA_", "TELEGRAM_", "DISCORD_", "SLACK_", "MATRIX_")


async def _run(args: list[str], cwd: Path, env: dict[str, str]) -> tuple[int, str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(PREFIXES)}
    base = {"OC_DATA_DIR": str(cwd / "data"), "OLLAMA_HOST": "http://127.0.0.1:9"}
    proc = await asyncio.create_subprocess_exec(
        *BIN,
        *args,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**clean, **base, **env},
        cwd=cwd,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=90)
    return proc.returncode or 0, out.decode(), err.decode()


def _last_line(err: str) -> str:
    return [line for line in err.splitlines() if line.strip()][-1]


def _one_line_exit_2(code: int, out: str, err: str, line: str) -> None:
    assert code == 2, (code, out, err)
    assert _last_line(err) == line, err
    assert "Traceback" not in out + err


async def test_env_file_not_utf8_names_file_line_and_byte(tmp_path: Path) -> None:
    (tmp_path / ".env").write_bytes(b"# settings\nOC_MODEL=caf\xe9\n")
    for command in (["doctor"], ["chat"], ["db", "upgrade"]):
        code, out, err = await _run(command, tmp_path, {})
        line = ".env: not UTF-8 at byte 23 (line 2); save the file as UTF-8"
        _one_line_exit_2(code, out, err, line)


async def test_malformed_env_line_reported_once_with_file_and_line(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(
        'OC_MODEL=qwen3:8b\nOC_SYSTEM_PROMPT="two\nlines"\nnonsense here\n'
    )
    code, out, err = await _run(["doctor"], tmp_path, {})
    _one_line_exit_2(
        code, out, err, ".env:4: cannot parse 'nonsense here'; expected KEY=value (or a # comment)"
    )
    assert err.count("nonsense") == 1, err  # python-dotenv's own two warnings never appear


async def test_unknown_keys_warn_with_suggestion_and_fail_doctor(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("OC_TEMPERTURE=0.2\n")
    code, out, err = await _run(["doctor"], tmp_path, {"OC_MODLE": "llama3"})
    assert code == 1, (out, err)  # doctor: a failed check
    assert "warning: unknown setting OC_MODLE (ignored); did you mean OC_MODEL?" in err
    assert "[FAIL] .env: unknown setting OC_MODLE (ignored); did you mean OC_MODEL?" in out
    assert (
        "[FAIL] .env: unknown setting OC_TEMPERTURE (ignored); did you mean OC_TEMPERATURE?"
    ) in out
    assert err.count("OC_MODLE") == 1
    assert "Traceback" not in out + err


async def test_known_and_plugin_settings_are_not_flagged(tmp_path: Path) -> None:
    env = {"OC_MODEL": "qwen3:8b", "OC_HOME_DEVICES": "{}", "OC_TEST_REDIS_URL": "x"}
    _code, out, err = await _run(["doctor"], tmp_path, env)
    assert "[ok  ] .env: no unknown OC_ settings" in out, (out, err)
    assert "unknown setting" not in err


async def test_empty_required_model_refused(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("OC_MODEL=\n")
    code, out, err = await _run(["chat"], tmp_path, {})
    assert code == 2 and "Traceback" not in out + err
    assert err == (  # the settings loader's format: a heading, then one line per problem
        "Invalid settings:\n"
        "  OC_MODEL: Value error, must not be empty (remove the line to use the default)"
        " (got '')\n"
    )


async def test_num_ctx_larger_than_model_context(tmp_path: Path, fake_ollama: FakeOllama) -> None:
    fake_ollama.context_length = 4096
    env = {"OLLAMA_HOST": fake_ollama.url, "OC_NUM_CTX": "8192"}
    line = (
        "OC_NUM_CTX=8192 is larger than the context window of qwen3:8b (4096 tokens); "
        "set OC_NUM_CTX=4096 or less"
    )
    code, out, err = await _run(["doctor"], tmp_path, env)
    assert code == 1 and f"[FAIL] context: {line}" in out, (out, err)
    code, out, err = await _run(["chat"], tmp_path, env)
    _one_line_exit_2(code, out, err, line)
    code, out, err = await _run(["chat"], tmp_path, {**env, "OC_NUM_CTX": "4096"})
    assert code == 0, err  # at the limit: accepted


async def test_missing_postgres_database(tmp_path: Path, postgres_url: str) -> None:
    url = make_url(postgres_url).set(database=f"oc_missing_{uuid.uuid4().hex[:8]}")
    env = {"OC_DATABASE_URL": url.render_as_string(hide_password=False)}
    where = f" -h {url.host}" + (f" -p {url.port}" if url.port else "")
    where += f" -U {url.username}" if url.username else ""
    line = (
        f"PostgreSQL database {url.database!r} does not exist: create it with "
        f"`createdb{where} {url.database}` (or fix OC_DATABASE_URL)"
    )
    for command in (["db", "upgrade"], ["chat"]):
        code, out, err = await _run(command, tmp_path, env)
        _one_line_exit_2(code, out, err, line)


async def test_http_port_in_use(tmp_path: Path, redis_url: str) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        env = {
            "OC_HTTP_HOST": "127.0.0.1",
            "OC_HTTP_PORT": str(port),
            "OC_REDIS_URL": redis_url,
            "OC_REDIS_PREFIX": f"oc-test-{uuid.uuid4().hex[:8]}",
            "TELEGRAM_BOT_TOKEN": "1:x",
            "OC_LOG_LEVEL": "WARNING",
        }
        code, out, err = await _run(["gateway"], tmp_path, env)
    line = (
        f"cannot listen on 127.0.0.1:{port}: address already in use; "
        "set OC_HTTP_PORT (or OC_HTTP_HOST) to a free one, or stop the other process"
    )
    _one_line_exit_2(code, out, err, line)


async def test_debug_level_keeps_the_traceback(tmp_path: Path, fake_ollama: FakeOllama) -> None:
    fake_ollama.context_length = 4096
    env = {"OLLAMA_HOST": fake_ollama.url, "OC_NUM_CTX": "8192", "OC_LOG_LEVEL": "DEBUG"}
    code, _out, err = await _run(["chat"], tmp_path, env)
    assert code == 1 and "Traceback" in err and "OC_NUM_CTX=8192 is larger" in err
