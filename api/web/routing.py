"""Every page passes :class:`WebRoute`: its policy, the session, the role, CSRF, errors as pages.

The order for each request:

1. the page's entry in :data:`api.web.access.WEB_POLICY` (none: refused to everyone, 403);
2. the session cookie, checked against the token row (revoked, expired: signed out);
3. public pages go on; other pages need a session (none: 303 to the sign-in page) and one of the
   page's roles (else 403), and pass the per-token rate limit;
4. every POST needs the form's CSRF token (and, when the browser sends one, a same-origin
   ``Origin``), else 400;
5. the handler runs with a :class:`Page` (``request.state.web``); it commits what it writes.

Errors never leave as problem+json: :class:`~detnat.errors.DetnatError` becomes an HTML page with
the matching status, anything unexpected a bare 500 page. Every response gets the security headers
(a strict Content-Security-Policy without inline scripts or styles, no caching of pages).

One module at this size: the page plumbing (session, CSRF, policy, error pages) runs in one order
for every page and reads best in that order.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import uuid
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote, urlsplit

from fastapi import APIRouter, Depends, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.routing import APIRoute
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session as DbSession
from starlette.datastructures import FormData

from api import policy, problems
from api.web import access, sessions
from api.web.explain import duration
from api.web.sessions import Keys
from detnat.errors import (
    Conflict,
    DetnatError,
    Forbidden,
    InvalidInput,
    Unavailable,
    outcome_of,
)
from detnat.service import audit
from detnat.service.times import check_tolerance, check_zone, parse_duration
from detnat.settings import Settings, get_settings
from detnat.store import repo
from detnat.store.models import ApiToken

log = logging.getLogger("detnat.web")

API_ROOT = Path(__file__).resolve().parent.parent
TEMPLATES = API_ROOT / "templates"
STATIC = API_ROOT / "static"
SIGN_IN = "/web/sign-in"

SECURITY_HEADERS = {
    "content-security-policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "same-origin",
    "cross-origin-opener-policy": "same-origin",
    "permissions-policy": "camera=(), microphone=(), geolocation=(), interest-cohort=()",
}


class CsrfRefused(Exception):
    """A POST without this session's CSRF token, or from another site."""


@dataclass
class Page:
    """One page request: who is signed in, the database session, the CSRF token for forms."""

    request: Request
    settings: Settings
    keys: Keys
    actor: audit.Actor | None = None
    session: sessions.Session | None = None
    form: FormData | None = None
    csrf: str = ""
    _db: DbSession | None = field(default=None, repr=False)
    cookies: list[tuple[str, str, int]] = field(default_factory=list, repr=False)

    @property
    def db(self) -> DbSession:
        """The request's database session (the unit of work: handlers commit what they write)."""
        if self._db is None:
            factory = getattr(self.request.app.state, "sessions", None)
            if factory is None:
                raise Unavailable("the store is not running (the app's lifespan has not started)")
            self._db = factory()
        return self._db

    async def close(self) -> None:
        """End the request: uploaded files, then the database session."""
        if self.form is not None:
            await self.form.close()
        if self._db is not None:
            self._db.close()
            self._db = None

    @property
    def role(self) -> str | None:
        return self.actor.role if self.actor is not None else None

    @property
    def request_id(self) -> str:
        found = getattr(self.request.state, "request_id", None)
        return str(found) if found else uuid.uuid4().hex

    @property
    def state(self) -> Any:
        return self.request.app.state

    def may(self, roles: frozenset[str]) -> bool:
        return self.role is not None and self.role in roles

    def field(self, name: str, default: str = "") -> str:
        """A text field of the posted form (or of the query string on GET), stripped."""
        source: Any = self.form if self.form is not None else self.request.query_params
        value = source.get(name, default)
        return value.strip() if isinstance(value, str) else default

    def render(self, template: str, status: int = 200, **context: Any) -> HTMLResponse:
        body = templates().get_template(template).render(page=self, **context)
        return HTMLResponse(body, status_code=status)

    def set_cookie(self, name: str, value: str, max_age: int) -> None:
        self.cookies.append((name, value, max_age))


def get_page(request: Request) -> Page:
    page: Page = request.state.web
    return page


PageDep = Annotated[Page, Depends(get_page)]


class WebRoute(APIRoute):
    """An APIRoute that serves a page: see the module docstring for what happens in order."""

    # The API's guard lets pages through: they are signed in with a session, not a bearer
    # token, and their own table (api/web/access.py, deny by default too) decides.
    detnat_access = policy.WEB_PAGE

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        inner = super().get_route_handler()
        path = self.path

        async def handler(request: Request) -> Response:
            page: Page | None = None
            try:
                roles = access.roles_for(request.method, path)
                page = Page(request, _settings(request), _keys(request))
                request.state.web = page
                if roles is None:
                    raise Forbidden("no policy allows this page")
                if path in access.SESSIONLESS:
                    response = await inner(request)
                else:
                    early = await _admit(page, roles)
                    response = early if early is not None else await inner(request)
                    _keep_session(page, response)
            except Exception as exc:  # every failure becomes a page, never a trace
                response = _error_page(page, request, exc)
            finally:
                if page is not None:
                    await page.close()
            response.headers.update(SECURITY_HEADERS)
            response.headers.setdefault("cache-control", "no-store")
            return response

        return handler


