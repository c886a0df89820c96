"""``plugin.json``: what a plugin is, needs and offers, validated without importing its code.

The manifest is the contract the admin consents to: permissions listed here are the only ones
the sandbox grants, and settings not declared here never reach the plugin.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from opencomputer.bot.effects import Effect

__all__ = [
    "CommandDecl",
    "FileGrants",
    "JobDecl",
    "Limits",
    "Manifest",
    "ManifestError",
    "Permissions",
    "SettingSpec",
    "ToolDecl",
    "load_manifest",
    "setting_prefix",
    "version_supported",
]

_NAME = r"^[a-z][a-z0-9_-]{0,39}$"


class ManifestError(Exception):
    """The manifest is missing or invalid; the message is one line for the admin."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FileGrants(_Strict):
    """Host paths the plugin may read, or read and write (its data folder is always writable)."""

    read: list[str] = Field(default_factory=list)
    write: list[str] = Field(default_factory=list)


class Permissions(_Strict):
    """What the sandbox grants; nothing else is reachable."""

    network: list[str] = Field(
        default_factory=list,
        description="Hosts (host, host:port, *.domain, ${SETTING}) or '*' for any.",
    )
    files: FileGrants = Field(default_factory=FileGrants)
    process: bool = Field(default=False, description="May start other programs.")
    secrets: list[str] = Field(default_factory=list, description="Secret settings it receives.")


class SettingSpec(_Strict):
    """One setting the plugin reads (from the environment or ``.env``)."""

    description: str = ""
    required: bool = False
    default: str | None = None
    secret: bool = False


class ToolDecl(_Strict):
    """A tool the plugin offers (its argument schema comes from the code's type hints)."""

    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_-]{0,63}$")
    description: str = ""
    dangerous: bool = False
    effects: list[Effect] | None = Field(
        default=None,
        description="What a call does beyond answering (bot/effects.py); omitted: what the "
        "plugin's grants allow.",
    )
    trusted_output: bool = Field(
        default=False,
        description="Its result is computed from the arguments alone, never outside content, "
        "so reading it does not make the turn ask before effects.",
    )


class CommandDecl(_Strict):
    """A chat command the plugin offers."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_]{0,31}$")
    description: str = ""
    args: str = ""
    admin: bool = False


class JobDecl(_Strict):
    """A function the server runs every ``every`` seconds."""

    name: str
    every: float = Field(gt=0)


class Limits(_Strict):
    """Per-call limits; the admin's ``OC_PLUGIN_*`` settings cap them."""

    timeout: float | None = Field(default=None, gt=0)
    memory_mb: int | None = Field(default=None, gt=16)
    cpu_seconds: int | None = Field(default=None, gt=0)


