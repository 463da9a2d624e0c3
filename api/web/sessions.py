"""Browser sessions: a signed cookie that names a token, and the CSRF tokens bound to it.

Signing in with an API token verifies it (as the API does), then sets ``__Host-detnat-session``:
``base64url(payload).base64url(HMAC-SHA256)``, where the payload holds the token's id, the first
16 hex digits of its SHA-256, a random session nonce and two times (issued, last seen). The token
itself is never stored in the cookie nor written into a page. Every request checks the signature,
the idle and absolute lifetimes, and then the token row (revoked or expired tokens end their
sessions at once); the role is read from the row, never from the cookie.

The cookie is ``Secure; HttpOnly; SameSite=Strict; Path=/`` (the ``__Host-`` prefix makes the
browser refuse it without those). Forms carry a CSRF token: HMAC of the session nonce (signed in),
or of a random nonce kept in ``__Host-detnat-signin`` (the sign-in form, before any session).

The signing key comes from ``settings.web_session_secret`` (``DETNAT_WEB_SESSION_SECRET``) when
set — give every host the same one — else from ``web-session.key`` in the data folder, made on
first use (mode 0600), which all workers of one host share.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from detnat.errors import Unavailable
from detnat.settings import Settings

SESSION_COOKIE = "__Host-detnat-session"
SIGNIN_COOKIE = "__Host-detnat-signin"
SESSION_IDLE = 60 * 60  # seconds without a request before a session ends
SESSION_MAX = 12 * 60 * 60  # seconds after signing in, whatever happens
TOUCH_AFTER = 60  # re-issue the cookie (moving "last seen") at most once a minute
SIGNIN_MAX = 60 * 60
KEY_FILE = "web-session.key"
MIN_SECRET = 32


@dataclass(frozen=True)
class Keys:
    """The keys derived from the one secret: cookies are signed with one, CSRF tokens the other."""

    session: bytes
    csrf: bytes

    @classmethod
    def from_secret(cls, secret: bytes) -> Keys:
        def derive(label: str) -> bytes:
            return hmac.new(secret, label.encode(), hashlib.sha256).digest()

        return cls(derive("detnat web session v1"), derive("detnat web csrf v1"))


def secret_from(settings: Settings) -> bytes:
    """The configured secret, or the data folder's key file (made on first use)."""
    configured: Any = getattr(settings, "web_session_secret", None)
    if configured is not None:
        text = (
            configured.get_secret_value()
            if hasattr(configured, "get_secret_value")
            else str(configured)
        )
        if len(text) < MIN_SECRET:
            raise Unavailable(
                f"DETNAT_WEB_SESSION_SECRET must be at least {MIN_SECRET} characters",
                field="web_session_secret",
            )
        return text.encode()
    return _key_file(Path(settings.data_dir))


def _key_file(folder: Path) -> bytes:
    path = folder / KEY_FILE
    try:
        return _read_key(path)
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise _unkept(folder, exc) from None
    try:
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = folder / f".{KEY_FILE}.{os.getpid()}.{secrets.token_hex(4)}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(secrets.token_hex(32) + "\n")
        try:
            os.link(tmp, path)  # atomic: when workers race, the first file wins for all
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
        return _read_key(path)
    except OSError as exc:
        raise _unkept(folder, exc) from None


def _unkept(folder: Path, exc: OSError) -> Unavailable:
    return Unavailable(
        f"cannot keep the web session key in {folder} ({exc.strerror}); set "
        "DETNAT_WEB_SESSION_SECRET",
        field="web_session_secret",
    )


def _read_key(path: Path) -> bytes:
    text = path.read_text().strip()
    if len(text) < MIN_SECRET:
        raise Unavailable(f"{path} holds no usable key; remove it to make a new one")
    return text.encode()


# -- signed values ---------------------------------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def sign(key: bytes, payload: dict[str, Any]) -> str:
    body = json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()
    return f"{_b64(body)}.{_b64(hmac.new(key, body, hashlib.sha256).digest())}"


def unsign(key: bytes, value: str | None) -> dict[str, Any] | None:
    """The payload of a value :func:`sign` made with ``key``; None for anything else."""
    if not value or len(value) > 1024 or value.count(".") != 1:
        return None
    body_text, mac_text = value.split(".")
    try:
        body, mac = _unb64(body_text), _unb64(mac_text)
    except (binascii.Error, ValueError):
        return None
    if not hmac.compare_digest(mac, hmac.new(key, body, hashlib.sha256).digest()):
        return None
    try:
        payload = json.loads(body)
    except ValueError:
        return None
    return payload if isinstance(payload, dict) else None


# -- sessions --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Session:
    """What a session cookie says (not yet checked against the token row)."""

    token_id: int
    token_hash: str  # the first 16 hex digits of the token's SHA-256
    nonce: str
    issued: int
    seen: int

    def payload(self) -> dict[str, Any]:
        return {
            "k": "session",
            "t": self.token_id,
            "h": self.token_hash,
            "n": self.nonce,
            "i": self.issued,
            "s": self.seen,
        }


def new_session(token_id: int, token_sha256: str, now: float | None = None) -> Session:
    moment = int(now if now is not None else time.time())
    return Session(token_id, token_sha256[:16], secrets.token_urlsafe(16), moment, moment)


def read_session(keys: Keys, cookie: str | None, now: float | None = None) -> Session | None:
    """The session a cookie holds, if it is ours and neither idle nor too old."""
    payload = unsign(keys.session, cookie)
    if payload is None or payload.get("k") != "session":
        return None
    try:
        found = Session(
            int(payload["t"]),
            str(payload["h"]),
            str(payload["n"]),
            int(payload["i"]),
            int(payload["s"]),
        )
    except (KeyError, TypeError, ValueError):
        return None
    moment = now if now is not None else time.time()
    if moment - found.issued > SESSION_MAX or moment - found.seen > SESSION_IDLE:
        return None
    if found.seen > moment + 60 or found.issued > found.seen:
        return None
    return found


def touched(found: Session, now: float | None = None) -> Session | None:
    """The session with "last seen" moved to now, when it is worth a new cookie."""
    moment = int(now if now is not None else time.time())
    if moment - found.seen < TOUCH_AFTER:
        return None
    return Session(found.token_id, found.token_hash, found.nonce, found.issued, moment)


# -- CSRF ------------------------------------------------------------------------------------------


def csrf_token(keys: Keys, nonce: str) -> str:
    return _b64(hmac.new(keys.csrf, nonce.encode(), hashlib.sha256).digest())


def csrf_ok(keys: Keys, nonce: str | None, given: object) -> bool:
    if not nonce or not isinstance(given, str) or len(given) > 100:
        return False
    return hmac.compare_digest(csrf_token(keys, nonce), given)


def signin_nonce(keys: Keys, cookie: str | None, now: float | None = None) -> str | None:
    """The nonce of a valid pre-session cookie (the sign-in form's CSRF), if any."""
    payload = unsign(keys.session, cookie)
    if payload is None or payload.get("k") != "signin":
        return None
    moment = now if now is not None else time.time()
    issued = payload.get("i")
    if not isinstance(issued, int) or not 0 <= moment - issued <= SIGNIN_MAX:
        return None
    nonce = payload.get("n")
    return nonce if isinstance(nonce, str) else None


def new_signin(keys: Keys, now: float | None = None) -> tuple[str, str]:
    """(cookie value, nonce) for a fresh sign-in form."""
    nonce = secrets.token_urlsafe(16)
    moment = int(now if now is not None else time.time())
    return sign(keys.session, {"k": "signin", "n": nonce, "i": moment}), nonce
