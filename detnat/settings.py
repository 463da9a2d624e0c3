"""Settings from the environment (``DETNAT_*``), validated once and cached.

Nothing is read at import time: call :func:`get_settings` (cached) or build :class:`Settings`
yourself (tests, ``create_app(settings)``). Every ``DETNAT_*`` variable must name a setting
(or one of the test suite's, :data:`NOT_SETTINGS`): an unknown one is refused at start-up.

The variables are read as pydantic-settings reads them with ``env_prefix="DETNAT_"`` (names in any
case, keyword arguments winning over the environment), by a pydantic model of our own: every
settings value is a plain scalar, and pydantic-settings cost each CLI invocation a fiftieth of a
second of imports for it.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Any

import platformdirs
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from detnat.errors import InvalidInput

# DETNAT_* variables read by the test suite and CI, not by the service.
NOT_SETTINGS = frozenset(
    {
        "DETNAT_TEST_DATABASE_URL",
        "DETNAT_TEST_POSTGRES_PORT",
        "DETNAT_REQUIRE_BROWSER",
        "DETNAT_REQUIRE_NETNS",
        "DETNAT_REQUIRE_SCALE",
        "DETNAT_WEB_ARTIFACTS",
    }
)


def _default_data_dir() -> Path:
    return Path(platformdirs.user_data_dir("detnat", appauthor=False))


class Settings(BaseModel):
    """Where the store lives and how the service behaves: ``DETNAT_<NAME>`` variables, then the
    keyword arguments given (they win).

    ``database_url`` unset means: start an embedded Postgres in ``data_dir`` (see
    :mod:`detnat.store.embedded`).
    """

    model_config = ConfigDict(extra="ignore", validate_default=True)

    database_url: str | None = Field(
        default=None, description="SQLAlchemy URL, e.g. postgresql+psycopg://user@host/detnat"
    )
    data_dir: Path = Field(default_factory=_default_data_dir)
    max_body_bytes: int = Field(default=1 << 20, ge=1024)
    max_batch_body_bytes: int = Field(default=64 << 20, ge=1024)
    max_batch_rows: int = Field(default=1_000_000, ge=1)
    rate_limit_per_second: float = Field(default=100.0, gt=0)
    rate_limit_burst: float = Field(default=200.0, ge=1)
    batch_rows_abuse: int = Field(default=100_000, ge=1)
    batch_rows_legal: int = Field(default=1_000_000, ge=1)
    database_pool_size: int = Field(default=10, ge=1, le=200)
    migrate_on_start: bool = True
    web_session_secret: SecretStr | None = Field(
        default=None,
        description="Signs web sessions; give every host the same one (else a key file in "
        "data_dir, one per host).",
    )
    debug: bool = Field(default=False, description="The CLI shows tracebacks of internal errors.")

    def __init__(self, **values: Any) -> None:
        super().__init__(**{**_from_environment(), **values})

    def model_post_init(self, context: Any, /) -> None:
        """Refuse ``DETNAT_*`` variables that name no setting: a misspelt one would be ignored."""
        known = {f"DETNAT_{name.upper()}" for name in type(self).model_fields} | NOT_SETTINGS
        unknown = sorted(k for k in os.environ if k.upper().startswith("DETNAT_"))
        unknown = [k for k in unknown if k.upper() not in known]
        if unknown:
            raise InvalidInput(
                f"unknown setting {unknown[0]} (settings are "
                f"{', '.join(sorted(known - NOT_SETTINGS))})",
                field=unknown[0],
            )

    def batch_rows_for(self, role: str) -> int:
        """The most rows one batch of this role may have."""
        return {"abuse": self.batch_rows_abuse, "legal": self.batch_rows_legal}.get(role, 0)


def _from_environment() -> dict[str, str]:
    """The settings that ``DETNAT_*`` variables give, by field name (variable names in any case)."""
    fields = {f"detnat_{name}": name for name in Settings.model_fields}
    return {fields[k.lower()]: v for k, v in os.environ.items() if k.lower() in fields}


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