class Manifest(_Strict):
    """A validated ``plugin.json``."""

    name: str = Field(pattern=_NAME)
    version: str
    description: str
    author: str = ""
    opencomputer: str = Field(">=0.1", description="Supported opencomputer versions (PEP 440).")
    module: str = Field("plugin", pattern=r"^[A-Za-z_][\w.]*$")
    isolation: Literal["sandbox", "none"] = "sandbox"
    enabled_by_default: bool = True
    permissions: Permissions = Field(default_factory=Permissions)
    settings: dict[str, SettingSpec] = Field(default_factory=dict)
    tools: list[ToolDecl] = Field(default_factory=list)
    commands: list[CommandDecl] = Field(default_factory=list)
    hooks: list[Literal["on_message", "on_reaction", "on_forget"]] = Field(default_factory=list)
    jobs: list[JobDecl] = Field(default_factory=list)
    limits: Limits = Field(default_factory=Limits)

    @field_validator("module")
    @classmethod
    def _relative_module(cls, value: str) -> str:
        if value.startswith("plugins."):  # the skeleton's dotted paths: keep the last part
            value = value.rsplit(".", 1)[-1]
        return value

    @model_validator(mode="after")
    def _secrets_declared(self) -> Manifest:
        for name, spec in self.settings.items():
            if spec.secret and name not in self.permissions.secrets:
                raise ValueError(f"secret setting {name} must be listed in permissions.secrets")
        tools = [t.name for t in self.tools]
        if len(set(tools)) != len(tools):
            raise ValueError("a tool name is declared twice")
        return self

    @model_validator(mode="after")
    def _settings_in_namespace(self) -> Manifest:
        """A plugin's settings are ``OC_<NAME>_*`` and never one of the server's own names.

        Names are compared in capitals because the server reads its settings case-blind
        (``telegram_bot_token`` is ``TELEGRAM_BOT_TOKEN`` to it).
        """
        from opencomputer.bot.config import server_setting_names  # late: pydantic-settings is heavy

        prefix = setting_prefix(self.name)
        server = server_setting_names()
        for name in self.settings:
            if name.upper() in server:
                raise ValueError(
                    f"setting {name} is one of the server's own settings; a plugin never "
                    f"receives those (name its own settings {prefix}...)"
                )
            if not re.fullmatch(r"[A-Z][A-Z0-9_]*", name) or not name.startswith(prefix):
                raise ValueError(
                    f"setting {name} is outside this plugin's namespace: plugin {self.name}'s "
                    f"settings are named {prefix}<NAME> in capitals"
                )
        for name in self.permissions.secrets:
            if name not in self.settings:
                raise ValueError(
                    f"permissions.secrets lists {name}, which is not one of its settings "
                    f'(declare it under settings with "secret": true)'
                )
        for entry in self.permissions.network:
            for ref in _REFERENCE.findall(entry):
                if ref not in self.settings:
                    raise ValueError(
                        f"permissions.network refers to ${{{ref}}}, which is not one of its "
                        "settings"
                    )
                if ref in self.secret_names:
                    raise ValueError(
                        f"permissions.network refers to ${{{ref}}}, a secret setting; a host "
                        "grant must come from a plain setting"
                    )
        return self

    @property
    def secret_names(self) -> list[str]:
        """Settings that are secrets (marked ``secret`` or listed in ``permissions.secrets``)."""
        listed = set(self.permissions.secrets)
        return [n for n, spec in self.settings.items() if spec.secret or n in listed]

    def network_hosts(self, values: dict[str, str]) -> list[str]:
        """Granted hosts, ``${SETTING}`` references filled in (a setting may list several).

        Only the plugin's own plain settings are looked up, whatever ``values`` holds.
        """
        own = set(self.settings) - set(self.secret_names)
        hosts = []
        for entry in self.permissions.network:
            filled = _REFERENCE.sub(
                lambda m: values.get(m.group(1), "") if m.group(1) in own else "", entry
            )
            hosts += [part.strip() for part in filled.split(",") if part.strip()]
        return hosts


_REFERENCE = re.compile(r"\$\{([^}]*)\}")


def setting_prefix(plugin: str) -> str:
    """The namespace of a plugin's settings: ``weather`` -> ``OC_WEATHER_``."""
    return "OC_" + plugin.upper().replace("-", "_") + "_"


def load_manifest(folder: Path) -> Manifest:
    """Read and validate ``folder/plugin.json``; raise :class:`ManifestError` with one line."""
    path = folder / "plugin.json"
    try:
        data: Any = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ManifestError(f"no plugin.json in {folder}") from None
    except (OSError, ValueError) as exc:
        raise ManifestError(f"{path}: not valid JSON ({exc})") from None
    try:
        return Manifest.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "manifest"
        more = f" (+{len(exc.errors()) - 1} more)" if len(exc.errors()) > 1 else ""
        raise ManifestError(f"{path}: {where}: {first['msg']}{more}") from None


def version_supported(spec: str, version: str) -> bool:
    """Whether ``version`` satisfies the manifest's ``opencomputer`` specifier."""
    from packaging.specifiers import InvalidSpecifier, SpecifierSet

    try:
        return SpecifierSet(spec).contains(version, prereleases=True)
    except InvalidSpecifier:
        return False
