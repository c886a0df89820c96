"""Logging in: reuse the stored device, else the configured token, else the password.

Logging in with a password on every start would create a new device each time (and, with
encryption, new keys every other user's client has to learn), so the first login's device id
and access token are stored and restored afterwards.
"""

from __future__ import annotations

import logging

from nio import AsyncClient, LoginError, WhoamiError

from opencomputer.connectors.matrix.state import MatrixSession, StateFiles

__all__ = ["DEVICE_NAME", "LoginRefused", "TokenRejected", "log_in"]

logger = logging.getLogger(__name__)

DEVICE_NAME = "opencomputer"
_REFUSED = {"M_FORBIDDEN", "M_USER_DEACTIVATED", "M_INVALID_USERNAME", "M_UNKNOWN_TOKEN"}


class LoginRefused(Exception):
    """The homeserver refused the credentials: retrying will not help, the operator must act."""


class TokenRejected(Exception):
    """A stored access token stopped working (logged out elsewhere); log in again."""


async def log_in(
    client: AsyncClient,
    files: StateFiles,
    *,
    password: str | None,
    access_token: str | None,
) -> MatrixSession:
    """Make ``client`` logged in; raise :class:`LoginRefused` for bad credentials.

    Transport failures propagate as they are, for the caller's backoff.
    """
    homeserver, user_id = client.homeserver, client.user
    stored = files.load_session(homeserver, user_id)
    if access_token:
        if stored is not None and stored.access_token == access_token:
            return _restore(client, stored)
        return await _adopt_token(client, files, access_token)
    if stored is not None:
        return _restore(client, stored)
    if not password:
        raise LoginRefused("neither MATRIX_PASSWORD nor MATRIX_ACCESS_TOKEN is set")
    if stored is None and files.session_path.exists():
        logger.info("stored Matrix session is for another account; logging in afresh")
    resp = await client.login(password=password, device_name=DEVICE_NAME)
    if isinstance(resp, LoginError):
        if resp.status_code in _REFUSED:
            raise LoginRefused(f"login as {user_id} refused: {resp.status_code} {resp.message}")
        raise ConnectionError(f"login failed: {resp.status_code} {resp.message}")
    session = MatrixSession(homeserver, resp.user_id, resp.device_id, resp.access_token)
    files.save_session(session)
    logger.info("logged in to %s as %s (new device %s)", homeserver, user_id, resp.device_id)
    return session


def _restore(client: AsyncClient, session: MatrixSession) -> MatrixSession:
    client.restore_login(session.user_id, session.device_id, session.access_token)
    logger.info("reusing Matrix device %s of %s", session.device_id, session.user_id)
    return session


async def _adopt_token(client: AsyncClient, files: StateFiles, token: str) -> MatrixSession:
    """Use ``MATRIX_ACCESS_TOKEN``: ask the homeserver which user and device it belongs to."""
    client.access_token = token
    resp = await client.whoami()
    if isinstance(resp, WhoamiError):
        if resp.status_code in _REFUSED:
            raise LoginRefused(f"MATRIX_ACCESS_TOKEN was refused: {resp.status_code}")
        raise ConnectionError(f"whoami failed: {resp.status_code} {resp.message}")
    if resp.user_id != client.user:
        raise LoginRefused(
            f"MATRIX_ACCESS_TOKEN belongs to {resp.user_id}, not MATRIX_USER_ID {client.user}"
        )
    if not resp.device_id:
        raise LoginRefused("MATRIX_ACCESS_TOKEN has no device; create it by logging in")
    session = MatrixSession(client.homeserver, resp.user_id, resp.device_id, token)
    client.restore_login(session.user_id, session.device_id, token)
    files.save_session(session)
    logger.info("using MATRIX_ACCESS_TOKEN of %s (device %s)", resp.user_id, resp.device_id)
    return session
