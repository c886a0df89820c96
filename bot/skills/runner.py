"""Inside the sandbox: run one Python script a skill ships, as ``python script.py ARGS`` would.

Loaded by the plugin worker (``bot/plugins/worker.py``) after it sealed itself (rlimits, no
network, seccomp: no ``fork``/``execve``), so the script runs in the worker's own interpreter
(``runpy``) rather than as a new process. Its prints (stdout and stderr) are captured and
returned, the tail kept when long.
"""

from __future__ import annotations

import contextlib
import io
import os
import runpy
import sys
import traceback
from typing import Any

__all__ = ["MAX_OUTPUT", "run_script"]

MAX_OUTPUT = 64 * 1024


def run_script(event: dict[str, Any]) -> dict[str, Any]:
    """Run ``event["script"]`` with ``event["args"]`` in ``event["workdir"]``."""
    script = str(event["script"])
    output = io.StringIO()
    code = 0
    os.chdir(str(event["workdir"]))
    sys.argv = [script, *[str(a) for a in event.get("args") or []]]
    sys.path.insert(0, os.path.dirname(script))
    with contextlib.redirect_stdout(output), contextlib.redirect_stderr(output):
        try:
            runpy.run_path(script, run_name="__main__")
        except SystemExit as exc:
            if isinstance(exc.code, int):
                code = exc.code
            elif exc.code is not None:
                print(exc.code, file=sys.stderr)
                code = 1
        except BaseException:
            traceback.print_exc()
            code = 1
    text = output.getvalue()
    if len(text) > MAX_OUTPUT:
        text = "[…]\n" + text[-MAX_OUTPUT:]
    return {"exit": code, "output": text}
