#!/usr/bin/env bash
# System packages the tests and the server need beyond Python: bubblewrap (`bwrap`), the sandbox
# plugins run in. Idempotent and quiet: does nothing when everything is already installed.
set -euo pipefail
if command -v bwrap >/dev/null 2>&1; then
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "bubblewrap (bwrap) is missing: install it with your package manager" >&2
  exit 1
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get install -y -qq bubblewrap >/dev/null 2>&1 \
  || { $SUDO apt-get update -qq >/dev/null && $SUDO apt-get install -y -qq bubblewrap >/dev/null; }
command -v bwrap >/dev/null 2>&1
