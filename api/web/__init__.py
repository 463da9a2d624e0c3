"""Web pages for the abuse desk, legal, planners and admins, served by the API's own app.

``router`` holds every page under ``/web``; ``create_app`` includes it. Pages are rendered on the
server (Jinja2, ``api/templates``), with a little JavaScript where it helps (``api/static``) and
none where it is needed: every page works without it.

- :mod:`.access` — who may open which page (deny by default), derived from the API's policy;
- :mod:`.sessions` — signed session cookies naming a token, CSRF tokens, the signing key;
- :mod:`.routing` — :class:`~.routing.WebRoute`: session, role, CSRF, errors as pages, headers;
- :mod:`.explain` — an answer in words, the timeline strips (inline SVG);
- the pages: :mod:`.account` (sign-in), :mod:`.lookup`, :mod:`.batch`, :mod:`.cases`,
  :mod:`.realms`, :mod:`.capacity`.
"""

from __future__ import annotations

from api.web import account, batch, capacity, cases, lookup, realms  # noqa: F401  (they add pages)
from api.web.access import WEB_POLICY
from api.web.routing import router

__all__ = ["WEB_POLICY", "router"]
