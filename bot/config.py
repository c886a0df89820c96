"""Typed settings, read once from the environment and ``.env`` at start-up.

Platform credentials keep their customary names (``TELEGRAM_BOT_TOKEN``...), Ollama keeps
``OLLAMA_HOST``; everything of ours starts with ``OC_``. A bad value is reported as one line
naming the variable, never as a traceback.
"""

from __future__ import annotations

import difflib
import functools
import re
from collections.abc import Iterable
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

from pydantic import (
    AliasChoices,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

__all__ = [
    "OPENAI_PREFIX",
    "ConfigError",
    "DmPolicy",
    "Settings",
    "SttEngine",
    "load_settings",
    "normalise_model_host",
    "normalise_ollama_host",
    "num_ctx_problem",
    "read_env_file",
    "server_setting_names",
    "unknown_setting_warnings",
]


class ConfigError(Exception):
    """Settings are invalid; the message is meant for the person running the bot."""


class SttEngine(StrEnum):
    """Where voice notes are transcribed."""

    SERVER = "server"
    FASTER_WHISPER = "faster-whisper"
    POCKETSPHINX = "pocketsphinx"


class DmPolicy(StrEnum):
    """Who may talk to the agent in direct messages."""

    PAIRING = "pairing"
    ALLOWLIST = "allowlist"
    OPEN = "open"


def _default_data_dir() -> Path:
    from platformdirs import user_data_dir

    return Path(user_data_dir("opencomputer", appauthor=False))


def _env(name: str, description: str, default: Any = None, **kw: Any) -> Any:
    """A field read from exactly the environment variable ``name``."""
    if "default_factory" not in kw:
        kw["default"] = default
    return Field(validation_alias=AliasChoices(name), description=description, **kw)


CsvList = Annotated[list[str], NoDecode]


class Settings(BaseSettings):
    """Every setting opencomputer reads. ``.env.example`` documents the same keys."""

    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", populate_by_name=True
    )

    # --- model -------------------------------------------------------------------------
    ollama_host: str = _env(
        "OLLAMA_HOST",
        "Ollama server URL, or openai:URL for an OpenAI-compatible server.",
        "http://127.0.0.1:11434",
    )
    ollama_hosts: CsvList = _env(
        "OC_OLLAMA_HOSTS",
        "Several model servers to balance over (overrides OLLAMA_HOST): Ollama URLs, or "
        "openai:http://host:port/v1 for OpenAI-compatible ones (vLLM, llama.cpp, LM Studio...).",
        default_factory=list,
    )
    openai_api_key: SecretStr | None = _env(
        "OC_OPENAI_API_KEY",
        "Bearer key sent to the openai: model servers (OpenAI's key, vLLM's --api-key...).",
    )
    model_retry_seconds: float = _env(
        "OC_MODEL_RETRY_SECONDS",
        "How long a turn waits for an unreachable Ollama to return.",
        20.0,
        ge=0,
    )
    model: str = _env("OC_MODEL", "Ollama model used for chat (must support tools).", "qwen3:8b")
    num_ctx: int = _env("OC_NUM_CTX", "Context window in tokens sent to Ollama.", 8192, ge=512)
    keep_alive: str = _env("OC_KEEP_ALIVE", "How long Ollama keeps the model loaded.", "30m")
    model_timeout: float = _env(
        "OC_MODEL_TIMEOUT", "Seconds to wait for one model reply before giving up.", 300.0, gt=0
    )
    model_stall_timeout: float = _env(
        "OC_MODEL_STALL_TIMEOUT",
        "Seconds without a byte from the model server (a cold model load included) before the "
        "call fails: the user gets the apology and /retry, and the slot is freed.",
        60.0,
        gt=0,
    )
    temperature: float | None = _env("OC_TEMPERATURE", "Sampling temperature (unset: model's).")
    num_predict: int | None = _env(
        "OC_NUM_PREDICT",
        "Most tokens in one answer (Ollama num_predict, OpenAI max_tokens); unset: no cap.",
        ge=1,
    )
    embed_model: str = _env("OC_EMBED_MODEL", "Ollama model for embeddings.", "nomic-embed-text")
    system_prompt: str | None = _env("OC_SYSTEM_PROMPT", "Replaces the default system prompt.")

    # --- memory, compaction, planning, schedules (issue 8) -----------------------------
    memory_backend: str = _env(
        "OC_MEMORY_BACKEND", "Vector search: auto, sqlite-vec or exact (numpy).", "auto"
    )
    memory_top_k: int = _env("OC_MEMORY_TOP_K", "Memories recalled per turn at most.", 5, ge=0)
    memory_token_budget: int = _env(
        "OC_MEMORY_TOKEN_BUDGET", "Prompt tokens recalled memories may use.", 400, ge=0
    )
    memory_min_score: float = _env(
        "OC_MEMORY_MIN_SCORE", "Cosine similarity below which a memory is not recalled.", 0.3
    )
    compact_at: float = _env(
        "OC_COMPACT_AT",
        "Summarise older turns when the prompt passes this share of the context window.",
        0.7,
        gt=0.1,
        lt=1.0,
    )
    planning: bool = _env("OC_PLANNING", "Plan multi-step requests before acting.", True)
    timezone: str = _env("OC_TIMEZONE", "Time zone for schedules when the user gives none.", "UTC")

    # --- runtime -----------------------------------------------------------------------
    data_dir: Path = _env(
        "OC_DATA_DIR", "Where the database and state live.", default_factory=_default_data_dir
    )
    database_url: str | None = _env(
        "OC_DATABASE_URL", "SQLAlchemy URL; default: SQLite file in OC_DATA_DIR."
    )
    redis_url: str | None = _env("OC_REDIS_URL", "Redis URL for shared state (optional).")
    database_key: SecretStr | None = _env(
        "OC_DATABASE_KEY",
        "Encrypt the SQLite database with SQLCipher under this passphrase (or 64 hex digits: a "
        "raw key); needs the sqlcipher3-binary package. Not for PostgreSQL.",
    )
    database_key_file: Path | None = _env(
        "OC_DATABASE_KEY_FILE", "A file holding OC_DATABASE_KEY (first line), e.g. 0600 in /etc."
    )
    redis_prefix: str = _env("OC_REDIS_PREFIX", "Prefix of every Redis key we use.", "oc")
    partitions: int = _env(
        "OC_PARTITIONS",
        "Inbound stream partitions (scale-out); at least the worker count.",
        16,
        ge=1,
        le=1024,
    )
    worker_lease: float = _env(
        "OC_WORKER_LEASE",
        "Seconds a worker's partitions stay its own without a heartbeat.",
        6.0,
        ge=0.5,
    )
    republish_after: float = _env(
        "OC_REPUBLISH_AFTER",
        "Seconds before an unanswered message is published again.",
        30.0,
        gt=0,
    )
    max_in_flight: int = _env(
        "OC_MAX_IN_FLIGHT", "Turns sent to the model at once, over all chats.", 8, ge=1
    )
    max_attachment_mb: float = _env(
        "OC_MAX_ATTACHMENT_MB",
        "Largest file (MB) fetched from a message; enforced while downloading.",
        20.0,
        gt=0,
    )
    file_retention_days: float = _env(
        "OC_FILE_RETENTION_DAYS",
        "Days kept transcripts, document texts and files under <data dir>/files live (0: forever).",
        30.0,
        ge=0,
    )
    stt_url: str | None = _env(
        "OC_STT_URL",
        "Speech-to-text server for voice notes: any OpenAI-compatible /v1/audio/transcriptions "
        "(whisper.cpp server, speaches, vLLM...), e.g. http://127.0.0.1:8000/v1.",
    )
    stt_engine: SttEngine = _env(
        "OC_STT_ENGINE",
        "Speech-to-text engine: 'server' (OC_STT_URL), or in this process 'faster-whisper' "
        "(the whisper extra; OC_STT_MODEL is its model size or folder) or 'pocketsphinx' "
        "(the stt-local extra: its PyPI wheel ships an en-US model, small and far less accurate).",
        SttEngine.SERVER,
    )
    stt_model: str = _env("OC_STT_MODEL", "Model name sent to the speech server.", "whisper-1")
    stt_api_key: SecretStr | None = _env(
        "OC_STT_API_KEY", "Bearer key for the speech server (if it needs one)."
    )
    tts_url: str | None = _env(
        "OC_TTS_URL",
        "Text-to-speech server for spoken replies (/voice on): any OpenAI-compatible "
        "/v1/audio/speech (speaches, Kokoro-FastAPI, openedai-speech...), e.g. "
        "http://127.0.0.1:8880/v1.",
    )
    tts_model: str = _env("OC_TTS_MODEL", "Model name sent to the text-to-speech server.", "tts-1")
    tts_voice: str = _env("OC_TTS_VOICE", "Voice name sent to the text-to-speech server.", "alloy")
    tts_api_key: SecretStr | None = _env(
        "OC_TTS_API_KEY", "Bearer key for the text-to-speech server (if it needs one)."
    )
    http_host: str = _env(
        "OC_HTTP_HOST", "Address of the HTTP app (health, webhooks).", "127.0.0.1"
    )
    http_port: int = _env("OC_HTTP_PORT", "Port of the HTTP app; 0 picks a free one.", 8080, ge=0)
    api_enabled: bool = _env(
        "OC_API_ENABLED",
        "Serve the OpenAI-compatible API (/v1/chat/completions) on the HTTP app (docs/api.md).",
        False,
    )
    api_rate: str = _env(
        "OC_API_RATE", "Requests per API key: 'count/seconds'; 0 turns it off.", "30/60"
    )
    web_chat: bool = _env(
        "OC_WEB_CHAT", "Serve the browser chat at /chat on the HTTP app (docs/web.md).", False
    )
    web_cookie_secure: str = _env(
        "OC_WEB_COOKIE_SECURE",
        "Secure flag of the web chat's cookie: 'auto' (when the request came over HTTPS or "
        "a proxy says X-Forwarded-Proto: https), 'true' or 'false'.",
        "auto",
        pattern=r"^(auto|true|false)$",
    )
    web_max_chars: int = _env(
        "OC_WEB_MAX_CHARS", "Longest message (characters) the web chat takes.", 8000, ge=1
    )
    public_url: str | None = _env(
        "OC_PUBLIC_URL",
        "Address people open the HTTP app at, e.g. https://bot.example.org behind a TLS proxy "
        "(login links of the control room, docs/web.md); default http://OC_HTTP_HOST:PORT.",
    )
    log_level: str = _env("OC_LOG_LEVEL", "DEBUG, INFO, WARNING or ERROR.", "INFO")
    log_format: str = _env(
        "OC_LOG_FORMAT",
        "'text' (readable) or 'json' (one object per line, with turn_id).",
        "text",
        pattern=r"^(text|json)$",
    )
    log_sdk_debug: bool = _env(
        "OC_LOG_SDK_DEBUG",
        "Let library loggers (httpx, telegram, slack_sdk...) log DEBUG when OC_LOG_LEVEL=DEBUG; "
        "their DEBUG lines can carry tokens, so they stay at INFO unless this is set.",
        False,
    )
    event_loop: str = _env(
        "OC_EVENT_LOOP",
        "The processes' event loop: auto (uvloop where installed, else asyncio's), uvloop or "
        "asyncio (bot/eventloop.py).",
        "auto",
        pattern="^(auto|uvloop|asyncio)$",
    )
    gc_mode: str = _env(
        "OC_GC",
        "Garbage collector: default (CPython's thresholds; start-up objects are frozen either "
        "way) or tuned (thresholds raised: no collection in most turns, but no better p99 "
        "measured).",
        "default",
        pattern="^(tuned|default)$",
    )
    shutdown_grace: float = _env(
        "OC_SHUTDOWN_GRACE", "Seconds to let in-flight turns finish on shutdown.", 10.0, ge=0
    )

    # --- access ------------------------------------------------------------------------
    admins: CsvList = _env(
        "OC_ADMINS", "Comma-separated platform:user_id of admins.", default_factory=list
    )
    dm_policy: DmPolicy = _env("OC_DM_POLICY", "pairing, allowlist or open.", DmPolicy.PAIRING)
    group_trigger: str = _env(
        "OC_GROUP_TRIGGER", "In groups answer on 'mention' (and replies) or 'always'.", "mention"
    )
    features_off: CsvList = _env(
        "OC_FEATURES_OFF",
        "Features to leave off (comma-separated entry-point names of opencomputer.features, "
        "e.g. feedback,observability; admin and dedupe cannot be turned off).",
        default_factory=list,
    )
    plugin_dirs: CsvList = _env(
        "OC_PLUGIN_DIRS", "Extra folders holding plugins (comma-separated).", default_factory=list
    )
    skill_dirs: CsvList = _env(
        "OC_SKILL_DIRS",
        "Folders holding skills (SKILL.md folders; comma-separated): docs/skills.md.",
        default_factory=list,
    )
    skills_learn: bool = _env(
        "OC_SKILLS_LEARN",
        "Propose skills from liked multi-tool turns, kept on evidence (docs/skills.md).",
        True,
    )
    skills_candidate_share: float = _env(
        "OC_SKILLS_CANDIDATE_SHARE",
        "Share of matching turns in which a learned candidate skill is offered.",
        0.5,
        gt=0,
        lt=1,
    )
    skills_live_per_person: int = _env(
        "OC_SKILLS_LIVE_PER_PERSON", "Live learned skills one person may have.", 5, ge=1
    )
    skills_live_max: int = _env(
        "OC_SKILLS_LIVE_MAX", "Live learned skills in all (the weakest retires).", 50, ge=1
    )
    skills_gaps_report_days: float = _env(
        "OC_SKILLS_GAPS_REPORT_DAYS",
        "Send admins the missing-capabilities report every N days (0: only /skills gaps).",
        7.0,
        ge=0,
    )
    plugin_sandbox: str = _env(
        "OC_PLUGIN_SANDBOX",
        "'on': plugins run under bubblewrap (refused if it is missing); 'off': no isolation.",
        "on",
        pattern=r"^(on|off)$",
    )
    plugin_timeout: float = _env(
        "OC_PLUGIN_TIMEOUT", "Wall-clock seconds per plugin call.", 30.0, gt=0
    )
    plugin_memory_mb: int = _env(
        "OC_PLUGIN_MEMORY_MB", "Memory limit per plugin call (MB).", 512, gt=16
    )
    plugin_cpu_seconds: int = _env(
        "OC_PLUGIN_CPU_SECONDS", "CPU seconds per plugin call.", 30, gt=0
    )
    mcp_servers: str | None = _env(
        "OC_MCP_SERVERS",
        'MCP servers as JSON: {"name": {"command": "...", "args": [...]} or {"url": "http..."}}.',
    )
    # --- approvals that follow the data (issue 13, bot/effects.py) ----------------------
    approval_policy: str = _env(
        "OC_APPROVAL_POLICY",
        "'taint': once a conversation read outside content (web, notes, tool output, a "
        "stranger in a group), effects that leave the sandbox ask first; 'strict': they always "
        "ask; 'off': only tools marked dangerous ask.",
        "taint",
        pattern=r"^(strict|taint|off)$",
    )
    approval_always: str = _env(
        "OC_APPROVAL_ALWAYS",
        "Effects that ask in every conversation, comma-separated (e.g. 'delete,install').",
        "",
        pattern=r"^\s*((network|send|persist|schedule|device|delete|install|unknown)"
        r"\s*(,\s*|$))*$",
    )
    # --- sub-agents (issue 17, bot/delegation.py) ------------------------------------------
    delegate_max_depth: int = _env(
        "OC_DELEGATE_MAX_DEPTH",
        "How deep sub-agents may nest (the delegate tool); 0 turns delegation off.",
        1,
        ge=0,
        le=4,
    )
    delegate_max_steps: int = _env(
        "OC_DELEGATE_MAX_STEPS",
        "Most tool rounds one sub-agent may take (its default and hard cap).",
        6,
        ge=1,
        le=32,
    )
    delegate_max_tokens: int = _env(
        "OC_DELEGATE_MAX_TOKENS",
        "Most tokens (prompt + answer, as the model server counts them) one sub-agent may use.",
        32000,
        ge=256,
    )
    delegate_models: CsvList = _env(
        "OC_DELEGATE_MODELS",
        "Models a sub-agent may be given besides the conversation's own (comma-separated).",
        default_factory=list,
    )
    delegate_timeout: float = _env(
        "OC_DELEGATE_TIMEOUT", "Wall-clock seconds one sub-agent may run.", 300.0, gt=0
    )
    # --- access: rate limits (issue 7) ---------------------------------------------------
    rate_limit_user: str = _env(
        "OC_RATE_LIMIT_USER", "Messages per account: 'count/seconds'; 0 turns it off.", "20/60"
    )
    rate_limit_chat: str = _env(
        "OC_RATE_LIMIT_CHAT", "Messages per chat: 'count/seconds'; 0 turns it off.", "60/60"
    )

    # --- feedback and prompt tuning (issue 6) -------------------------------------------
    feedback_positive: str = _env(
        "OC_FEEDBACK_POSITIVE",
        "Reactions that rate a reply +1 (comma-separated).",
        "👍,❤️,🎉,🙏",
    )
    feedback_negative: str = _env(
        "OC_FEEDBACK_NEGATIVE",
        "Reactions that rate a reply -1 (comma-separated).",
        "👎,😕,😡",
    )
    tuning: bool = _env(
        "OC_TUNING", "Choose prompt variants by feedback (off: the active one).", True
    )
    tuning_auto: bool = _env(
        "OC_TUNING_AUTO", "Promote and roll back variants automatically.", True
    )
    tuning_min_ratings: int = _env(
        "OC_TUNING_MIN_RATINGS", "Ratings each side needs before a promotion.", 20, ge=1
    )
    tuning_rollback_min_ratings: int = _env(
        "OC_TUNING_ROLLBACK_MIN_RATINGS", "Ratings each side needs before a rollback.", 5, ge=1
    )
    tuning_confidence: float = _env(
        "OC_TUNING_CONFIDENCE",
        "Posterior probability needed to promote or roll back.",
        0.95,
        gt=0.5,
        lt=1,
    )
    tuning_margin: float = _env(
        "OC_TUNING_MARGIN",
        "How much better (thumbs-up rate) a promoted variant must be.",
        0.12,
        ge=0,
        lt=1,
    )
    tuning_rollback_margin: float = _env(
        "OC_TUNING_ROLLBACK_MARGIN",
        "How much worse a variant must be to be rolled back.",
        0.05,
        ge=0,
        lt=1,
    )
    tuning_exploration: float = _env(
        "OC_TUNING_EXPLORATION",
        "Share of new conversations each new candidate gets.",
        0.25,
        ge=0,
        le=1,
    )
    tuning_sticky_turns: int = _env(
        "OC_TUNING_STICKY_TURNS", "Turns a conversation keeps its variant.", 5, ge=1
    )
    tuning_sticky_seconds: float = _env(
        "OC_TUNING_STICKY_SECONDS", "Seconds a conversation keeps its variant.", 1800.0, gt=0
    )
    tuning_propose_hours: float = _env(
        "OC_TUNING_PROPOSE_HOURS",
        "Propose a candidate every N hours (0: only /prompt tune).",
        0.0,
        ge=0,
    )

    # --- connectors --------------------------------------------------------------------
    telegram_bot_token: SecretStr | None = _env("TELEGRAM_BOT_TOKEN", "Telegram bot token.")
    telegram_base_url: str = _env(
        "TELEGRAM_BASE_URL", "Bot API base URL.", "https://api.telegram.org/bot"
    )
    telegram_webhook_url: str | None = _env(
        "TELEGRAM_WEBHOOK_URL", "Public URL for webhook mode (default: long polling)."
    )
    telegram_webhook_secret: SecretStr | None = _env(
        "TELEGRAM_WEBHOOK_SECRET", "secret_token Telegram sends with webhook calls."
    )
    discord_bot_token: SecretStr | None = _env("DISCORD_BOT_TOKEN", "Discord bot token.")
    discord_api_base_url: str | None = _env("DISCORD_API_BASE_URL", "Discord REST base URL.")
    discord_gateway_url: str | None = _env("DISCORD_GATEWAY_URL", "Discord gateway URL.")
    discord_guild_ids: CsvList = _env(
        "DISCORD_GUILD_IDS", "Guilds for instant slash-command updates.", default_factory=list
    )
    slack_bot_token: SecretStr | None = _env("SLACK_BOT_TOKEN", "Slack bot token (xoxb-...).")
    slack_signing_secret: SecretStr | None = _env("SLACK_SIGNING_SECRET", "Slack signing secret.")
    slack_app_token: SecretStr | None = _env("SLACK_APP_TOKEN", "Slack app token for Socket Mode.")
    slack_api_url: str = _env("SLACK_API_URL", "Slack Web API base URL.", "https://slack.com/api/")
    matrix_homeserver: str | None = _env("MATRIX_HOMESERVER", "Matrix homeserver URL.")
    matrix_user_id: str | None = _env("MATRIX_USER_ID", "Bot's Matrix id (@bot:example.org).")
    matrix_password: SecretStr | None = _env("MATRIX_PASSWORD", "Password for the first login.")
    matrix_access_token: SecretStr | None = _env("MATRIX_ACCESS_TOKEN", "Matrix access token.")
    matrix_command_prefix: str = _env("OC_MATRIX_COMMAND_PREFIX", "Command prefix in Matrix.", "!")
    hooks: str | None = _env(
        "OC_HOOKS",
        "Inbound webhooks (POST /hooks/NAME): 'ci=post:telegram:12345, alerts=turn:slack:C1' or "
        "JSON; each hook's HMAC secret in OC_HOOK_<NAME>_SECRET (docs/webhooks.md).",
    )

    @field_validator(
        "admins",
        "features_off",
        "plugin_dirs",
        "skill_dirs",
        "delegate_models",
        "discord_guild_ids",
        "ollama_hosts",
        mode="before",
    )
    @classmethod
    def _split_csv(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("ollama_hosts")
    @classmethod
    def _normalise_hosts(cls, value: list[str]) -> list[str]:
        return [normalise_model_host(v) for v in value]

    @property
    def model_hosts(self) -> list[str]:
        """Every model server to use (``OC_OLLAMA_HOSTS``, else ``OLLAMA_HOST``)."""
        return self.ollama_hosts or [self.ollama_host]

    @field_validator("model")
    @classmethod
    def _check_required(cls, value: str) -> str:
        if not value.strip():  # `OC_MODEL=` in .env would otherwise reach Ollama as ""
            raise ValueError("must not be empty (remove the line to use the default)")
        return value

    @field_validator("log_level")
    @classmethod
    def _check_level(cls, value: str) -> str:
        level = value.upper()
        if level not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
            raise ValueError("expected one of DEBUG, INFO, WARNING, ERROR")
        return level

    @field_validator("group_trigger")
    @classmethod
    def _check_trigger(cls, value: str) -> str:
        if value not in {"mention", "always"}:
            raise ValueError("expected 'mention' or 'always'")
        return value

    @field_validator("rate_limit_user", "rate_limit_chat", "api_rate")
    @classmethod
    def _check_rate(cls, value: str) -> str:
        from opencomputer.bot.ratelimit import parse_rate

        parse_rate(value)  # raises ValueError with the expected form
        return value

    @field_validator("ollama_host")
    @classmethod
    def _normalise_host(cls, value: str) -> str:
        return normalise_model_host(value)

    @model_validator(mode="after")
    def _register_database_key(self) -> Settings:
        """Hand the SQLCipher key to the storage layer for this database's files."""
        from opencomputer.bot.storage.engine import sqlite_path, use_database_key

        key = self.database_key.get_secret_value() if self.database_key else None
        if self.database_key_file is not None:
            try:
                key = self.database_key_file.read_text().splitlines()[0].strip()
            except (OSError, IndexError) as exc:
                raise ValueError(f"OC_DATABASE_KEY_FILE cannot be read: {exc}") from None
        path = sqlite_path(self.resolved_database_url)
        if key and path is None:
            raise ValueError("OC_DATABASE_KEY encrypts SQLite only; unset it for PostgreSQL")
        if path is not None:
            use_database_key(path, key, siblings=("-checkpoints.db",))
        return self

    @property
    def resolved_database_url(self) -> str:
        """The database URL with an async driver, defaulting to SQLite in the data dir."""
        from opencomputer.bot.storage.engine import async_url

        return async_url(self.database_url or f"sqlite:///{self.data_dir / 'opencomputer.db'}")

    @property
    def is_postgres(self) -> bool:
        """Whether storage (and so the graph checkpointer) is PostgreSQL."""
        return self.resolved_database_url.startswith("postgresql")

    def secret_values(self) -> list[str]:
        """Every secret's value, for log redaction: secret fields and passwords in URLs."""
        from urllib.parse import unquote, urlsplit

        values = [
            v.get_secret_value()
            for v in self.__dict__.values()
            if isinstance(v, SecretStr) and v.get_secret_value()
        ]
        for value in self.__dict__.values():  # OC_DATABASE_URL, OC_REDIS_URL, model hosts...
            for url in value if isinstance(value, list) else [value]:
                if isinstance(url, str) and "://" in url and "@" in url:
                    try:
                        password = urlsplit(url.removeprefix(OPENAI_PREFIX)).password
                    except ValueError:
                        continue
                    if password:
                        values += [password, unquote(password)]
        return values


OPENAI_PREFIX = "openai:"
"""Marks a model-host entry as an OpenAI-compatible server: ``openai:http://host:port/v1``."""


def normalise_model_host(value: str) -> str:
    """An Ollama host (as :func:`normalise_ollama_host` takes it) or ``openai:`` + a base URL.

    ``openai:11434`` stays an Ollama host named ``openai``; anything else after ``openai:`` must
    be an http(s) URL, used as written (the API base, which usually ends in ``/v1``).
    """
    value = value.strip()
    kind, _, rest = value.partition(":")
    if kind.lower() != "openai" or rest.split("/", 1)[0].isdigit():
        return normalise_ollama_host(value)
    url = rest.strip().rstrip("/")
    scheme, sep, tail = url.partition("://")
    if not sep or scheme not in {"http", "https"} or not tail.split("/", 1)[0]:
        raise ValueError("expected openai:http://host:port/v1 or openai:https://host/v1")
    if tail.startswith("0.0.0.0"):  # a server bind address, not one to connect to
        tail = "127.0.0.1" + tail[len("0.0.0.0") :]
    return f"{OPENAI_PREFIX}{scheme}://{tail}"


def normalise_ollama_host(value: str) -> str:
    """Accept what ``OLLAMA_HOST`` accepts for the ollama CLI: ``host``, ``host:port``, URLs."""
    value = value.strip().rstrip("/")
    if not value:
        raise ValueError("expected a URL such as http://127.0.0.1:11434")
    if "://" not in value:
        value = f"http://{value}"
    scheme, _, rest = value.partition("://")
    if scheme not in {"http", "https"}:
        raise ValueError("expected an http:// or https:// URL")
    hostport = rest.split("/", 1)[0]
    if hostport.startswith("0.0.0.0"):  # a server bind address, not one to connect to
        rest = rest.replace("0.0.0.0", "127.0.0.1", 1)
    if ":" not in hostport.rsplit("]", 1)[-1]:
        default = 443 if scheme == "https" else 11434
        rest = rest.replace(hostport, f"{hostport}:{default}", 1)
    return f"{scheme}://{rest}"


def _env_name(field_name: str) -> str:
    field = Settings.model_fields.get(field_name)
    alias = field.validation_alias if field else None
    if isinstance(alias, AliasChoices):
        return str(alias.choices[0])
    return field_name.upper()


_ENV_LINE = re.compile(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_.]*)\s*=(.*)$")


