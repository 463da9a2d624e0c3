"""Signing in and out, the start page (``/`` leads there), and the static files (CSS and the little
JavaScript)."""

from __future__ import annotations

import re
from functools import cache

from fastapi import Response
from fastapi.responses import RedirectResponse

from api.web import access, sessions
from api.web.routing import SIGN_IN, STATIC, PageDep, router
from detnat.errors import NotFound
from detnat.service import audit, plans
from detnat.store import repo
from detnat.store.models import ApiToken

_STATIC_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,40}\.(css|js|svg)")
_TYPES = {"css": "text/css; charset=utf-8", "js": "text/javascript; charset=utf-8",
          "svg": "image/svg+xml"}  # fmt: skip


@cache
def _static(name: str) -> bytes | None:
    if not _STATIC_NAME.fullmatch(name):
        return None
    path = STATIC / name
    return path.read_bytes() if path.is_file() else None


@router.get("/web/static/{name}")
async def static_file(name: str) -> Response:
    data = _static(name)
    if data is None:
        raise NotFound(f"no static file {name!r}")
    return Response(
        data,
        media_type=_TYPES[name.rsplit(".", 1)[1]],
        headers={"cache-control": "public, max-age=86400"},
    )


def safe_next(target: str | None) -> str:
    """Where to go after signing in: one of our pages, never another site."""
    if (
        not target
        or not target.startswith("/web/")
        or target.startswith(SIGN_IN)
        or "//" in target
        or "\\" in target
        or any(ord(c) < 33 for c in target)
    ):
        return "/web/"
    return target


@router.get("/web/sign-in")
async def sign_in_form(page: PageDep) -> Response:
    ended = page.field("ended") == "1"
    signed_out = page.field("signed_out") == "1"
    return page.render(
        "sign_in.html",
        next=safe_next(page.field("next")),
        error=None,
        ended=ended,
        signed_out=signed_out,
    )


@router.post("/web/sign-in")
async def sign_in(page: PageDep) -> Response:
    token = page.field("token")
    target = safe_next(page.field("next"))
    db = page.db
    actor = page.state.tokens.authenticate(
        db, token, revision=repo.store_revision(db), now=plans.utcnow()
    )
    if actor is None or actor.token_id is None:
        return page.render(
            "sign_in.html",
            status=401,
            next=target,
            error="That token is not valid (unknown, revoked or expired).",
            ended=False,
            signed_out=False,
        )
    row = db.get(ApiToken, actor.token_id)
    assert row is not None
    session = sessions.new_session(row.id, row.token_sha256)
    audit.record(
        db,
        actor,
        "web.sign_in",
        request_id=page.request_id,
        detail={"token_id": row.id, "via": "web"},
    )
    db.commit()
    response = RedirectResponse(target, status_code=303)
    # A new nonce on every sign-in: a session fixed before it is worth nothing after.
    page.session = None
    page.set_cookie(
        sessions.SESSION_COOKIE,
        sessions.sign(page.keys.session, session.payload()),
        sessions.SESSION_MAX,
    )
    page.set_cookie(sessions.SIGNIN_COOKIE, "", 0)
    return response


@router.post("/web/sign-out")
async def sign_out(page: PageDep) -> Response:
    page.session = None
    page.set_cookie(sessions.SESSION_COOKIE, "", 0)
    return RedirectResponse(f"{SIGN_IN}?signed_out=1", status_code=303)


DESCRIPTIONS = {
    "/web/lookup": "Who held a public address and port at a given time, explained, with the "
    "evidence behind it.",
    "/web/batch": "Upload a CSV of complaints (ip, port, time) and download the answers.",
    "/web/complaints": "Upload a mailbox export of abuse notices; see who to contact per notice.",
    "/web/cases": "A case's lookups and its audit trail.",
    "/web/realms": "Each realm's plan versions over time, what each change did, pending approvals.",
    "/web/capacity": "Size a deployment: block size, dynamic blocks, public addresses, with "
    "charts.",
}


@router.get("/")
async def root() -> Response:
    """The address ``detnat serve`` prints leads to the pages (the API is under /v1, see /docs)."""
    return RedirectResponse("/web/", status_code=307)


@router.get("/web/")
async def home(page: PageDep) -> Response:
    pages = [(label, path, DESCRIPTIONS[path]) for label, path in access.navigation(page.role)]
    return page.render("home.html", pages=pages)
