"""API tokens: created once (shown once), stored only as a SHA-256, listed, revoked.

A token is ``dnt_`` and 43 URL-safe characters (256 random bits), so a plain SHA-256 is enough to
store it: there is nothing to guess. Unknown, revoked and expired tokens are all refused alike.
:class:`TokenCache` keeps the rows of tokens seen, per store revision (creating or revoking a
token bumps it), so authenticating costs no query of its own.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from detnat.errors import Conflict, InvalidInput, NotFound
from detnat.service import audit
from detnat.service.audit import Actor, check_reference
from detnat.service.clock import Clock, utcnow
from detnat.service.times import format_instant
from detnat.store import repo
from detnat.store.models import ROLES, ApiToken

PREFIX = "dnt_"
_TOKEN = re.compile(r"dnt_[A-Za-z0-9_-]{43}")
_EXPIRY = re.compile(r"([0-9]{1,5})([dhm])")  # ASCII digits only


def digest(token: str) -> str:
    return hashlib.sha256(token.encode("ascii")).hexdigest()


def parse_expiry(text: str, *, field: str = "--expires") -> timedelta:
    """``90d``, ``12h``, ``30m``."""
    match = _EXPIRY.fullmatch(text.strip())
    if match is None:
        raise InvalidInput(f"{text!r} is not a duration such as 90d, 12h or 30m", field=field)
    amount, unit = int(match[1]), match[2]
    value = {"d": timedelta(days=amount), "h": timedelta(hours=amount)}.get(
        unit, timedelta(minutes=amount)
    )
    if not timedelta(minutes=1) <= value <= timedelta(days=3650):
        raise InvalidInput("must be between 1 minute and 3650 days", field=field)
    return value


def create_token(
    session: Session,
    *,
    name: str,
    role: str,
    by: Actor,
    person: str | None = None,
    expires: timedelta | None = None,
    request_id: str = "-",
    clock: Clock = utcnow,
) -> tuple[str, ApiToken]:
    """A new token (audited: ``token.create``): (the token itself, shown once; its row).

    ``person`` is who holds it (default: its ``name``); names are unique among tokens that are not
    revoked. The token records who made it (``created_by``, ``created_by_token``): four eyes
    refuses approvals with a token the publisher made.
    """
    check_reference(name, field="name", limit=100)
    person = check_reference(person if person is not None else name, field="person", limit=100)
    if role not in ROLES:
        raise InvalidInput(f"{role!r} is not a role ({', '.join(ROLES)})", field="role")
    now = clock()
    token = PREFIX + secrets.token_urlsafe(32)
    row = ApiToken(
        name=name,
        role=role,
        token_sha256=digest(token),
        created_at=now,
        created_by=by.name,
        created_by_token=by.token_id,
        expires_at=now + expires if expires is not None else None,
        person=person,
    )
    session.add(row)
    repo.flush(session)
    audit.record(
        session, by, "token.create", request_id=request_id, detail={"record": token_record(row)}
    )
    return token, row


def revoke_token(
    session: Session, token_id: int, *, by: Actor, request_id: str = "-", clock: Clock = utcnow
) -> ApiToken:
    """Revoke a token for good (audited: ``token.revoke``)."""
    row = session.get(ApiToken, token_id, with_for_update=True)
    if row is None:
        raise NotFound(f"no token {token_id}", field="token")
    if row.revoked_at is not None:
        raise Conflict(f"token {token_id} was revoked at {format_instant(row.revoked_at)}")
    row.revoked_at, row.revoked_by = clock(), by.name
    repo.flush(session)
    audit.record(
        session,
        by,
        "token.revoke",
        request_id=request_id,
        detail={"record": revocation_record(row)},
    )
    return row


def token_record(row: ApiToken) -> dict[str, object]:
    """What ``token.create`` records of a token (never the token: its SHA-256)."""
    return {
        "token_id": row.id,
        "name": row.name,
        "person": row.person,
        "role": row.role,
        "token_sha256": row.token_sha256,
        "created_by": row.created_by,
        "created_by_token": row.created_by_token,
        "created_at": format_instant(row.created_at),
        "expires_at": format_instant(row.expires_at) if row.expires_at else None,
    }


def revocation_record(row: ApiToken) -> dict[str, object]:
    """What ``token.revoke`` records."""
    return {
        "token_id": row.id,
        "revoked_at": format_instant(row.revoked_at) if row.revoked_at else None,
        "revoked_by": row.revoked_by,
    }


def token_json(row: ApiToken, now: datetime | None = None) -> dict[str, object]:
    moment = now or utcnow()
    state = "active"
    if row.revoked_at is not None:
        state = "revoked"
    elif row.expires_at is not None and row.expires_at <= moment:
        state = "expired"
    return {
        "id": row.id,
        "name": row.name,
        "person": row.person,
        "role": row.role,
        "state": state,
        "created_at": format_instant(row.created_at),
        "created_by": row.created_by,
        "expires_at": format_instant(row.expires_at) if row.expires_at else None,
        "revoked_at": format_instant(row.revoked_at) if row.revoked_at else None,
        "revoked_by": row.revoked_by,
    }


@dataclass(frozen=True)
class _Seen:
    token_id: int
    name: str  # the person who holds the token: who the audit log and four eyes name
    role: str
    expires_at: datetime | None
    revoked: bool


class TokenCache:
    """Token rows by hash, valid for one store revision."""

    def __init__(self) -> None:
        self._revision = -1
        self._rows: dict[str, _Seen | None] = {}
        self._lock = threading.Lock()

    def authenticate(
        self, session: Session, token: str, *, revision: int, now: datetime
    ) -> Actor | None:
        """The token's holder, or None (unknown, revoked, expired: no difference shown)."""
        if not _TOKEN.fullmatch(token):
            return None
        key = digest(token)
        known, seen = self._cached(key, revision)
        if not known:
            row = repo.token_by_hash(session, key)
            seen = (
                _Seen(row.id, row.person, row.role, row.expires_at, row.revoked_at is not None)
                if row is not None
                else None
            )
            self._remember(key, revision, seen)
        return _holder(seen, now)

    async def authenticate_async(
        self, conn: repo.AsyncConn, token: str, *, revision: int, now: datetime
    ) -> Actor | None:
        """:meth:`authenticate` on an async connection (the lookup path)."""
        if not _TOKEN.fullmatch(token):
            return None
        key = digest(token)
        known, seen = self._cached(key, revision)
        if not known:
            row = await repo.token_row_async(conn, key)
            seen = _Seen(row[0], row[1], row[2], row[3], row[4] is not None) if row else None
            self._remember(key, revision, seen)
        return _holder(seen, now)

    def peek(self, token: str, *, revision: int, now: datetime) -> tuple[bool, Actor | None]:
        """(known, holder) from the cache alone, for the lookup path to take a connection only
        when it must: ``known`` False means the row has to be read (:meth:`authenticate_async`).
        """
        if not _TOKEN.fullmatch(token):
            return True, None
        known, seen = self._cached(digest(token), revision)
        return known, _holder(seen, now) if known else None

    def _cached(self, key: str, revision: int) -> tuple[bool, _Seen | None]:
        with self._lock:
            if revision != self._revision:
                self._rows.clear()
                self._revision = revision
            return key in self._rows, self._rows.get(key)

    def _remember(self, key: str, revision: int, seen: _Seen | None) -> None:
        with self._lock:
            if revision == self._revision and len(self._rows) < 100_000:
                self._rows[key] = seen


def _holder(seen: _Seen | None, now: datetime) -> Actor | None:
    if seen is None or seen.revoked:
        return None
    if seen.expires_at is not None and seen.expires_at <= now:
        return None
    return Actor(name=seen.name, role=seen.role, token_id=seen.token_id)


__all__ = ["TokenCache", "create_token", "parse_expiry", "revoke_token", "token_json"]
