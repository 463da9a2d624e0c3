"""Finding datapath backends by name: the ``detnat.datapath`` entry-point group, plus the built-ins.

A package adds a backend by declaring, in its ``pyproject.toml``::

    [project.entry-points."detnat.datapath"]
    mybackend = "mypackage.datapath:MyDatapath"

where ``MyDatapath`` subclasses :class:`~detnat.datapath.Datapath`. The backends that ship with
detnat are also known here in code, so they work before (or without) the package metadata being
installed; an entry point may repeat a built-in name only with the same target.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import import_module, metadata

from detnat.datapath.base import Datapath
from detnat.errors import Conflict, NotFound

GROUP = "detnat.datapath"

BUILT_IN: dict[str, str] = {
    "nftables": "detnat.datapath.nftables:NftablesDatapath",
    "recording": "detnat.datapath.testing:RecordingDatapath",
}


@dataclass(frozen=True)
class Backend:
    name: str
    target: str  # "module:attribute"
    source: str  # "built-in" or the distribution that declares the entry point


def available() -> dict[str, Backend]:
    """Every backend name with where it comes from, built-ins first, then entry points by name."""
    found = {name: Backend(name, target, "built-in") for name, target in BUILT_IN.items()}
    for ep in sorted(metadata.entry_points(group=GROUP), key=lambda e: e.name):
        dist = ep.dist.name if ep.dist is not None else "unknown distribution"
        seen = found.get(ep.name)
        if seen is None:
            found[ep.name] = Backend(ep.name, ep.value, dist)
        elif seen.target != ep.value:
            # Two different programs under one name: refuse to guess which one enforces the plan.
            raise Conflict(
                f"two datapath backends are named {ep.name!r}: {seen.target} ({seen.source}) "
                f"and {ep.value} ({dist})",
                field="--backend",
            )
    return found


def load_backend(name: str) -> type[Datapath]:
    """The backend class called ``name``; :class:`NotFound` lists the names there are."""
    backends = available()
    backend = backends.get(name)
    if backend is None:
        raise NotFound(
            f"no datapath backend named {name!r} (available: {', '.join(sorted(backends))})",
            field="--backend",
        )
    module_name, _, attribute = backend.target.partition(":")
    target: object = import_module(module_name)
    for part in attribute.split("."):
        target = getattr(target, part)
    if not (isinstance(target, type) and issubclass(target, Datapath)):
        raise NotFound(
            f"backend {name!r} ({backend.target}, from {backend.source}) is not a Datapath",
            field="--backend",
        )
    return target
