"""The API's request bodies and path parameters (strict: unknown keys and wrong types refused) and
the responses of its routes (the answers' shapes come from :mod:`detnat.service.answers`)."""

from __future__ import annotations

from typing import Annotated, Any, Literal, NotRequired

from fastapi import Path as PathParam
from pydantic import BaseModel, ConfigDict, Field, with_config
from typing_extensions import TypedDict  # pydantic reads typing's only from Python 3.12

from detnat.service.answers import AuditedForwardAnswer, AuditedReverseAnswer

__all__ = ["AuditedForwardAnswer", "AuditedReverseAnswer"]

AnswerId = Annotated[int, PathParam(ge=1, le=2**63 - 1)]
Int32 = Annotated[int, PathParam(ge=1, le=2**31 - 1)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class RealmIn(_Body):
    name: str = Field(examples=["aftr-fra-1"])
    session_drain: str = Field(default="2h", examples=["2h"])
    description: str = ""
    single_approver: bool = Field(
        default=False, description="Opt out of four-eyes publishing (labs); recorded for good."
    )


class VersionIn(_Body):
    plan: dict[str, Any] | None = Field(description="The plan; null retires the realm.")
    effective_from: str = Field(examples=["2026-03-14T21:00:00+01:00"])
    reason: str = Field(examples=["CHG-1234"])
    correction: bool = False


class ApprovalIn(_Body):
    content_sha256: str | None = Field(
        default=None, description="The content hash the approver read (must be the version's)."
    )


class _Identity(_Body):
    case: str = Field(examples=["ABUSE-2026-0412"], description="Case reference (required).")
    legal_basis: str | None = Field(default=None, examples=["§ 113 TKG"])
    requested_by: str | None = Field(default=None, examples=["Staatsanwaltschaft Berlin"])


class ReverseIn(_Identity):
    ip: str = Field(examples=["192.0.2.1"])
    port: int = Field(examples=[1100])
    time: str = Field(examples=["2026-03-14T21:07:33+01:00"])
    tz: str | None = Field(
        default=None,
        examples=["Europe/Berlin"],
        description="The zone of a time without an offset (refused when DST makes it unclear).",
    )
    tolerance_seconds: float = Field(default=0, ge=0, le=86400, allow_inf_nan=False)
    realm: str | None = None


class ForwardIn(_Identity):
    subscriber: str = Field(examples=["2001:db8:1000:100::/56"])
    time: str = Field(examples=["2026-03-14T21:07:33+01:00"])
    tz: str | None = Field(default=None, examples=["Europe/Berlin"])
    realm: str | None = None


class TokenIn(_Body):
    name: str = Field(examples=["abuse-desk-1"])
    role: str = Field(examples=["abuse"])
    person: str | None = Field(
        default=None,
        examples=["Alice Example"],
        description="Who holds the token (default: its name); four eyes compares people.",
    )
    expires: str | None = Field(default=None, examples=["90d"])


# -- responses -------------------------------------------------------------------------------------
# What each route under /v1 answers, as the OpenAPI documents it. TypedDicts, like the answers of
# :mod:`detnat.service.answers`: the services build plain dicts, FastAPI validates them against
# these (unknown keys refused, so a key the service adds without a line here fails the tests)
# and the JSON is what it always was. ``X | None`` keys are always present, possibly null.

_OUT = ConfigDict(extra="forbid")
Instant = Annotated[str, Field(description="RFC 3339, UTC", examples=["2026-03-14T20:07:33Z"])]
Sha256 = Annotated[str, Field(pattern="^[0-9a-f]{64}$")]


@with_config(_OUT)
class RealmOut(TypedDict):
    name: str
    description: str
    session_drain: str
    session_drain_seconds: float
    created_at: Instant
    versions: int  # the number of the newest version, 0 when none
    single_approver: bool


@with_config(_OUT)
class VersionOut(TypedDict):
    realm: str
    version: int
    effective_from: Instant
    retired: bool
    content_sha256: Sha256 | None  # None: a retirement
    prev_sha256: Sha256 | None
    record_sha256: Sha256
    published_at: Instant
    published_by: str
    reason: str
    correction: bool
    supersedes: int | None
    superseded: bool
    approved: bool
    approved_by: str | None
    approved_at: Instant | None
    plan: NotRequired[dict[str, Any] | None]  # GET of one version only


@with_config(_OUT)
class TokenOut(TypedDict):
    id: int
    name: str
    person: str
    role: str
    state: Literal["active", "revoked", "expired"]
    created_at: Instant
    created_by: str
    expires_at: Instant | None
    revoked_at: Instant | None
    revoked_by: str | None


@with_config(_OUT)
class NewTokenOut(TokenOut):
    token: Annotated[str, Field(description="The secret: shown this once, never again.")]


@with_config(_OUT)
class AuditEntryOut(TypedDict):
    seq: int
    at: Instant
    actor: str
    role: str
    token_id: int | None
    action: str
    case: str | None
    status: str | None
    request_id: str
    code_version: str
    detail: dict[str, Any]
    content_sha256: Sha256
    prev_sha256: Sha256
    entry_sha256: Sha256


@with_config(_OUT)
class AuditHeadOut(TypedDict):
    seq: int
    sha256: Sha256


@with_config(_OUT)
class VerifyOut(TypedDict):
    realms: int
    plan_versions: int
    audit_entries: int
    broken_entries: int
    head: AuditHeadOut | None
    checkpoints_checked: int
    ok: bool
    broken: list[str]


@with_config(_OUT)
class PlanHeadOut(TypedDict):
    version: int
    record_sha256: Sha256


@with_config(_OUT)
class CheckpointOut(TypedDict):
    seq: int
    sha256: Sha256
    at: Instant
    plan_heads: dict[str, PlanHeadOut]


@with_config(_OUT)
class AnswerOut(TypedDict):
    """An answer already given, as its audit entry keeps it."""

    answer_id: int
    case: str | None
    at: Instant
    action: str  # lookup.reverse, lookup.forward, lookup.reverse_batch
    query: dict[str, Any] | None
    answer: dict[str, Any] | None  # the answer (a batch: its summary)
    audit_sha256: Sha256


@with_config(_OUT)
class CaseAnswerOut(TypedDict):
    answer_id: int
    at: Instant
    action: str
    status: str | None
    actor: str


@with_config(_OUT)
class EvidenceRealmOut(TypedDict):
    session_drain_us: int
    versions: list[dict[str, Any]]  # each version's record and plan, to check offline


@with_config(_OUT)
class EvidenceLogsOut(TypedDict):
    """How the log lines an answer shows were read, so that each can be read again offline."""

    ingests: list[AuditEntryOut]  # the logs.ingest entries: format, file, parse options
    lines: list[list[int | None]]  # per log candidate, per line: the ingest that read it


@with_config(_OUT)
class EvidenceDirectoryOut(TypedDict):
    """How the directory lines of an answer's account were read, so that each can be read again
    offline."""

    ingests: list[AuditEntryOut]  # the directory.ingest entries: format, files, --tz, --interim
    held: list[int | None]  # per interval of account.held: the ingest that made it


@with_config(_OUT)
class EvidenceFileOut(TypedDict):
    """An evidence file: the answer, the plan versions it used, its audit entry and how its log
    and directory lines were read; anyone can recompute the answer from it offline
    (``detnat evidence verify``)."""

    format: str
    code_version: str
    query: dict[str, Any]
    answer: dict[str, Any]  # the reverse answer as it was given
    realms: dict[str, EvidenceRealmOut]
    audit_entry: AuditEntryOut
    logs: EvidenceLogsOut
    directory: EvidenceDirectoryOut
