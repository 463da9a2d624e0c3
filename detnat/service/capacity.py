"""Plans out of the store for capacity checks and plan diffs: ``REALM@VERSION`` references.

A reference names a realm and one of its versions: ``aftr-fra-1@7`` (version 7), ``aftr-fra-1`` or
``aftr-fra-1@current`` (the version in force now), ``aftr-fra-1@latest`` (the last published, which
may be scheduled for later). The computation itself is :mod:`detnat.capacity` (pure).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy.orm import Session

from detnat.engine import Plan
from detnat.errors import InvalidInput, NotFound
from detnat.planfile import plan_from_data
from detnat.service.plans import Clock, get_realm, get_version, utcnow
from detnat.service.times import format_instant
from detnat.store import repo

_REF = re.compile(
    r"(?P<realm>[a-z0-9][a-z0-9._-]{0,62})(?:@(?P<version>[1-9][0-9]{0,9}|current|latest))?"
)
CURRENT, LATEST = "current", "latest"


@dataclass(frozen=True)
class VersionRef:
    realm: str
    version: int | str  # a number, CURRENT or LATEST

    def __str__(self) -> str:
        return f"{self.realm}@{self.version}"


def parse_ref(text: str, *, field: str = "plan") -> VersionRef:
    """``REALM``, ``REALM@N``, ``REALM@current`` or ``REALM@latest``."""
    match = _REF.fullmatch(text.strip())
    if match is None:
        raise InvalidInput(
            f"{text!r} is neither a plan file nor REALM@VERSION (e.g. aftr-1@3, aftr-1@current)",
            field=field,
        )
    version = match["version"] or CURRENT
    return VersionRef(match["realm"], int(version) if version.isdigit() else version)


def plan_of(
    session: Session, ref: VersionRef, *, clock: Clock = utcnow, field: str = "plan"
) -> tuple[Plan, dict[str, object]]:
    """The plan a reference names, and where it came from (for the report)."""
    realm = get_realm(session, ref.realm)
    if ref.version == CURRENT:
        found = repo.in_force_at(session, realm.id, clock())
        if found is None:
            raise NotFound(f"realm {realm.name!r} has no plan in force now", field=field)
    elif ref.version == LATEST:
        found = get_version(session, realm, None)
    else:
        assert isinstance(ref.version, int)
        found = get_version(session, realm, ref.version)
    if found.plan is None:
        raise NotFound(
            f"version {found.seq} of realm {realm.name!r} retires it: there is no plan", field=field
        )
    source = {
        "realm": realm.name,
        "version": found.seq,
        "effective_from": format_instant(found.effective_from),
        "content_sha256": found.content_sha256,
    }
    return plan_from_data(found.plan), source
