"""The audit log: who asked what, why, what they were told, on which plans — before it leaves.

Every identity lookup (single or batch) and every change of configuration (realms, publishing,
approvals, tokens, checkpoints) appends one entry, in the same transaction as the work, before the
answer is returned: if the entry cannot be written, the transaction fails and no answer leaves.

An entry's ``content_sha256`` is the SHA-256 of its canonical JSON (:func:`entry_content`),
computed here; Postgres chains it (trigger ``audit_log_chain``, see migration 0003):
``entry_sha256 = sha256("{seq}:{prev_sha256}:{content_sha256}")``.
:func:`detnat.service.integrity.verify` recomputes both, walks the chains and holds the store
against the entries. The hash covers the entry as Postgres stores it (:func:`stored_form`).

One module at this size: entries, their stored form and hashing, and case ownership (whose claims
are audit entries) are one record.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from detnat import __version__
from detnat.errors import Forbidden, InvalidInput
from detnat.service.clock import utcnow
from detnat.service.times import format_instant
from detnat.store import lean

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from detnat.store.async_db import AsyncStore
    from detnat.store.models import AuditCheckpoint, AuditEntry, AuditHead

GENESIS = "0" * 64
CONTENT_FIELDS = (
    "at",
    "actor",
    "role",
    "token_id",
    "action",
    "case",
    "status",
    "request_id",
    "code_version",
    "detail",
)
MAX_CASE = 200
SHOWN = 20  # broken entries named one by one; the rest are counted
_BIDI = set("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


@dataclass(frozen=True)
class Actor:
    """Who acts: a token's holder (``token_id``) or the local operator (the CLI, as admin)."""

    name: str
    role: str
    token_id: int | None = None

    @property
    def owner(self) -> str:
        """The key cases are owned by: the token (not its name), or the local operator's name."""
        return f"token:{self.token_id}" if self.token_id is not None else f"local:{self.name}"


def same_person(a: str, b: str) -> bool:
    """Whether two recorded names name the same person, as four eyes must compare them: case,
    blanks around and inside, compatibility forms (fullwidth letters) and invisible format
    characters (zero-width space, soft hyphen) do not make another person.

    >>> same_person("alice", " ALICE\u200b"), same_person("alice", "alicia")
    (True, False)
    """
    return person_key(a) == person_key(b)


def person_key(name: str) -> str:
    """The form of a name that :func:`same_person` compares."""
    folded = unicodedata.normalize("NFKC", name).casefold()
    visible = "".join(ch for ch in folded if unicodedata.category(ch) != "Cf")
    return " ".join(visible.split())


def local_operator(name: str) -> Actor:
    check_reference(name, field="--as", limit=100)
    return Actor(name=name, role="admin")


def check_reference(value: object, *, field: str, limit: int = MAX_CASE) -> str:
    """A case reference (or similar) that is safe in logs, exports and courts' bundles.

    1 to ``limit`` characters; no control characters (CR/LF, NUL ...), no lone surrogates, no
    line/paragraph separators, no bidirectional overrides or isolates (they make a reference
    read differently from what it is); not blank.
    """
    if not isinstance(value, str):
        raise InvalidInput("must be a string", field=field)
    if not value.strip():
        raise InvalidInput("must not be empty", field=field)
    if len(value) > limit:
        raise InvalidInput(f"longer than {limit} characters", field=field)
    for ch in value:
        kind = unicodedata.category(ch)
        if kind in ("Cc", "Cs", "Zl", "Zp") or ch in _BIDI:
            raise InvalidInput(
                f"contains a control or direction character (U+{ord(ch):04X})", field=field
            )
    return value


