"""A code interpreter: run a Python snippet, return what it printed or the error it raised.

The snippet runs in this plugin's sandbox: no network, read-only files, CPU/memory/time limits.
"""

from __future__ import annotations

import ast
import contextlib
import io
import traceback

from opencomputer import tool

MAX_OUTPUT = 8000


def _run(code: str) -> str:
    """Execute ``code``; echo the value of a final expression like an interactive prompt."""
    tree = ast.parse(code, mode="exec")
    last = tree.body[-1] if tree.body and isinstance(tree.body[-1], ast.Expr) else None
    if last is not None:
        tree.body.pop()
    scope: dict[str, object] = {"__name__": "__main__"}
    exec(compile(tree, "<snippet>", "exec"), scope)
    if last is not None:
        value = eval(compile(ast.Expression(last.value), "<snippet>", "eval"), scope)
        if value is not None:
            print(repr(value))
    return ""


@tool
def run_python(code: str) -> str:
    """Run a Python snippet and return what it printed (and the error, if it raised).

    Args:
        code: Python source. The value of a final expression is printed, as in a REPL.
    """
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        try:
            _run(code)
        except SyntaxError as exc:
            print(f"SyntaxError: {exc}")
        except BaseException:  # the snippet's own errors are output for the model
            lines = traceback.format_exc().splitlines()
            snippet_lines = [ln for ln in lines if "<snippet>" in ln or not ln.startswith("  ")]
            print("\n".join(snippet_lines[-12:]))
    text = out.getvalue()
    if len(text) > MAX_OUTPUT:
        text = text[:MAX_OUTPUT] + f"\n... ({len(text) - MAX_OUTPUT} more characters)"
    return text or "(no output)"
