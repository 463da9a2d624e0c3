"""Signed session cookies, CSRF tokens and the signing key (no database, no app)."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from api.web import sessions
from detnat.errors import Unavailable
from detnat.settings import Settings

KEYS = sessions.Keys.from_secret(b"k" * 32)
NOW = 1_800_000_000.0


def test_a_session_reads_back_until_it_is_idle_or_too_old() -> None:
    made = sessions.new_session(7, "ab" * 32, now=NOW)
    cookie = sessions.sign(KEYS.session, made.payload())
    assert sessions.read_session(KEYS, cookie, now=NOW + 10) == made
    assert sessions.read_session(KEYS, cookie, now=NOW + sessions.SESSION_IDLE + 1) is None
    later = sessions.touched(made, now=NOW + sessions.SESSION_IDLE - 5)
    assert later is not None
    kept = sessions.sign(KEYS.session, later.payload())
    assert sessions.read_session(KEYS, kept, now=NOW + sessions.SESSION_IDLE + 1) == later
    assert sessions.read_session(KEYS, kept, now=NOW + sessions.SESSION_MAX + 1) is None


def test_a_session_is_touched_at_most_once_a_minute() -> None:
    made = sessions.new_session(7, "ab" * 32, now=NOW)
    assert sessions.touched(made, now=NOW + sessions.TOUCH_AFTER - 1) is None
    assert sessions.touched(made, now=NOW + sessions.TOUCH_AFTER) is not None


def test_only_our_own_signature_counts() -> None:
    made = sessions.new_session(7, "ab" * 32, now=NOW)
    cookie = sessions.sign(KEYS.session, made.payload())
    other = sessions.Keys.from_secret(b"o" * 32)
    assert sessions.read_session(other, cookie, now=NOW) is None
    assert sessions.read_session(KEYS, cookie + "x", now=NOW) is None
    signin, _ = sessions.new_signin(KEYS, now=NOW)
    assert sessions.read_session(KEYS, signin, now=NOW) is None  # not a session
    for junk in (None, "", ".", "a.b.c", "%%%.%%%", "x" * 2000):
        assert sessions.read_session(KEYS, junk, now=NOW) is None


def test_csrf_tokens_belong_to_one_nonce_and_one_key() -> None:
    token = sessions.csrf_token(KEYS, "nonce-1")
    assert sessions.csrf_ok(KEYS, "nonce-1", token)
    assert not sessions.csrf_ok(KEYS, "nonce-2", token)
    assert not sessions.csrf_ok(sessions.Keys.from_secret(b"o" * 32), "nonce-1", token)
    assert not sessions.csrf_ok(KEYS, None, token)
    assert not sessions.csrf_ok(KEYS, "nonce-1", None)
    assert KEYS.csrf != KEYS.session


def test_the_sign_in_nonce_expires() -> None:
    cookie, nonce = sessions.new_signin(KEYS, now=NOW)
    assert sessions.signin_nonce(KEYS, cookie, now=NOW + 5) == nonce
    assert sessions.signin_nonce(KEYS, cookie, now=NOW + sessions.SIGNIN_MAX + 1) is None


def test_the_key_file_is_made_once_private_and_reused(tmp_path: Path) -> None:
    folder = tmp_path / "data"
    first = sessions.secret_from(Settings(data_dir=folder))
    path = folder / sessions.KEY_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert sessions.secret_from(Settings(data_dir=folder)) == first
    assert len(first) >= sessions.MIN_SECRET
    assert [p.name for p in folder.iterdir()] == [sessions.KEY_FILE]  # no temporary left


def test_a_configured_secret_must_be_long_enough(tmp_path: Path) -> None:
    class Configured(Settings):
        web_session_secret: str | None = None

    assert sessions.secret_from(Configured(data_dir=tmp_path, web_session_secret="s" * 40)) == (
        b"s" * 40
    )
    assert not (tmp_path / sessions.KEY_FILE).exists()
    with pytest.raises(Unavailable, match="at least 32"):
        sessions.secret_from(Configured(data_dir=tmp_path, web_session_secret="short"))


def test_an_unwritable_data_folder_says_what_to_set(tmp_path: Path) -> None:
    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    with pytest.raises(Unavailable, match="DETNAT_WEB_SESSION_SECRET"):
        sessions.secret_from(Settings(data_dir=blocked / "data"))
