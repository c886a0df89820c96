"""Find plugins in ``plugins/``, ``OC_PLUGIN_DIRS`` and pip packages.

Packages announce a plugin through the ``opencomputer.plugins`` entry-point group.

Only manifests are read here, never code. A plugin whose manifest is invalid, whose version
range excludes this opencomputer, whose name is taken or whose required setting is missing is
set aside with one line saying why; the others load.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from opencomputer.bot import __version__
from opencomputer.bot.plugins.introspect import Described, describe_source, module_file
from opencomputer.bot.plugins.manifest import (
    Manifest,
    ManifestError,
    load_manifest,
    version_supported,
)

__all__ = ["BUILTIN_DIR", "Broken", "Discovery", "Plugin", "discover", "plugin_environ"]

logger = logging.getLogger(__name__)

BUILTIN_DIR = Path(__file__).resolve().parents[2] / "plugins"
ENTRY_POINT_GROUP = "opencomputer.plugins"
Source = Literal["builtin", "dir", "package"]


@dataclass(slots=True)
class Plugin:
    """A plugin whose manifest is valid; its code is looked at only when first needed."""

    manifest: Manifest
    folder: Path
    source: Source
    package: str | None = None  # import name for pip packages; folders get a private name
    settings: dict[str, str] = field(default_factory=dict)
    _described: Described | None = None

    @property
    def name(self) -> str:
        """The plugin's name."""
        return self.manifest.name

    @property
    def on_by_default(self) -> bool:
        """Built-ins follow their manifest; plugins from folders and packages wait for consent.

        A folder in ``OC_PLUGIN_DIRS`` or a pip package can be put there by someone other than
        the admin (a shared drive, a dependency), so it stays off until
        ``opencomputer plugins enable``.
        """
        return self.source == "builtin" and self.manifest.enabled_by_default

    @property
    def in_process(self) -> bool:
        """Trusted built-ins may run in the server; everything else runs sandboxed."""
        return self.source == "builtin" and self.manifest.isolation == "none"

    def describe(self) -> Described:
        """Tools, commands, hooks and jobs, read from the source (cached)."""
        if self._described is None:
            source = module_file(self.folder, self.manifest.module).read_text(encoding="utf-8")
            self._described = describe_source(source, self.manifest.module)
        return self._described


@dataclass(frozen=True, slots=True)
class Broken:
    """A plugin that was set aside, and why (one line)."""

    name: str
    where: str
    reason: str
    optional: bool = False
    """A built-in plugin the user simply has not configured (not a fault)."""

    def __str__(self) -> str:
        return f"plugin {self.name} disabled: {self.reason}"


@dataclass(slots=True)
class Discovery:
    """What discovery found."""

    plugins: dict[str, Plugin] = field(default_factory=dict)
    broken: list[Broken] = field(default_factory=list)


def plugin_environ(env_file: Path | None = Path(".env")) -> dict[str, str]:
    """Where plugin settings come from: ``.env`` overlaid by the process environment."""
    values: dict[str, str] = {}
    if env_file is not None and env_file.is_file():
        from dotenv import dotenv_values

        values.update({k: v for k, v in dotenv_values(env_file).items() if v is not None})
    values.update(os.environ)
    return values


def _folders(dirs: list[str]) -> list[tuple[Path, Source]]:
    found: list[tuple[Path, Source]] = []
    roots: list[tuple[Path, Source]] = [(BUILTIN_DIR, "builtin")]
    roots += [(Path(d).expanduser(), "dir") for d in dirs]
    for root, source in roots:
        if (root / "plugin.json").is_file():
            found.append((root, source))
        elif root.is_dir():
            subs = sorted(root.iterdir())
            found.extend((sub, source) for sub in subs if (sub / "plugin.json").is_file())
        elif source == "dir":
            logger.warning("OC_PLUGIN_DIRS entry %s is not a folder", root)
    return found


def _packages() -> list[tuple[str, Path | None, str]]:
    """(entry-point name, package folder, package) for every installed plugin package."""
    out: list[tuple[str, Path | None, str]] = []
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        module = ep.value.split(":", 1)[0].strip()
        try:
            spec = importlib.util.find_spec(module)
        except (ImportError, ValueError):
            spec = None
        locations = list(spec.submodule_search_locations or []) if spec else []
        out.append((ep.name, Path(locations[0]) if locations else None, module))
    return out


def _check(manifest: Manifest, environ: Mapping[str, str]) -> tuple[dict[str, str], str | None]:
    if not version_supported(manifest.opencomputer, __version__):
        return {}, f"needs opencomputer {manifest.opencomputer}, this is {__version__}"
    values: dict[str, str] = {}
    for name, spec in manifest.settings.items():
        value = environ.get(name, spec.default)
        if value is None or value == "":
            if spec.required:
                return {}, f"missing setting {name} ({spec.description or 'required'})"
            continue
        values[name] = value
    return values, None


def discover(
    plugin_dirs: list[str], *, environ: Mapping[str, str] | None = None, packages: bool = True
) -> Discovery:
    """Read every manifest; never import plugin code."""
    environ = plugin_environ() if environ is None else environ
    result = Discovery()
    candidates: list[tuple[Path | None, Source, str | None, str]] = [
        (folder, source, None, str(folder)) for folder, source in _folders(plugin_dirs)
    ]
    if packages:
        candidates += [
            (folder, "package", module, f"package {module} ({name})")
            for name, folder, module in _packages()
        ]
    claimed: dict[str, str] = {}  # setting name -> the plugin that declared it
    for folder, source, package, where in candidates:
        if folder is None:
            result.broken.append(Broken(where, where, "package not found (is it installed?)"))
            continue
        try:
            manifest = load_manifest(folder)
        except ManifestError as exc:
            result.broken.append(Broken(folder.name, where, str(exc)))
            continue
        if manifest.name in result.plugins:
            other = result.plugins[manifest.name].folder
            result.broken.append(Broken(manifest.name, where, f"name already used by {other}"))
            continue
        # Namespaces nest (home: OC_HOME_*, home_mqtt: OC_HOME_MQTT_*): a setting belongs to
        # the first plugin found declaring it (built-ins come first), even one left unusable.
        taken = [s for s in manifest.settings if s in claimed]
        claimed.update({s: manifest.name for s in manifest.settings if s not in claimed})
        values, problem = _check(manifest, environ)
        if taken:
            problem = f"setting {taken[0]} belongs to plugin {claimed[taken[0]]}"
        if problem:
            result.broken.append(
                Broken(manifest.name, where, problem, optional=source == "builtin")
            )
            continue
        result.plugins[manifest.name] = Plugin(manifest, folder, source, package, values)
    for broken in result.broken:
        # A built-in plugin left unconfigured is a choice, not a fault: `doctor` still lists it.
        logger.log(logging.INFO if broken.optional else logging.WARNING, "%s", broken)
    return result