def canonical(value: object) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def stored_form(value: object) -> Any:
    r"""``value`` as Postgres' JSONB will give it back: what an entry's hash must cover.

    JSONB stores numbers as ``numeric``: ``-0.0`` comes back as ``0.0`` and ``1e30`` as the integer
    ``1000000000000000000000000000000``, so an integral float becomes that exact integer here;
    other finite floats round-trip. JSONB refuses ``\u0000``, and a lone surrogate cannot be
    encoded: both become U+FFFD. Keys become strings, as JSON has them. NaN and infinities, and
    anything that is not JSON, are a bug of the caller (``ValueError``/``TypeError``): an entry
    must never be hashed as something it is not.

    >>> stored_form({"tolerance_seconds": -0.0, "big": 1e30, "ratio": 0.5})
    {'tolerance_seconds': 0, 'big': 1000000000000000000000000000000, 'ratio': 0.5}
    >>> stored_form(["a\x00b"]) == ["a\ufffdb"]
    True
    """
    text = json.dumps(value, ensure_ascii=False, allow_nan=False)
    if "\\u0000" in text or (not text.isascii() and _SURROGATE.search(text)):
        return _walk(value)  # rare: mend the strings one by one
    return _STORED.decode(text)


def _number(text: str) -> int | float:
    """A float's ``repr`` as JSONB reads it back: integral values as the exact integer."""
    value = float(text)
    if not value.is_integer():
        return value  # a repr that is not integral stays so, and round-trips
    if -_EXACT < value < _EXACT:
        return int(value)  # an integral float below 2**53 is its own decimal value
    return int(Decimal(text))  # 1e+30 is 10**30 in JSONB, not the float's binary value


_EXACT = float(2**53)
# One decoder for every call (json.loads with a parse_float builds one each time); its scanner
# keeps no state between calls that would matter to another thread.
_STORED = json.JSONDecoder(parse_float=_number)


