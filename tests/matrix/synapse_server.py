"""A real Synapse homeserver on loopback for the Matrix tests.

Synapse lives in its own venv (``.venv-synapse/``, installed by ``scripts/synapse.sh``) because
its pins would fight ours. The server gets a throw-away directory, one plain-HTTP client
listener on a free port, SQLite, no federation key servers, no presence, every rate limit
raised and cheap password hashing: it starts in about two seconds.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
VENV = REPO / ".venv-synapse"
INSTALL_SCRIPT = REPO / "scripts" / "synapse.sh"

_RATE = {"per_second": 1000, "burst_count": 1000}
_RATE_LIMITS = {
    "rc_message": _RATE,
    "rc_registration": _RATE,
    "rc_registration_token_validity": _RATE,
    "rc_login": {"address": _RATE, "account": _RATE, "failed_attempts": _RATE},
    "rc_admin_redaction": _RATE,
    "rc_joins": {"local": _RATE, "remote": _RATE},
    "rc_joins_per_room": _RATE,
    "rc_3pid_validation": _RATE,
    "rc_invites": {"per_room": _RATE, "per_user": _RATE, "per_issuer": _RATE},
    "rc_third_party_invite": _RATE,
    "rc_media_create": _RATE,
    "rc_room_creation": _RATE,
    "rc_key_requests": _RATE,
    "rc_presence": {"per_user": _RATE},
    "rc_delayed_event_mgmt": _RATE,
    "rc_reports": _RATE,
}


class SynapseUnavailable(Exception):
    """Synapse could not be installed or started here."""


@dataclass(frozen=True, slots=True)
class Account:
    """A user registered through the shared-secret admin API."""

    user_id: str
    password: str
    access_token: str
    device_id: str


def ensure_installed(timeout: float = 600) -> Path:
    """Return the venv's python, running the install script first when Synapse is missing."""
    python = VENV / "bin" / "python"
    if python.exists() and _importable(python):
        return python
    env = {**os.environ, "PYTHON": sys.executable}
    try:
        done = subprocess.run(
            ["bash", str(INSTALL_SCRIPT)],
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise SynapseUnavailable(f"installing matrix-synapse failed: {exc}") from exc
    if done.returncode != 0 or not _importable(python):
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        raise SynapseUnavailable("installing matrix-synapse failed: " + " | ".join(tail))
    return python


def _importable(python: Path) -> bool:
    probe = subprocess.run([str(python), "-c", "import synapse"], capture_output=True, check=False)
    return probe.returncode == 0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class SynapseServer:
    """One Synapse process serving ``http://127.0.0.1:<port>`` for server name ``localhost``."""

    def __init__(self, python: Path, workdir: Path) -> None:
        self.python = python
        self.workdir = workdir
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.shared_secret = secrets.token_hex(16)
        self._proc: subprocess.Popen[bytes] | None = None

    def _configure(self) -> list[Path]:
        base = self.workdir / "homeserver.yaml"
        subprocess.run(
            [
                str(self.python),
                "-m",
                "synapse.app.homeserver",
                "--server-name=localhost",
                f"--config-path={base}",
                f"--data-directory={self.workdir}",
                "--generate-config",
                "--report-stats=no",
            ],
            cwd=self.workdir,
            capture_output=True,
            check=True,
        )
        overrides = {
            "listeners": [
                {
                    "port": self.port,
                    "bind_addresses": ["127.0.0.1"],
                    "type": "http",
                    "tls": False,
                    "x_forwarded": False,
                    "resources": [{"names": ["client"], "compress": False}],
                }
            ],
            "database": {
                "name": "sqlite3",
                "args": {"database": str(self.workdir / "homeserver.db")},
            },
            "registration_shared_secret": self.shared_secret,
            "trusted_key_servers": [],
            "suppress_key_server_warning": True,
            "presence": {"enabled": False},
            "bcrypt_rounds": 4,
            "enable_registration": False,
            "report_stats": False,
            **_RATE_LIMITS,
        }
        extra = self.workdir / "overrides.yaml"
        extra.write_text(json.dumps(overrides, indent=1))  # JSON is YAML
        return [base, extra]

    def start(self, timeout: float = 60) -> None:
        """Generate the config, start the process and wait until the client API answers."""
        configs = self._configure()
        args = [str(self.python), "-m", "synapse.app.homeserver"]
        for path in configs:
            args.append(f"--config-path={path}")
        log = (self.workdir / "stdout.log").open("wb")
        self._proc = subprocess.Popen(args, cwd=self.workdir, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                tail = (self.workdir / "stdout.log").read_text(errors="replace")[-2000:]
                raise SynapseUnavailable(f"synapse exited with {self._proc.returncode}: {tail}")
            try:
                with urllib.request.urlopen(f"{self.url}/_matrix/client/versions", timeout=2) as r:
                    if r.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.1)  # polling a child process for readiness; no event to await
        self.stop()
        raise SynapseUnavailable(f"synapse did not answer within {timeout:.0f} s")

    def stop(self) -> None:
        """Terminate the process (SIGTERM, then SIGKILL after 10 s)."""
        if self._proc is None:
            return
        self._proc.terminate()
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        self._proc = None

    def register(self, localpart: str, password: str = "", *, admin: bool = False) -> Account:
        """Create a user with the shared-secret admin API (no registration flows)."""
        password = password or secrets.token_hex(8)
        endpoint = f"{self.url}/_synapse/admin/v1/register"
        with urllib.request.urlopen(endpoint, timeout=10) as resp:
            nonce = json.load(resp)["nonce"]
        signed = "\x00".join([nonce, localpart, password, "admin" if admin else "notadmin"])
        mac = hmac.new(self.shared_secret.encode(), signed.encode(), hashlib.sha1)
        body = {
            "nonce": nonce,
            "username": localpart,
            "password": password,
            "admin": admin,
            "mac": mac.hexdigest(),
        }
        request = urllib.request.Request(
            endpoint,
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=10) as resp:
            data = json.load(resp)
        return Account(data["user_id"], password, data["access_token"], data["device_id"])
