"""A code interpreter: run a Python snippet, return what it printed and the files it saved.

The snippet runs in this plugin's sandbox: no network, read-only files, CPU/memory/time limits.
Like OpenAI's code interpreter, each run has a fresh output folder (its working directory, and
``OUT``); the plain files it leaves there go to the chat after the answer (``outfolder.py``).
matplotlib draws without a display (``MPLBACKEND=Agg``) and keeps its font cache in the
plugin's data folder, since the sandbox's home is a ``/tmp`` that lives for one run.
"""

from __future__ import annotations

import ast
import contextlib
import io
import os
import shutil
import sys
import tempfile
import traceback
import warnings

from opencomputer import OutFile, PluginContext, tool

from .outfolder import OutputFolder

MAX_OUTPUT = 8000


def _run(code: str, scope: dict[str, object]) -> None:
    """Execute ``code``; echo the value of a final expression like an interactive prompt."""
    tree = ast.parse(code, mode="exec")
    last = tree.body[-1] if tree.body and isinstance(tree.body[-1], ast.Expr) else None
    if last is not None:
        tree.body.pop()
    exec(compile(tree, "<snippet>", "exec"), scope)
    if last is not None:
        value = eval(compile(ast.Expression(last.value), "<snippet>", "eval"), scope)
        if value is not None:
            print(repr(value))


def _prepare(ctx: PluginContext | None, out: str) -> None:
    """Environment for plotting without a display; ``OUT`` names the output folder."""
    os.environ["OUT"] = out
    os.environ["MPLBACKEND"] = "Agg"
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # threads count against the process cap
    if ctx is not None:
        cache = ctx.data_dir / "matplotlib"
        cache.mkdir(parents=True, exist_ok=True)
        os.environ["MPLCONFIGDIR"] = str(cache)
    warnings.filterwarnings("ignore", message=".*non-interactive, and thus cannot be shown")


def _save_open_figures(out: str) -> None:
    """A snippet that drew but only called ``plt.show()`` still gets its charts sent."""
    pyplot = sys.modules.get("matplotlib.pyplot")
    if pyplot is None or os.listdir(out):
        return
    for number in pyplot.get_fignums():
        pyplot.figure(number).savefig(os.path.join(out, f"figure-{number}.png"))


def _execute(code: str, out: str) -> str:
    """Run the snippet in ``out``; its prints, and its error in a few lines if it raised."""
    buffer = io.StringIO()
    home = os.getcwd()
    os.chdir(out)
    with contextlib.redirect_stdout(buffer), contextlib.redirect_stderr(buffer):
        try:
            _run(code, {"__name__": "__main__", "OUT": out})
            _save_open_figures(out)
        except SyntaxError as exc:
            print(f"SyntaxError: {exc}")
        except BaseException:  # the snippet's own errors are output for the model
            lines = traceback.format_exc().splitlines()
            snippet_lines = [ln for ln in lines if "<snippet>" in ln or not ln.startswith("  ")]
            print("\n".join(snippet_lines[-12:]))
        finally:
            os.chdir(home)
    text = buffer.getvalue()
    if len(text) > MAX_OUTPUT:
        text = text[:MAX_OUTPUT] + f"\n... ({len(text) - MAX_OUTPUT} more characters)"
    return text


@tool
def run_python(
    code: str, caption: str = "", ctx: PluginContext | None = None
) -> str | list[str | OutFile]:
    """Run a Python snippet; return what it printed (and the error, if it raised).

    Files the snippet saves in its output folder (its working directory, also the variable
    ``OUT``) are sent to the chat, e.g. ``plt.savefig("plot.png")`` with matplotlib: at most
    10 files, 2.5 MB together. Charts still open at the end are sent too.

    Args:
        code: Python source. The value of a final expression is printed, as in a REPL.
        caption: Text shown with the files it saves (what a chart shows).
    """
    base = tempfile.mkdtemp(prefix="oc-code-")
    out = os.path.join(base, "out")
    folder = OutputFolder(out)
    try:
        _prepare(ctx, out)
        text = _execute(code, out)
        collected = folder.collect(caption.strip())
    finally:
        folder.close()
        shutil.rmtree(base, ignore_errors=True)
    refused = "".join(f"{line}\n" for line in collected.refused)
    if text and refused and not text.endswith("\n"):
        text += "\n"
    text += refused
    if not collected.files:
        return text or "(no output)"
    return [text, *collected.files] if text else list(collected.files)