def read_env_file(path: Path) -> dict[str, str]:
    """The keys of a ``.env`` file; :class:`ConfigError` naming file and line if it is bad.

    python-dotenv logs a malformed line twice without the file name and then skips it, and
    raises a bare ``UnicodeDecodeError`` on a non-UTF-8 file: we check first, once.
    """
    data = path.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ConfigError(
            f"{path}: not UTF-8 at byte {exc.start} (line {line}); save the file as UTF-8"
        ) from None
    keys: dict[str, str] = {}
    open_quote = ""  # inside a quoted value that spans lines (dotenv allows it)
    for number, line_text in enumerate(text.splitlines(), 1):
        stripped = line_text.strip()
        if open_quote:
            if open_quote in line_text:
                open_quote = ""
            continue
        if not stripped or stripped.startswith("#"):
            continue
        match = _ENV_LINE.match(line_text)
        if match is None:
            raise ConfigError(
                f"{path}:{number}: cannot parse {stripped[:40]!r}; "
                "expected KEY=value (or a # comment)"
            )
        value = match.group(2).strip()
        if value[:1] in ("'", '"') and value.count(value[0]) == 1:
            open_quote = value[0]
        keys[match.group(1)] = value
    return keys


@functools.cache
def server_setting_names() -> frozenset[str]:
    """Every variable the server reads (each alias of every field), in capitals."""
    names: set[str] = set()
    for field_name, info in Settings.model_fields.items():
        names.add(field_name.upper())
        alias = info.validation_alias
        choices = alias.choices if isinstance(alias, AliasChoices) else [alias]
        names |= {str(c).upper() for c in choices if isinstance(c, str)}
        if isinstance(info.alias, str):
            names.add(info.alias.upper())
    return frozenset(names)