router = APIRouter(route_class=WebRoute, include_in_schema=False)


# -- the request pipeline --------------------------------------------------------------------------


def _settings(request: Request) -> Settings:
    found = getattr(request.app.state, "settings", None)
    return found if isinstance(found, Settings) else get_settings()


def _keys(request: Request) -> Keys:
    """The signing keys, derived once per app (the secret is read or made on first use)."""
    state = request.app.state
    keys = getattr(state, "web_keys", None)
    if not isinstance(keys, Keys):
        keys = Keys.from_secret(sessions.secret_from(_settings(request)))
        state.web_keys = keys
    return keys


async def _admit(page: Page, roles: frozenset[str]) -> Response | None:
    """Session, role, rate limit and CSRF; a response when the request stops here."""
    request = page.request
    found = sessions.read_session(page.keys, request.cookies.get(sessions.SESSION_COOKIE))
    had_cookie = sessions.SESSION_COOKIE in request.cookies
    if found is not None:
        page.actor = _holder(page.db, found)
        page.session = found if page.actor is not None else None
    if page.session is None and had_cookie:
        page.set_cookie(sessions.SESSION_COOKIE, "", 0)  # ended or not ours: drop it
    if roles is not access.PUBLIC:
        if page.actor is None:
            return _to_sign_in(page, ended=had_cookie)
        if page.actor.role not in roles:
            raise Forbidden(f"the {page.actor.role} role may not open this page")
        limiter = getattr(page.state, "limiter", None)
        if limiter is not None and page.actor.token_id is not None:
            wait = limiter.wait_for(page.actor.token_id)
            if wait:
                raise _RateLimited(wait)
    nonce = page.session.nonce if page.session is not None else _signin_nonce(page)
    page.csrf = sessions.csrf_token(page.keys, nonce) if nonce else ""
    if request.method not in ("GET", "HEAD"):
        if not _same_origin(request):
            raise CsrfRefused("the form was sent from another site")
        page.form = await request.form(max_files=1, max_fields=40)
        if not sessions.csrf_ok(page.keys, nonce, page.form.get("csrf")):
            raise CsrfRefused("the form has expired or did not come from this site")
    return None


def _signin_nonce(page: Page) -> str | None:
    """The sign-in form's nonce: from its cookie, or a new one (GET only) set on the response."""
    cookie = page.request.cookies.get(sessions.SIGNIN_COOKIE)
    nonce = sessions.signin_nonce(page.keys, cookie)
    if nonce is None and page.request.method in ("GET", "HEAD"):
        value, nonce = sessions.new_signin(page.keys)
        page.set_cookie(sessions.SIGNIN_COOKIE, value, sessions.SIGNIN_MAX)
    return nonce


def _holder(db: DbSession, found: sessions.Session) -> audit.Actor | None:
    """Who a session's token belongs to, if the token is still valid (checked every request)."""
    row = db.get(ApiToken, found.token_id)
    if row is None or not hmac_equal(row.token_sha256[:16], found.token_hash):
        return None
    if row.revoked_at is not None:
        return None
    if row.expires_at is not None and row.expires_at <= datetime.now(UTC):
        return None
    # The person who holds the token, as the API names them: four eyes and the audit log compare
    # people, and a token's name is only a label (``alice-laptop``).
    return audit.Actor(name=row.person, role=row.role, token_id=row.id)


def hmac_equal(a: str, b: str) -> bool:
    return secrets.compare_digest(a.encode(), b.encode())


def _same_origin(request: Request) -> bool:
    """False when the browser says the request comes from another origin."""
    site = request.headers.get("sec-fetch-site")
    if site is not None and site not in ("same-origin", "none"):
        return False
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        return origin is None
    # Hosts only: behind a TLS proxy the app may see http while the browser says https.
    return urlsplit(origin).netloc == request.headers.get("host", "")


def _to_sign_in(page: Page, *, ended: bool) -> Response:
    request = page.request
    target = SIGN_IN
    if request.method in ("GET", "HEAD"):
        wanted = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        target += f"?next={quote(wanted, safe='')}"
        if ended:
            target += "&ended=1"
    elif ended:
        target += "?ended=1"
    return RedirectResponse(target, status_code=303)


def _keep_session(page: Page, response: Response) -> None:
    """Write the cookies the request asked for, and move "last seen" of the session."""
    if page.session is not None:
        fresh = sessions.touched(page.session)
        if fresh is not None:
            page.set_cookie(
                sessions.SESSION_COOKIE,
                sessions.sign(page.keys.session, fresh.payload()),
                sessions.SESSION_MAX,
            )
    for name, value, max_age in page.cookies:
        set_cookie(response, name, value, max_age)


def set_cookie(response: Response, name: str, value: str, max_age: int) -> None:
    """``__Host-`` cookies: Secure, HttpOnly, SameSite=Strict, Path=/, no Domain."""
    if max_age <= 0:
        response.delete_cookie(name, path="/", secure=True, httponly=True, samesite="strict")
        return
    response.set_cookie(
        name, value, max_age=max_age, path="/", secure=True, httponly=True, samesite="strict"
    )


