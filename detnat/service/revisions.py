"""Facts about a store that change only with its revision, learnt once per process.

The store revision counts up with every change that can alter an answer: a publish, a log ingest or
prune, a directory ingest. Whether the store holds any logs, or any directory, is such a fact: a
lookup path that remembers it per revision pays no query for a store without them. Keyed by the
database too, since a process may talk to more than one (the tests do).
"""

from __future__ import annotations

Key = tuple[str, int]  # (which database, store revision)


def key(database: str, revision: int | None) -> Key | None:
    """The key of a fact about ``database`` at ``revision`` (None: not remembered at all)."""
    return None if revision is None else (database, revision)


class Facts:
    """One yes/no fact per (database, revision), bounded (a long-lived process forgets the old)."""

    def __init__(self, limit: int = 64) -> None:
        self._known: dict[Key, bool] = {}
        self._limit = limit

    def known(self, at: Key | None) -> bool | None:
        """The fact at ``at``, None when not learnt (or not to be remembered)."""
        return None if at is None else self._known.get(at)

    def learn(self, at: Key | None, value: bool) -> bool:
        """Remember ``value`` at ``at``; returns it."""
        if at is not None:
            if len(self._known) >= self._limit:
                self._known.clear()
            self._known[at] = value
        return value
