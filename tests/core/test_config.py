from __future__ import annotations

from pathlib import Path

import pytest

from opencomputer.bot.config import ConfigError, DmPolicy, load_settings, normalise_ollama_host


def test_defaults_are_embedded_and_valid() -> None:
    s = load_settings()
    assert s.ollama_host == "http://127.0.0.1:11434"
    assert s.resolved_database_url.startswith("sqlite+aiosqlite:///")
    assert s.resolved_database_url.endswith("opencomputer.db")
    assert s.dm_policy is DmPolicy.PAIRING
    assert s.redis_url is None and not s.is_postgres


def test_environment_names_are_the_customary_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OLLAMA_HOST", "gpu-box")
    monkeypatch.setenv("OC_NUM_CTX", "16384")
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", "123:abc")
    monkeypatch.setenv("OC_ADMINS", "telegram:1, slack:U2 ,")
    monkeypatch.setenv("OC_DATABASE_URL", "postgresql://u:p@db/oc")
    s = load_settings()
    assert s.ollama_host == "http://gpu-box:11434"
    assert s.num_ctx == 16384
    assert s.telegram_bot_token is not None and s.telegram_bot_token.get_secret_value() == "123:abc"
    assert s.admins == ["telegram:1", "slack:U2"]
    assert s.resolved_database_url == "postgresql+asyncpg://u:p@db/oc"
    assert s.is_postgres
    assert "123:abc" in s.secret_values()
    assert "123:abc" not in repr(s)


def test_dotenv_file_is_read(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("OC_MODEL=llama3.1:8b\nOC_LOG_LEVEL=debug\n")
    s = load_settings()
    assert s.model == "llama3.1:8b"
    assert s.log_level == "DEBUG"


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("OC_NUM_CTX", "lots", "OC_NUM_CTX: Input should be a valid integer"),
        ("OC_NUM_CTX", "12", "OC_NUM_CTX: Input should be greater than or equal to 512"),
        (
            "OC_DM_POLICY",
            "everyone",
            "OC_DM_POLICY: Input should be 'pairing', 'allowlist' or 'open'",
        ),
        ("OC_LOG_LEVEL", "loud", "OC_LOG_LEVEL: Value error, expected one of"),
        ("OLLAMA_HOST", "ftp://x", "OLLAMA_HOST: Value error, expected an http:// or https:// URL"),
        ("OC_HTTP_PORT", "-1", "OC_HTTP_PORT: Input should be greater than or equal to 0"),
    ],
)
def test_bad_value_is_one_clear_line(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, expected: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as info:
        load_settings()
    lines = str(info.value).splitlines()
    assert lines[0] == "Invalid settings:"
    assert len(lines) == 2
    assert lines[1].strip().startswith(expected)
    assert repr(value) in lines[1]


@pytest.mark.parametrize(
    ("raw", "url"),
    [
        ("127.0.0.1", "http://127.0.0.1:11434"),
        ("0.0.0.0:11434", "http://127.0.0.1:11434"),
        ("https://ollama.example.org", "https://ollama.example.org:443"),
        ("http://[::1]:9999/", "http://[::1]:9999"),
        ("http://h:1/base", "http://h:1/base"),
    ],
)
def test_ollama_host_is_read_like_ollama_reads_it(raw: str, url: str) -> None:
    assert normalise_ollama_host(raw) == url
