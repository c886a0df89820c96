"""Tables of access control: grants (allowed, admin, denied) and pending pairing codes."""

from __future__ import annotations

import time

from sqlmodel import Field, SQLModel

__all__ = ["GrantRow", "PairingRow"]


def _now() -> float:
    return time.time()


class GrantRow(SQLModel, table=True):
    """A decision about one subject: ``user:<platform>:<id>`` or ``chat:<platform>:<id>``.

    ``role`` is ``allowed``, ``admin`` (implies allowed) or ``denied`` (wins over everything
    but ``OC_ADMINS`` and the terminal owner).
    """

    __tablename__ = "access_grants"

    subject: str = Field(primary_key=True, max_length=300)
    role: str = Field(max_length=16)
    granted_by: str = Field(default="", max_length=255)
    note: str = Field(default="", max_length=255)
    at: float = Field(default_factory=_now)


class PairingRow(SQLModel, table=True):
    """A one-time code an unknown user got; an admin's ``/allow <code>`` lets them in."""

    __tablename__ = "pairing_codes"

    code: str = Field(primary_key=True, max_length=16)
    user_key: str = Field(index=True, max_length=300)
    user_name: str = Field(default="", max_length=255)
    address: str = Field(max_length=512)
    created_at: float = Field(default_factory=_now)
    expires_at: float
