#!/usr/bin/env bash
# System packages the tests and the server need beyond Python: bubblewrap (`bwrap`), the sandbox
# plugins run in, and libseccomp2, its process filter; for the tests, ngircd, the real IRC server
# tests/channels runs the example IRC channel (examples/opencomputer-irc) against; and chromium,
# the real browser tests/web drives through Playwright (executable_path, no browser download);
# and espeak-ng, the speech synthesizer whose voice tests/media/test_speech_real.py transcribes.
# Idempotent and quiet: does nothing when everything is already installed.
set -euo pipefail
# libseccomp (the sandbox's process filter, loaded through ctypes) usually comes with apt/systemd
has_seccomp() { ldconfig -p 2>/dev/null | grep 'libseccomp\.so\.2' >/dev/null; }
has_ngircd() { command -v ngircd >/dev/null 2>&1 || [ -x /usr/sbin/ngircd ]; }
has_chromium() { command -v chromium >/dev/null 2>&1; }
has_espeak() { command -v espeak-ng >/dev/null 2>&1; }
if command -v bwrap >/dev/null 2>&1 && has_seccomp && has_ngircd && has_chromium && has_espeak; then
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "bubblewrap (bwrap) is missing: install it with your package manager" >&2
  exit 1
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get install -y -qq bubblewrap libseccomp2 ngircd chromium espeak-ng >/dev/null 2>&1 \
  || { $SUDO apt-get update -qq >/dev/null \
    && $SUDO apt-get install -y -qq bubblewrap libseccomp2 ngircd chromium espeak-ng >/dev/null; }
# The tests start their own ngircd on a free port: no system IRC daemon on 6667, please.
if command -v systemctl >/dev/null 2>&1; then
  $SUDO systemctl disable --now ngircd >/dev/null 2>&1 || true
fi
command -v bwrap >/dev/null 2>&1 && has_seccomp && has_ngircd && has_chromium && has_espeak
