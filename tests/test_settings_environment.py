"""``Settings`` reads the environment as pydantic-settings did (``env_prefix="DETNAT_"``).

:mod:`detnat.settings` reads ``DETNAT_*`` variables itself (pydantic-settings cost every CLI
invocation its imports). Here the same fields on a pydantic-settings ``BaseSettings`` are the
reference: for generated environments (names in any case, valid and invalid values) and keyword
arguments, both give the same settings, or both refuse the same fields.
"""

from __future__ import annotations

import os
from typing import Any
from unittest import mock

from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError, create_model
from pydantic_settings import BaseSettings, SettingsConfigDict

from detnat.settings import Settings


class _Prefixed(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DETNAT_", extra="ignore")


Reference = create_model(  # type: ignore[call-overload]
    "Reference",
    __base__=_Prefixed,
    **{name: (field.annotation, field) for name, field in Settings.model_fields.items()},
)

VALUES = st.one_of(
    st.sampled_from(["", "0", "1", "2048", "true", "no", "1e6", "-3", "x", "postgresql://h/d"]),
    st.text(alphabet="abc019./:-", max_size=12),
)


@st.composite
def environments(draw: st.DrawFn) -> dict[str, str]:
    env: dict[str, str] = {}
    for name in draw(st.lists(st.sampled_from(sorted(Settings.model_fields)), unique=True)):
        spelled = draw(st.sampled_from([name.upper(), name.lower(), name.title()]))
        env[f"DETNAT_{spelled}" if spelled.isupper() else f"detnat_{spelled}"] = draw(VALUES)
    return env


def outcome(model: type[Any], env: dict[str, str], given: dict[str, Any]) -> object:
    clean = {k: v for k, v in os.environ.items() if not k.upper().startswith("DETNAT_")}
    with mock.patch.dict(os.environ, {**clean, **env}, clear=True):
        try:
            return model(**given).model_dump()
        except ValidationError as exc:
            return sorted((e["loc"], e["type"]) for e in exc.errors())


@settings(max_examples=300, deadline=None)
@given(
    environments(),
    st.dictionaries(
        st.sampled_from(["database_url", "max_batch_rows", "debug"]),
        st.one_of(st.none(), st.integers(-1, 10**7), st.booleans(), st.text(max_size=6)),
        max_size=2,
    ),
)
def test_settings_read_the_environment_as_pydantic_settings_did(
    env: dict[str, str], given: dict[str, Any]
) -> None:
    assert outcome(Settings, env, given) == outcome(Reference, env, given)


def test_a_keyword_argument_wins_over_the_environment() -> None:
    with mock.patch.dict(os.environ, {"DETNAT_MAX_BATCH_ROWS": "5"}):
        assert Settings().max_batch_rows == 5
        assert Settings(max_batch_rows=7).max_batch_rows == 7