def _walk(value: object) -> Any:
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, str):
        return _safe_text(value)
    if isinstance(value, float):
        return _number(repr(value))
    if isinstance(value, dict):
        return {_safe_text(str(key)): _walk(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_walk(item) for item in value]
    raise TypeError(f"{type(value).__name__} is not JSON (audit detail)")


_SURROGATE = re.compile("[\ud800-\udfff]")
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def _safe_text(text: str) -> str:
    return _UNSTORABLE.sub("\ufffd", text) if _UNSTORABLE.search(text) else text


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def entry_content(
    *,
    at: datetime,
    actor: str,
    role: str,
    token_id: int | None,
    action: str,
    case_ref: str | None,
    status: str | None,
    request_id: str,
    code_version: str,
    detail: dict[str, Any],
) -> dict[str, Any]:
    """Everything an entry says, as hashed (its ``content_sha256`` covers exactly this)."""
    return {
        "at": format_instant(at),
        "actor": actor,
        "role": role,
        "token_id": token_id,
        "action": action,
        "case": case_ref,
        "status": status,
        "request_id": request_id,
        "code_version": code_version,
        "detail": detail,
    }


def content_of(entry: AuditEntry) -> dict[str, Any]:
    return entry_content(
        at=entry.at,
        actor=entry.actor,
        role=entry.role,
        token_id=entry.token_id,
        action=entry.action,
        case_ref=entry.case_ref,
        status=entry.status,
        request_id=entry.request_id,
        code_version=entry.code_version,
        detail=entry.detail,
    )


def chain_hash(seq: int, prev: str, content_sha256: str) -> str:
    return sha256_text(f"{seq}:{prev}:{content_sha256}")


@dataclass(frozen=True)
class Recorded:
    seq: int
    entry_sha256: str
    content: dict[str, Any]
    content_sha256: str
    prev_sha256: str


def _entry(
    actor: Actor,
    action: str,
    *,
    request_id: str,
    detail: dict[str, Any],
    case: str | None,
    status: str | None,
    at: datetime | None,
) -> tuple[dict[str, Any], dict[str, Any], str, str]:
    """(the row's values, the content as hashed, its canonical JSON, its content_sha256)."""
    moment = at or utcnow()
    detail = stored_form(detail)
    content = entry_content(
        at=moment,
        actor=actor.name,
        role=actor.role,
        token_id=actor.token_id,
        action=action,
        case_ref=case,
        status=status,
        request_id=request_id,
        code_version=__version__,
        detail=detail,
    )
    text = canonical(content)
    digest = sha256_text(text)
    values = {
        "seq": 0,  # the chain trigger assigns seq and both chain hashes
        "at": moment,
        "actor": actor.name,
        "role": actor.role,
        "token_id": actor.token_id,
        "action": action,
        "case_ref": case,
        "status": status,
        "request_id": request_id,
        "code_version": __version__,
        "detail": detail,
        "content_sha256": digest,
        "prev_sha256": "",
        "entry_sha256": "",
    }
    return values, content, text, digest


def record(
    session: Session,
    actor: Actor,
    action: str,
    *,
    request_id: str,
    detail: dict[str, Any],
    case: str | None = None,
    status: str | None = None,
    at: datetime | None = None,
) -> Recorded:
    """Append one entry (one round trip: the trigger assigns seq and chains it)."""
    values, content, _, digest = _entry(
        actor, action, request_id=request_id, detail=detail, case=case, status=status, at=at
    )
    from detnat.store import repo  # the sessions' side (the lookup path: record_async)

    seq, entry_sha256, prev_sha256 = repo.append_audit(session, values)
    return Recorded(seq, entry_sha256, content, digest, prev_sha256)


async def record_async(
    store: AsyncStore,
    actor: Actor,
    action: str,
    *,
    revision: int,
    request_id: str,
    detail: dict[str, Any],
    case: str | None = None,
    status: str | None = None,
) -> Recorded:
    """:func:`record` on the lookup path: the entry joins the store's next group commit, and this
    returns once that group's transaction committed (:class:`~detnat.errors.Unavailable` if it
    failed: then no entry of the group exists). ``revision``: the store revision the recorded
    answer was computed at; if the store is at another one when the group is inserted, the entry
    is not written (:class:`~detnat.store.async_db.Stale`)."""
    _, content, text, digest = _entry(
        actor, action, request_id=request_id, detail=detail, case=case, status=status, at=None
    )
    seq, entry_sha256, prev_sha256 = await store.append_audit(text, digest, revision=revision)
    return Recorded(seq, entry_sha256, content, digest, prev_sha256)


# -- cases -----------------------------------------------------------------------------------------


class CaseOwners:
    """Who opened each case, and for which role. Owners never change, so they are cached — but
    only once their row is committed: a case opened by a request that then fails is rolled back
    with it, and must not live on in the cache (issue 10: that let another desk claim it)."""

    def __init__(self) -> None:
        self._owners: dict[str, tuple[str, str]] = {}

    def claim(self, session: Session, case: str, actor: Actor, *, request_id: str) -> str:
        """Open ``case`` for ``actor`` if new (audited: ``case.open``); check it may use it."""
        known = self._owners.get(case)
        if known is None:
            entry = _case_open(case, actor, request_id)
            from detnat.store import repo

            owner, role, opened = repo.claim_case(session, case, actor.owner, actor.role, entry)
            known = (owner, role)
            if not opened:
                self._remember(case, known)
        return self._check(case, known, actor)

    async def claim_async(
        self, store: AsyncStore, case: str, actor: Actor, *, request_id: str, revision: int
    ) -> str:
        """:meth:`claim` on the lookup path: a connection is taken only for a case not known, and
        the case is opened only while the store is at ``revision``, the one ``actor`` was
        authenticated at (else :class:`~detnat.store.lean.Stale`: ask again)."""
        known = self._owners.get(case)
        if known is None:
            entry = _case_open(case, actor, request_id)
            async with store.connection() as conn:
                owner, role, opened = await lean.claim_case_async(
                    conn, case, actor.owner, actor.role, entry, revision=revision
                )
            known = (owner, role)
            if not opened:
                self._remember(case, known)
        return self._check(case, known, actor)

    def _remember(self, case: str, known: tuple[str, str]) -> None:
        if len(self._owners) < 100_000:
            self._owners[case] = known

    @staticmethod
    def _check(case: str, known: tuple[str, str], actor: Actor) -> str:
        owner, role = known
        if role != actor.role:
            raise Forbidden(
                f"this case reference belongs to the {role} role's cases; use a case of your own",
                field="case",
            )
        if actor.role == "abuse" and owner != actor.owner:
            raise Forbidden(
                "this case reference was opened by someone else; use your own case", field="case"
            )
        return owner


def _case_open(case: str, actor: Actor, request_id: str) -> dict[str, Any]:
    """The row values of a ``case.open`` entry (the case row takes the same instant)."""
    now = utcnow()
    detail = {"record": case_record(case, actor.owner, actor.role, now)}
    values, _, _, _ = _entry(
        actor, "case.open", request_id=request_id, detail=detail, case=case, status=None, at=now
    )
    return values


def case_record(case: str, owner: str, role: str, at: datetime) -> dict[str, str]:
    """What ``case.open`` records of a case (and ``audit verify`` holds the row against)."""
    return {"case": case, "owner": owner, "role": role, "created_at": format_instant(at)}


def checkpoint_record(mark: AuditCheckpoint) -> dict[str, Any]:
    """What ``audit.checkpoint`` records of a checkpoint."""
    return {
        "checkpoint": mark.id,
        "seq": mark.seq,
        "sha256": mark.sha256,
        "at": format_instant(mark.at),
        "by": mark.by,
        "plan_heads": mark.plan_heads,
    }


def record_refusal(
    session: Session,
    actor: Actor,
    *,
    request_id: str,
    route: str,
    status: int,
    code: str,
    message: str,
    field: str | None = None,
) -> Recorded:
    """An identity request that was refused (403, 404 on another's answer, 422): who tried what.

    ASVS 16.3.2: authorisation failures are logged. The case is not put in the entry's ``case``
    (the caller may not own it, and must not find it among their case's entries); it is in the
    detail, checked like any reference or replaced when unsafe.
    """
    detail = {
        "route": route[:200],
        "status": status,
        "code": code,
        "field": field[:200] if field else None,
        "message": message[:500],
    }
    return record(session, actor, "lookup.refused", request_id=request_id, detail=detail)


def may_read_case(session: Session, actor: Actor, case: str | None) -> bool:
    """BOLA: abuse tokens read only answers of cases they opened; legal and auditors all."""
    if actor.role in ("legal", "auditor", "admin"):
        return True
    if actor.role != "abuse" or case is None:
        return False
    from detnat.store.models import Case

    found = session.get(Case, case)
    return found is not None and found.owner == actor.owner and found.role == actor.role


# -- reading ---------------------------------------------------------------------------------------


def entry_json(entry: AuditEntry) -> dict[str, Any]:
    return {
        "seq": entry.seq,
        **content_of(entry),
        "content_sha256": entry.content_sha256,
        "prev_sha256": entry.prev_sha256,
        "entry_sha256": entry.entry_sha256,
    }


def entries(
    session: Session, *, case: str | None = None, after: int = 0, limit: int | None = None
) -> Iterator[AuditEntry]:
    from sqlalchemy import select

    from detnat.store.models import AuditEntry

    query = select(AuditEntry).where(AuditEntry.seq > after).order_by(AuditEntry.seq)
    if case is not None:
        query = query.where(AuditEntry.case_ref == case)
    if limit is not None:
        query = query.limit(limit)
    for entry in session.scalars(query.execution_options(yield_per=1000)):
        yield entry
        session.expunge(entry)  # a long log is walked in constant memory


def head(session: Session) -> AuditHead:
    from detnat.store.models import AuditHead

    found = session.get(AuditHead, 1)
    assert found is not None, "migration 0003 creates the head row"
    return found


def checkpoint(session: Session, actor: Actor, *, request_id: str) -> dict[str, Any]:
    """Record the current head (to keep outside the database too); audited itself."""
    current = head(session)
    from detnat.store import repo
    from detnat.store.models import AuditCheckpoint

    heads = repo.plan_heads(session)
    mark = AuditCheckpoint(
        seq=current.seq, sha256=current.sha256, at=utcnow(), by=actor.name, plan_heads=heads
    )
    session.add(mark)
    repo.flush(session)
    shown = {
        "seq": mark.seq,
        "sha256": mark.sha256,
        "at": format_instant(mark.at),
        "plan_heads": heads,
    }
    detail = {"record": checkpoint_record(mark)}
    record(session, actor, "audit.checkpoint", request_id=request_id, detail=detail)
    return shown


__all__ = [
    "Actor",
    "CaseOwners",
    "case_record",
    "check_reference",
    "checkpoint",
    "entries",
    "entry_json",
    "record",
    "record_refusal",
]
