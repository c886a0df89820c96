"""Tools the agent can call: a registry filled by plugins, schemas derived from type hints.

The model sees a tool as Ollama's function schema; the JSON schema comes from the function's
signature and the ``Args:`` section of its docstring, so a plugin author writes one typed,
documented function and nothing else.
"""

from __future__ import annotations

import inspect
import re
import types
import typing
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal, get_args, get_origin

__all__ = ["Tool", "ToolError", "ToolRegistry", "schema_for", "tool"]

ToolFn = Callable[..., Awaitable[Any] | Any]


class ToolError(Exception):
    """A tool failed in a way the model should hear about (bad arguments, remote error)."""


@dataclass(slots=True)
class Tool:
    """A callable the model may invoke."""

    name: str
    description: str
    parameters: dict[str, Any]
    fn: ToolFn
    dangerous: bool = False
    plugin: str = "core"
    # What the call does beyond answering (see bot/effects.py); None = undeclared (anything).
    effects: frozenset[str] | None = None
    # True when the result is computed by trusted code from the arguments alone (a clock, a
    # receipt like "remembered"): reading it does not taint the turn. Default: it does.
    trusted_output: bool = False
    _spec: dict[str, Any] | None = field(default=None, repr=False)

    @property
    def spec(self) -> dict[str, Any]:
        """The tool as Ollama's ``tools`` entry (cached: it never changes)."""
        if self._spec is None:
            self._spec = {
                "type": "function",
                "function": {
                    "name": self.name,
                    "description": self.description,
                    "parameters": self.parameters,
                },
            }
        return self._spec

    async def call(self, arguments: dict[str, Any]) -> Any:
        """Run the tool in-process (the plugin system may run it elsewhere instead)."""
        result = self.fn(**arguments)
        if inspect.isawaitable(result):
            result = await result
        return result


_PRIMITIVES: dict[Any, str] = {str: "string", int: "integer", float: "number", bool: "boolean"}


def _json_type(hint: Any) -> dict[str, Any]:
    origin = get_origin(hint)
    if hint in _PRIMITIVES:
        return {"type": _PRIMITIVES[hint]}
    if origin is Literal:
        values = list(get_args(hint))
        return {"type": _PRIMITIVES.get(type(values[0]), "string"), "enum": values}
    if origin in (list, tuple, set, typing.Sequence) or hint in (list, tuple):
        args = get_args(hint)
        return {"type": "array", "items": _json_type(args[0]) if args else {}}
    if origin is dict or hint is dict:
        return {"type": "object"}
    if origin in (typing.Union, types.UnionType):
        options = [a for a in get_args(hint) if a is not type(None)]
        if len(options) == 1:
            return _json_type(options[0])
        return {"anyOf": [_json_type(a) for a in options]}
    return {"type": "string"}


def _doc_parts(doc: str) -> tuple[str, dict[str, str]]:
    """Summary and per-argument descriptions from a Google-style docstring."""
    doc = inspect.cleandoc(doc or "")
    summary_lines, params, section = [], {}, None
    current = None
    for line in doc.splitlines():
        stripped = line.strip()
        if re.match(r"^(Args|Arguments|Parameters):\s*$", stripped):
            section = "args"
            continue
        if re.match(r"^(Returns|Raises|Yields|Examples?):\s*$", stripped):
            section = "other"
            continue
        if section == "args":
            m = re.match(r"^(\w+)(?:\s*\(.*?\))?:\s*(.*)$", stripped)
            if m and line.startswith((" ", "\t")) and not line.startswith(("        ", "\t\t")):
                current = m.group(1)
                params[current] = m.group(2)
            elif current and stripped:
                params[current] += " " + stripped
        elif section is None:
            summary_lines.append(line)
    return " ".join(s.strip() for s in summary_lines if s.strip()), params


def schema_for(fn: ToolFn) -> tuple[str, dict[str, Any]]:
    """The description and JSON schema of a tool function's arguments."""
    summary, docs = _doc_parts(fn.__doc__ or "")
    hints = typing.get_type_hints(fn)
    props: dict[str, Any] = {}
    required: list[str] = []
    for name, param in inspect.signature(fn).parameters.items():
        if name in ("self", "ctx") or param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        prop = _json_type(hints.get(name, str))
        if name in docs:
            prop["description"] = docs[name]
        if param.default is inspect.Parameter.empty:
            required.append(name)
        elif param.default is not None:
            prop["default"] = param.default
        props[name] = prop
    return summary, {"type": "object", "properties": props, "required": required}


_F = typing.TypeVar("_F", bound=ToolFn)


@typing.overload
def tool(fn: _F) -> _F: ...


@typing.overload
def tool(
    fn: None = None,
    *,
    name: str | None = None,
    dangerous: bool = False,
    effects: Iterable[str] | None = None,
    trusted_output: bool = False,
) -> Callable[[_F], _F]: ...


def tool(
    fn: ToolFn | None = None,
    *,
    name: str | None = None,
    dangerous: bool = False,
    effects: Iterable[str] | None = None,
    trusted_output: bool = False,
) -> Any:
    """Mark a function as a tool: ``@tool`` or ``@tool(name=..., effects=["persist"])``.

    ``effects`` uses the vocabulary of :mod:`bot.effects`; ``dangerous=True`` always asks.
    """

    def wrap(f: ToolFn) -> ToolFn:
        description, params = schema_for(f)
        f.__oc_tool__ = Tool(  # type: ignore[attr-defined]
            name or f.__name__,
            description,
            params,
            f,
            dangerous=dangerous,
            effects=None if effects is None else frozenset(effects),
            trusted_output=trusted_output,
        )
        return f

    return wrap(fn) if fn is not None else wrap


class ToolRegistry:
    """Every tool known to the server, by name; plugins add theirs."""

    def __init__(self, tools: Iterable[Tool] = ()) -> None:
        self._tools: dict[str, Tool] = {}
        for t in tools:
            self.add(t)

    def add(self, item: Tool | ToolFn, *, plugin: str | None = None) -> Tool:
        """Register a :class:`Tool` or a ``@tool``-decorated function."""
        t = item if isinstance(item, Tool) else getattr(item, "__oc_tool__", None)
        if t is None:
            raise TypeError(f"{item!r} is not a tool (decorate it with @tool)")
        if plugin is not None:
            t.plugin = plugin
        if t.name in self._tools and self._tools[t.name].fn is not t.fn:
            raise ValueError(f"two tools are named {t.name!r}")
        self._tools[t.name] = t
        return t

    def remove_plugin(self, plugin: str) -> None:
        """Forget every tool a plugin registered."""
        self._tools = {k: v for k, v in self._tools.items() if v.plugin != plugin}

    def get(self, name: str) -> Tool | None:
        """The tool called ``name``, if any."""
        return self._tools.get(name)

    def __iter__(self) -> typing.Iterator[Tool]:
        return iter(self._tools.values())

    def __len__(self) -> int:
        return len(self._tools)

    def specs(self, allowed: Callable[[Tool], bool] | None = None) -> list[dict[str, Any]]:
        """Ollama ``tools`` entries for the tools ``allowed`` accepts (all by default)."""
        return [t.spec for t in self._tools.values() if allowed is None or allowed(t)]
