"""Settings from the environment (``DETNAT_*``), validated once and cached.

Nothing is read at import time: call :func:`get_settings` (cached) or build :class:`Settings`
yourself (tests, ``create_app(settings)``).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import platformdirs
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


def _default_data_dir() -> Path:
    return Path(platformdirs.user_data_dir("detnat", appauthor=False))


class Settings(BaseSettings):
    """Where the store lives and how the service behaves.

    ``database_url`` unset means: start an embedded Postgres in ``data_dir`` (see
    :mod:`detnat.store.embedded`).
    """

    model_config = SettingsConfigDict(env_prefix="DETNAT_", extra="ignore")

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

    def batch_rows_for(self, role: str) -> int:
        """The most rows one batch of this role may have."""
        return {"abuse": self.batch_rows_abuse, "legal": self.batch_rows_legal}.get(role, 0)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
