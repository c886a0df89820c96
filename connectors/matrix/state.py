"""What the Matrix connector keeps across restarts, in ``OC_DATA_DIR/matrix/``.

``session.json`` holds the device id and access token of the first login, so a restart reuses
the device instead of piling up new ones. ``sync.json`` holds the sync token (``next_batch``),
written only after every event of a sync batch was accepted, so a restart neither answers twice
nor misses anything; plus the reaction ids that a later redaction must be resolved against.
Both files are written atomically with mode 0600: the token is a credential.
"""

from __future__ import annotations

import json
import logging
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["MatrixSession", "StateFiles", "SyncState"]

logger = logging.getLogger(__name__)

MAX_REACTIONS = 5000
"""Reaction ids remembered for redactions; older ones fall off (their removal is then lost)."""


@dataclass(slots=True)
class MatrixSession:
    """Login result worth keeping."""

    homeserver: str
    user_id: str
    device_id: str
    access_token: str = field(repr=False)


@dataclass(slots=True)
class SyncState:
    """Sync position and the bookkeeping that must survive with it."""

    next_batch: str | None = None
    reactions: dict[str, list[str]] = field(default_factory=dict)
    """reaction event id -> [room id, reacted-to event id, key, sender]."""
    encrypted_notified: list[str] = field(default_factory=list)
    """Rooms already told that the bot cannot read encrypted messages."""

    def remember_reaction(
        self, event_id: str, room_id: str, target: str, key: str, user: str
    ) -> None:
        """Record a reaction so its redaction can be turned into a removal."""
        self.reactions[event_id] = [room_id, target, key, user]
        while len(self.reactions) > MAX_REACTIONS:
            del self.reactions[next(iter(self.reactions))]


class StateFiles:
    """The two JSON files of one bot account."""

    def __init__(self, data_dir: Path, user_id: str) -> None:
        safe = re.sub(r"[^A-Za-z0-9._-]", "_", user_id.lstrip("@"))
        self.dir = Path(data_dir) / "matrix" / safe
        self.session_path = self.dir / "session.json"
        self.sync_path = self.dir / "sync.json"

    def load_session(self, homeserver: str, user_id: str) -> MatrixSession | None:
        """Return the stored login, if it belongs to this homeserver and user."""
        data = self._read(self.session_path)
        if not data:
            return None
        try:
            session = MatrixSession(**data)
        except TypeError:
            logger.warning("ignoring unreadable %s", self.session_path)
            return None
        if session.homeserver != homeserver or session.user_id != user_id:
            return None
        return session

    def save_session(self, session: MatrixSession) -> None:
        """Persist the login (mode 0600)."""
        self._write(self.session_path, asdict(session))

    def load_sync(self) -> SyncState:
        """Return the stored sync position (empty on the first start)."""
        data = self._read(self.sync_path)
        try:
            return SyncState(**data) if data else SyncState()
        except TypeError:
            logger.warning("ignoring unreadable %s", self.sync_path)
            return SyncState()

    def save_sync(self, state: SyncState) -> None:
        """Persist the sync position (mode 0600)."""
        self._write(self.sync_path, asdict(state))

    @staticmethod
    def _read(path: Path) -> dict[str, Any] | None:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            logger.warning("ignoring unreadable %s: %s", path, type(exc).__name__)
            return None
        return data if isinstance(data, dict) else None

    def _write(self, path: Path, data: dict[str, Any]) -> None:
        self.dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o600)  # O_CREAT's mode does not apply to a file left by a crash
        os.replace(tmp, path)