def unknown_setting_warnings(
    names: Iterable[str], *, extra_prefixes: Iterable[str] = ()
) -> list[str]:
    """One line per ``OC_`` name nothing reads, with the closest known name if any.

    ``extra_prefixes`` are namespaces read by others (each plugin's ``OC_<NAME>_``): the
    caller that knows the plugins passes them (``bot.plugins.startup.setting_warnings``).
    """
    known = sorted(server_setting_names())
    prefixes = ("OC_TEST_", "OC_HOOK_", *extra_prefixes)  # OC_HOOK_<NAME>_SECRET
    lines = []
    for name in sorted(set(names)):
        upper = name.upper()
        if not upper.startswith("OC_") or upper in known or upper.startswith(prefixes):
            continue
        close = difflib.get_close_matches(upper, known, n=1)
        hint = f"; did you mean {close[0]}?" if close else ""
        lines.append(f"unknown setting {name} (ignored){hint}")
    return lines


def num_ctx_problem(settings: Settings, context_length: int | None) -> str | None:
    """One line if ``OC_NUM_CTX`` exceeds the model's context window (when it is known)."""
    if context_length is None or settings.num_ctx <= context_length:
        return None
    if "num_ctx" not in settings.model_fields_set:
        return None  # the default: the agent clamps it to the model's window by itself
    return (
        f"OC_NUM_CTX={settings.num_ctx} is larger than the context window of "
        f"{settings.model} ({context_length} tokens); set OC_NUM_CTX={context_length} or less"
    )


def load_settings(**overrides: Any) -> Settings:
    """Read and validate settings; raise :class:`ConfigError` with one line per problem."""
    env_file = Path(".env")
    if not overrides and env_file.is_file():
        read_env_file(env_file)  # a bad file: one line naming it, before pydantic reads it
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            name = _env_name(str(err["loc"][0])) if err["loc"] else "settings"
            got = err.get("input")
            shown = "" if isinstance(got, dict) or got is None else f" (got {got!r})"
            lines.append(f"{name}: {err['msg']}{shown}")
        raise ConfigError("Invalid settings:\n  " + "\n  ".join(lines)) from None
