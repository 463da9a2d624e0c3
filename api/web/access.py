"""Who may open which page: the web pages' own policy table, deny by default.

The API's guard lets every ``/web`` route through (``api/policy.py`` marks the family public)
because pages are not called with bearer tokens: :class:`api.web.routing.WebRoute` checks the
signed-in session and the role against this table instead. A page without an entry is refused to
everyone (``tests/web`` enumerates the router against it).

The roles of each page are the named role set of the API route that does the same work
(``api/policy.py``), so the two never drift apart: whoever may ``POST /v1/lookups/reverse``
(``REVERSE``) may use the Lookup page, and so on.
"""

from __future__ import annotations

from api import policy

PUBLIC = policy.PUBLIC  # no session needed: the sign-in page and the static files
SIGNED_IN = frozenset(policy.ROLES)


LOOKUP = policy.REVERSE
BATCH = policy.REVERSE
ANSWERS = policy.ANSWERS
EVIDENCE = policy.EVIDENCE
# A case's page shows its lookups (who may read a case's answers) and its audit entries (auditors).
CASES = policy.ANSWERS | policy.AUDITORS
REALMS = policy.READ_PLANS
APPROVE = policy.ADMINS
CAPACITY = policy.PLANNING

WEB_POLICY: dict[tuple[str, str], frozenset[str]] = {
    ("GET", "/"): PUBLIC,  # a redirect to /web/, for whoever opens the service's address
    ("GET", "/web/static/{name}"): PUBLIC,
    ("GET", "/web/sign-in"): PUBLIC,
    ("POST", "/web/sign-in"): PUBLIC,
    ("POST", "/web/sign-out"): SIGNED_IN,
    ("GET", "/web/"): SIGNED_IN,
    ("GET", "/web/lookup"): LOOKUP,
    ("POST", "/web/lookup"): LOOKUP,
    ("GET", "/web/answers/{answer_id}"): ANSWERS,
    ("GET", "/web/answers/{answer_id}/evidence"): EVIDENCE,
    ("GET", "/web/batch"): BATCH,
    ("POST", "/web/batch"): BATCH,
    ("GET", "/web/complaints"): BATCH,
    ("POST", "/web/complaints"): BATCH,
    ("GET", "/web/cases"): CASES,
    ("GET", "/web/realms"): REALMS,
    ("GET", "/web/realms/{realm}"): REALMS,
    ("GET", "/web/realms/{realm}/versions/{n}"): REALMS,
    ("POST", "/web/realms/{realm}/versions/{n}/approval"): APPROVE,
    ("GET", "/web/capacity"): CAPACITY,
}

# Pages served without looking at the session (no database either): the static files, and the
# redirect from / to the start page.
SESSIONLESS = frozenset({"/web/static/{name}", "/"})

# The navigation: (label, path, roles that see it), in reading order.
NAVIGATION: tuple[tuple[str, str, frozenset[str]], ...] = (
    ("Lookup", "/web/lookup", LOOKUP),
    ("Batch", "/web/batch", BATCH),
    ("Complaints", "/web/complaints", BATCH),
    ("Cases", "/web/cases", CASES),
    ("Realms", "/web/realms", REALMS),
    ("Capacity", "/web/capacity", CAPACITY),
)


def roles_for(method: str, path: str) -> frozenset[str] | None:
    """The roles allowed on a page (its path template), PUBLIC, or None: no entry, refused."""
    return WEB_POLICY.get(("GET" if method == "HEAD" else method, path))


def navigation(role: str | None) -> list[tuple[str, str]]:
    """The pages a role may open, for the menu."""
    return [(label, path) for label, path, roles in NAVIGATION if role in roles]
