"""JSON read strictly, for everything detnat accepts as JSON (plan files, API bodies, batches).

Duplicate keys are refused (not "the last one wins"), so are ``NaN`` / ``Infinity`` (not JSON),
numbers too large for a float (``1e400`` would quietly become infinity), integers longer than
Python converts (4300 digits), and runaway nesting; every refusal is an :class:`InvalidInput`
naming the field it concerns.
"""

from __future__ import annotations

import json
import math
from typing import Any

from detnat.errors import InvalidInput


def loads(data: str | bytes, *, field: str) -> Any:
    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in items:
            if key in out:
                raise InvalidInput(f"duplicate key {key[:40]!r}", field=field)
            out[key] = value
        return out

    def constant(name: str) -> Any:
        raise InvalidInput(f"{name} is not JSON", field=field)

    def real(text: str) -> float:
        value = float(text)
        if not math.isfinite(value):
            raise InvalidInput(f"number {text[:40]!r} is out of range", field=field)
        return value

    try:
        return json.loads(data, object_pairs_hook=pairs, parse_constant=constant, parse_float=real)
    except json.JSONDecodeError as exc:
        raise InvalidInput(
            f"not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}", field=field
        ) from None
    except UnicodeDecodeError:
        raise InvalidInput("not UTF-8 JSON", field=field) from None
    except ValueError:
        # int() refuses strings of more than sys.get_int_max_str_digits() digits (4300).
        raise InvalidInput("a number is too long (more than 4300 digits)", field=field) from None
    except RecursionError:
        raise InvalidInput("JSON nested too deeply", field=field) from None
