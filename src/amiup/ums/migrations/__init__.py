"""Alembic migrations of the UMS store, run programmatically by ``Store.migrate``."""
