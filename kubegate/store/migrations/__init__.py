"""Alembic migrations, run by `Store.open` and `kubegate db upgrade` (no alembic.ini needed)."""
