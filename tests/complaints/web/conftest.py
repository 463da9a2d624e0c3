"""The web tests' world (realm "fra", tokens, a running site) for the Complaints page."""

from __future__ import annotations

from tests.web.conftest import (  # noqa: F401  (fixtures)
    _api_policy_lets_pages_through,
    database_url,
    sessions,
    settings,
    site,
    world,
)
