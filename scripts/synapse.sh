#!/usr/bin/env bash
# Install a Synapse homeserver into .venv-synapse/ (git-ignored) for the Matrix tests.
# Idempotent: does nothing when Synapse is already importable there. CI calls this before the
# test run; tests/matrix/ calls it too when the venv is missing. PYTHON picks the interpreter.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${SYNAPSE_VENV:-.venv-synapse}"
PY="${PYTHON:-python3}"
if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c "import synapse" 2>/dev/null; then
    exit 0
fi
"$PY" -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "matrix-synapse>=1.100,<2"
"$VENV/bin/python" -c "import synapse; print('synapse', synapse.__version__, 'installed in $VENV')"
