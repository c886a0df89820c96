"""A safe arithmetic evaluator: a whitelist walk over Python's AST, never ``eval``."""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable
from typing import Any

from opencomputer import ToolError, tool

_BINARY: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_UNARY: dict[type[ast.unaryop], Callable[[Any], Any]] = {
    ast.UAdd: operator.pos,
    ast.USub: operator.neg,
}
_FUNCS: dict[str, Callable[..., Any]] = {
    name: getattr(math, name)
    for name in ("sqrt", "sin", "cos", "tan", "log", "log10", "exp", "floor", "ceil", "factorial")
} | {"abs": abs, "round": round, "min": min, "max": max}
_CONSTS = {"pi": math.pi, "e": math.e, "tau": math.tau}


# The calculator runs in the server's event loop (isolation "none": a sandbox per sum would
# cost more than the sum), so no step may take long: integers are bounded *before* an
# operation that could make them huge (``((9**999)**999)**4`` is refused, not computed).
MAX_BITS = 10_000  # about 3,000 decimal digits
MAX_LENGTH = 1_000  # characters of expression
TOO_LARGE = "the result would be too large (more than about 3,000 digits)"


def _bits(value: Any) -> int:
    return abs(value).bit_length() if isinstance(value, int) else 0


def _check_size(op: ast.operator, left: Any, right: Any) -> None:
    """Refuse an integer operation whose result would exceed :data:`MAX_BITS`."""
    if isinstance(op, ast.Pow):
        if abs(right) > 1000:
            raise ToolError("exponent too large (at most 1000)")
        if isinstance(left, int) and isinstance(right, int) and right > 0:
            if abs(left) > 1 and _bits(left) * right > MAX_BITS:
                raise ToolError(TOO_LARGE)
    elif isinstance(op, ast.Mult) and _bits(left) + _bits(right) > MAX_BITS:
        raise ToolError(TOO_LARGE)


def _eval(node: ast.AST) -> Any:
    if isinstance(node, ast.Expression):
        return _eval(node.body)
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
        return node.value
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _eval(node.left), _eval(node.right)
        _check_size(node.op, left, right)
        return _BINARY[type(node.op)](left, right)
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _UNARY[type(node.op)](_eval(node.operand))
    if isinstance(node, ast.Name) and node.id in _CONSTS:
        return _CONSTS[node.id]
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in _FUNCS:
        args = [_eval(a) for a in node.args]
        if node.func.id == "factorial" and any(abs(a) > 1000 for a in args):
            raise ToolError("factorial argument too large (at most 1000)")
        value = _FUNCS[node.func.id](*args)
        if _bits(value) > MAX_BITS:
            raise ToolError(TOO_LARGE)
        return value
    raise ToolError(f"unsupported expression element: {ast.dump(node)[:60]}")


@tool
def calculate(expression: str) -> str:
    """Evaluate an arithmetic expression exactly.

    Args:
        expression: Arithmetic such as (3 + 4) * 2 ** 10 / sqrt(2); supports + - * / // % **,
            sqrt, sin, cos, tan, log, exp, abs, round, min, max, pi and e.
    """
    if len(expression) > MAX_LENGTH:
        raise ToolError(f"expression too long (at most {MAX_LENGTH} characters)")
    try:
        tree = ast.parse(expression.replace("^", "**"), mode="eval")
        value = _eval(tree)
        if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
            value = int(value)
        return str(value)
    except ToolError:
        raise
    except (
        SyntaxError,
        ZeroDivisionError,
        ValueError,
        OverflowError,
        TypeError,
        RecursionError,
        MemoryError,
    ) as exc:
        raise ToolError(f"cannot evaluate {expression!r}: {exc}") from exc
