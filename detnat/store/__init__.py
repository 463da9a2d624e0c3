"""The plan store: SQLAlchemy models, session handling, repositories. No business rules here.

Postgres holds the invariants (see :mod:`detnat.store.models`); this package only reads and writes
rows and turns constraint violations into :class:`detnat.errors.Conflict`.
"""
