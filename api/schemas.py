"""The API's request bodies and path parameters: strict (unknown keys and wrong types refused)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Path as PathParam
from pydantic import BaseModel, ConfigDict, Field

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
