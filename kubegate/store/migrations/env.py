"""Alembic environment: always runs on the connection `kubegate.store.engine` hands over."""

from alembic import context

from kubegate.store.tables import metadata

context.configure(connection=context.config.attributes["connection"], target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
