"""kubegate's database: SQLAlchemy Core tables and Alembic migrations, on SQLite or PostgreSQL."""