class _RateLimited(Exception):
    def __init__(self, seconds: float) -> None:
        self.seconds = seconds


def _error_page(page: Page | None, request: Request, exc: Exception) -> Response:
    status, title, detail, headers = 500, "Something went wrong", "internal error", {}
    if isinstance(exc, CsrfRefused):
        status, title, detail = 400, "This form cannot be used", f"{exc}; reload the page."
    elif isinstance(exc, _RateLimited):
        status, title = 429, "Too many requests"
        detail = "Too many requests for your token; wait a moment and try again."
        headers["retry-after"] = str(max(1, round(exc.seconds + 0.5)))
    elif isinstance(exc, DetnatError | DBAPIError):
        error = exc if isinstance(exc, DetnatError) else repo.domain_error(exc)
        if (
            not isinstance(error, DetnatError)
            or (isinstance(exc, DBAPIError) and not isinstance(error, Conflict | InvalidInput))
            or (outcome_of(error).http_status == 503 and problems.from_the_driver(error))
        ):  # as the API: a database that fails otherwise is unavailable, and so is the audit log;
            # what failed (libpq's text: server, port, user) is for the server's log only
            log.warning("web page %s %s: %s", request.method, request.url.path, error or exc)
            error = Unavailable(
                "The database (and so the audit log) is unavailable: nothing was answered."
            )
        outcome = outcome_of(error)
        status, title, detail = outcome.http_status, outcome.title, str(error)
    elif isinstance(exc, RequestValidationError):
        status, title = 404, "Not found"
        detail = "There is no such page: " + "; ".join(
            f"{'.'.join(str(p) for p in e['loc'][1:])}: {e['msg']}" for e in exc.errors()
        )
    else:
        log.exception("web page %s %s failed", request.method, request.url.path)
    if page is None:
        return HTMLResponse(f"<!doctype html><title>{status}</title><p>{status}", status)
    try:
        response: Response = page.render(
            "error.html", status=status, title=title, detail=detail, code=status
        )
    except Exception:  # the template itself failed: a minimal page
        log.exception("error page failed")
        response = HTMLResponse(f"<!doctype html><title>{status}</title><p>{status}", status)
    for name, value, max_age in page.cookies:
        set_cookie(response, name, value, max_age)
    response.headers.update(headers)
    return response


# -- templates -------------------------------------------------------------------------------------


@cache
def templates() -> Environment:
    """The Jinja2 environment (built on first use, autoescaping everything HTML)."""
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(["html", "svg"]),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals.update(
        navigation=access.navigation,
        asset=asset_url,
        access=access,
        now=lambda: datetime.now(UTC),
    )
    env.filters.update(
        short=lambda text, n=12: (str(text)[:n] + "…") if text and len(str(text)) > n else text,
        number=lambda value: f"{value:,}" if isinstance(value, int) else value,
        share=_share,
        ranges=_port_ranges,
        seconds=lambda value: duration(float(value or 0)),
    )
    return env


def _share(value: object) -> str:
    if not isinstance(value, int | float):
        return "–"
    if value == 0:
        return "0"
    if abs(value) < 0.0001:
        return f"{value:.2e}"
    return f"{value:.4%}".rstrip("0").rstrip(".") if abs(value) < 0.01 else f"{value:.2%}"


def _port_ranges(ranges: object) -> str:
    if not isinstance(ranges, list):
        return ""
    parts = []
    for pair in ranges:
        if isinstance(pair, list | tuple) and len(pair) == 2:
            first, last = pair
            parts.append(str(first) if first == last else f"{first}–{last}")
    return ", ".join(parts)


@cache
def _asset_digest(name: str) -> str:
    return hashlib.sha256((STATIC / name).read_bytes()).hexdigest()[:12]


def asset_url(name: str) -> str:
    """A static file's URL, with its content hash so browsers never keep a stale copy."""
    return f"/web/static/{name}?v={_asset_digest(name)}"


def check_lookup_fields(
    values: dict[str, str], errors: dict[str, str], what: str
) -> timedelta | None:
    """Check a form's tolerance, zone and case fields (case required, the others optional),
    putting each problem under its field in ``errors``; the tolerance when it is valid."""
    tolerance = None
    try:
        tolerance = check_tolerance(parse_duration(values["tolerance"]))
    except InvalidInput as exc:
        errors["tolerance"] = exc.message
    if values.get("tz"):  # checked whether or not the time needs it: it is recorded
        try:
            check_zone(values["tz"])
        except InvalidInput as exc:
            errors["tz"] = exc.message
    for name, limit in (("case", audit.MAX_CASE), ("legal_basis", 500), ("requested_by", 500)):
        if name == "case" or values[name]:
            try:
                audit.check_reference(values[name], field=name, limit=limit)
            except InvalidInput as exc:
                errors[name] = (
                    f"Give the case reference this {what} is for."
                    if name == "case" and not values[name]
                    else exc.message
                )
    return tolerance
