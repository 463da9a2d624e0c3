"""A single lookup's audit detail, built as a plain dict on the hot path, is what its schema
(:class:`~detnat.service.inquiry.ReverseDetail`, a TypedDict) says: its fields in order, the
values as given, and a stored form that reads back as itself."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from detnat.service import audit, inquiry

_text = st.text(alphabet=st.characters(exclude_categories=["Cs"], exclude_characters="\x00"))
_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | _text,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.tuples(inner, inner)
        | st.dictionaries(_text, inner, max_size=3)
    ),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(
    ip=_text,
    port=st.integers(0, 65535),
    time=_text,
    tz=st.none() | _text,
    tolerance_us=st.integers(0, 86_400 * 10**6),
    realm=st.none() | _text,
    case=_text,
    legal_basis=st.none() | _text,
    requested_by=st.none() | _text,
    via=st.sampled_from(["api", "cli", "web"]),
    answer=st.dictionaries(_text, _json, max_size=5),
    trace=st.dictionaries(_text, _json, max_size=3),
)
def test_the_reverse_detail_is_its_schemas_dump(
    ip: str,
    port: int,
    time: str,
    tz: str | None,
    tolerance_us: int,
    realm: str | None,
    case: str,
    legal_basis: str | None,
    requested_by: str | None,
    via: Any,
    answer: dict[str, Any],
    trace: dict[str, Any],
) -> None:
    query = inquiry.ReverseQuery(
        ip,
        port,
        time,
        inquiry.Identity(case, legal_basis, requested_by),
        via,
        tz=tz,
        tolerance=timedelta(microseconds=tolerance_us),
        realm=realm,
    )
    detail = inquiry._reverse_detail(query, answer, trace)  # type: ignore[arg-type]
    # Every field of the schema, in its order, nothing else, as given.
    assert list(detail) == list(inquiry.ReverseDetail.__annotations__)
    assert list(detail["query"]) == list(inquiry.ReverseAsked.__annotations__)
    assert detail["answer"] == answer and detail["trace"] == trace
    asked = [ip, port, time, tz, tolerance_us, realm, case, legal_basis, requested_by, via]
    assert list(detail["query"].values()) == asked
    stored = audit.stored_form(detail)
    assert audit.canonical(audit.stored_form(stored)) == audit.canonical(stored)
