"""Read a plugin's tools, commands, hooks and jobs from its source without running it.

The server must describe a sandboxed plugin's tools to the model, but importing the plugin in
the server process would run its code unsandboxed. So the module is parsed with :mod:`ast`:
top-level functions carrying our decorators are found, and each signature's annotations are
turned into real types through a whitelist (never ``eval``), then into the same JSON schema
:func:`opencomputer.bot.tools.schema_for` derives at run time.
"""

from __future__ import annotations

import ast
import inspect
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from opencomputer.bot.tools import schema_for

__all__ = ["Described", "DescribedTool", "describe_source", "module_file"]

_TYPES: dict[str, Any] = {
    "str": str,
    "int": int,
    "float": float,
    "bool": bool,
    "list": list,
    "dict": dict,
    "tuple": tuple,
    "set": set,
    "Any": typing.Any,
    "None": None,
    "List": list,
    "Dict": dict,
    "Tuple": tuple,
    "Set": set,
    "Sequence": typing.Sequence,
}
_GENERIC: dict[str, Any] = {
    "list": list,
    "List": list,
    "dict": dict,
    "Dict": dict,
    "tuple": tuple,
    "Tuple": tuple,
    "set": set,
    "Set": set,
    "Sequence": typing.Sequence,
    "Optional": typing.Optional,
    "Union": typing.Union,
    "Literal": typing.Literal,
}


@dataclass(frozen=True, slots=True)
class DescribedTool:
    """A tool as the model sees it."""

    name: str
    function: str
    description: str
    parameters: dict[str, Any]
    dangerous: bool


@dataclass(slots=True)
class Described:
    """Everything a plugin module offers, by kind."""

    tools: dict[str, DescribedTool] = field(default_factory=dict)
    commands: dict[str, str] = field(default_factory=dict)  # command name -> function
    hooks: dict[str, list[str]] = field(default_factory=dict)  # hook -> functions
    jobs: dict[str, str] = field(default_factory=dict)  # job name (function) -> function


def module_file(folder: Path, module: str) -> Path:
    """Return the source file of ``module`` (dotted, relative to the plugin folder)."""
    base = folder.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"module {module!r} not found in {folder}")


def _name(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return ""


def _type(node: ast.AST | None) -> Any:
    """Turn an annotation node into a real type via the whitelist (unknown names: str)."""
    if node is None:
        return str
    if isinstance(node, ast.Constant):
        if node.value is None:
            return None
        if isinstance(node.value, str):  # a quoted annotation
            try:
                return _type(ast.parse(node.value, mode="eval").body)
            except SyntaxError:
                return str
        return str
    if isinstance(node, ast.Name | ast.Attribute):
        return _TYPES.get(_name(node), str)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
        return typing.Union[_type(node.left), _type(node.right)]  # noqa: UP007
    if isinstance(node, ast.Subscript):
        base = _GENERIC.get(_name(node.value))
        items = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
        if base is typing.Literal:
            values = tuple(i.value for i in items if isinstance(i, ast.Constant))
            return typing.Literal[values] if values else str
        if base is None:
            return str
        args = tuple(_type(i) for i in items)
        if base is typing.Optional:
            return args[0] | None
        if base is typing.Union:
            return typing.Union[args]  # noqa: UP007
        return base[args if len(args) > 1 else args[0]]
    return str


def _literal(node: ast.AST) -> Any:
    try:
        return ast.literal_eval(node)
    except ValueError:
        return None


def _stub(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> Any:
    """Build a do-nothing function with ``fn``'s signature, annotations and docstring."""
    args = fn.args
    positional = [*args.posonlyargs, *args.args]
    defaults: list[Any] = [inspect.Parameter.empty] * (len(positional) - len(args.defaults))
    defaults += [_literal(d) for d in args.defaults]
    params, hints = [], {}
    for arg, default in zip(positional, defaults, strict=True):
        params.append(
            inspect.Parameter(arg.arg, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=default)
        )
        hints[arg.arg] = _type(arg.annotation)
    for arg, kw_default in zip(args.kwonlyargs, args.kw_defaults, strict=True):
        value = inspect.Parameter.empty if kw_default is None else _literal(kw_default)
        params.append(inspect.Parameter(arg.arg, inspect.Parameter.KEYWORD_ONLY, default=value))
        hints[arg.arg] = _type(arg.annotation)

    def stub(*_a: Any, **_k: Any) -> None:
        return None

    stub.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    stub.__annotations__ = hints
    stub.__doc__ = ast.get_docstring(fn) or ""
    stub.__name__ = fn.name
    return stub


def _decorator(node: ast.expr) -> tuple[str, list[ast.expr], dict[str, ast.expr]]:
    if isinstance(node, ast.Call):
        return _name(node.func), list(node.args), {k.arg or "": k.value for k in node.keywords}
    return _name(node), [], {}


def describe_source(source: str, filename: str = "<plugin>") -> Described:
    """Find ``@tool``, ``@command``, ``@on_message``/``@on_reaction`` and ``@every`` functions."""
    tree = ast.parse(source, filename=filename)
    out = Described()
    for fn in tree.body:
        if not isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        for deco in fn.decorator_list:
            kind, args, kwargs = _decorator(deco)
            if kind == "tool":
                name = _literal(kwargs["name"]) if "name" in kwargs else fn.name
                dangerous = bool(_literal(kwargs["dangerous"])) if "dangerous" in kwargs else False
                description, params = schema_for(_stub(fn))
                out.tools[str(name)] = DescribedTool(
                    str(name), fn.name, description, params, dangerous
                )
            elif kind == "command" and args:
                out.commands[str(_literal(args[0]))] = fn.name
            elif kind in ("on_message", "on_reaction", "on_forget"):
                out.hooks.setdefault(kind, []).append(fn.name)
            elif kind == "every":
                out.jobs[fn.name] = fn.name
    return out
