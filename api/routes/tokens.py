"""API tokens: list, create (shown once), revoke."""

from __future__ import annotations

from fastapi import APIRouter

from api.deps import CtxDep
from api.policy import ADMINS, declare
from api.schemas import Int32, NewTokenOut, TokenIn, TokenOut
from detnat.service import tokens
from detnat.store import repo

router = APIRouter(tags=["tokens"])


@router.get("/v1/tokens", response_model=list[TokenOut])
@declare(ADMINS)
def list_tokens(ctx: CtxDep) -> list[dict[str, object]]:
    return [tokens.token_json(t) for t in repo.tokens(ctx.session)]


@router.post("/v1/tokens", status_code=201, response_model=NewTokenOut)
@declare(ADMINS)
def create_token(body: TokenIn, ctx: CtxDep) -> dict[str, object]:
    secret, row = tokens.create_token(
        ctx.session,
        name=body.name,
        role=body.role,
        by=ctx.actor,
        person=body.person,
        expires=tokens.parse_expiry(body.expires, field="expires") if body.expires else None,
        request_id=ctx.request_id,
    )
    shown = tokens.token_json(row)
    ctx.session.commit()
    return {"token": secret, **shown}


@router.delete("/v1/tokens/{token_id}", response_model=TokenOut)
@declare(ADMINS)
def revoke_token(token_id: Int32, ctx: CtxDep) -> dict[str, object]:
    row = tokens.revoke_token(ctx.session, token_id, by=ctx.actor, request_id=ctx.request_id)
    shown = tokens.token_json(row)
    ctx.session.commit()
    return shown
