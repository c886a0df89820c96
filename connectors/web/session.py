"""Who a browser is: a random visitor id in a signed cookie, and the CSRF token tied to it.

The cookie holds ``<id>.<hmac(id)>`` under a server secret kept in the data directory
(``web-chat.key``, created on first use, mode 0600), so only ids this server issued are taken:
a visitor cannot pick someone else's id, and an id never changes once issued (it is the user
``web:<id>`` that access control and pairing know). Every state-changing request also carries
``X-CSRF-Token: hmac("csrf", id)``: a page on another site can make the browser send the cookie
(it cannot here, SameSite=Strict, but older browsers ignore that) yet can neither read the token
nor set the header without a CORS preflight this app never answers.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
from pathlib import Path

__all__ = ["COOKIE", "KEY_FILE", "Sessions", "load_secret"]

COOKIE = "oc_web"
KEY_FILE = "web-chat.key"
_ID = re.compile(r"^[0-9a-f]{32}$")
_SIG = re.compile(r"^[0-9a-f]{32}$")


def load_secret(data_dir: Path) -> bytes:
    """The server secret, created once (several processes sharing the folder agree on it)."""
    path = data_dir / KEY_FILE
    data_dir.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass
    else:
        with os.fdopen(fd, "w") as out:
            out.write(secrets.token_hex(32) + "\n")
    secret = path.read_text().strip()
    if len(secret) < 32:
        raise ValueError(f"{path} holds no usable secret; delete it and restart (visitors re-pair)")
    return secret.encode()


class Sessions:
    """Issues and checks visitor cookies and CSRF tokens (stateless: nothing is stored)."""

    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    def _mac(self, purpose: str, visitor: str) -> str:
        return hmac.new(self._secret, f"{purpose}:{visitor}".encode(), hashlib.sha256).hexdigest()

    def issue(self) -> tuple[str, str]:
        """A new visitor id and its cookie value."""
        visitor = secrets.token_hex(16)
        return visitor, f"{visitor}.{self._mac('visitor', visitor)[:32]}"

    def visitor(self, cookie: str | None) -> str | None:
        """The visitor a cookie names, or None when it is missing, malformed or forged."""
        if not cookie:
            return None
        visitor, _, sig = cookie.partition(".")
        if not _ID.match(visitor) or not _SIG.match(sig):
            return None
        if not hmac.compare_digest(sig, self._mac("visitor", visitor)[:32]):
            return None
        return visitor

    def csrf(self, visitor: str) -> str:
        """The token a visitor's page sends with every POST."""
        return self._mac("csrf", visitor)

    def csrf_ok(self, visitor: str, token: str | None) -> bool:
        """Whether ``token`` is this visitor's (constant time)."""
        return bool(token) and hmac.compare_digest(
            (token or "").encode("ascii", "replace"), self.csrf(visitor).encode()
        )
