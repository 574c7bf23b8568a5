"""Alembic migrations of the registry schema, run programmatically when a registry opens."""
