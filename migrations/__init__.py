"""Alembic migrations of the detnat store (run them with ``detnat db upgrade``)."""
