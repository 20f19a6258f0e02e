"""Alembic environment: always driven programmatically by ``modelyard.store.db.migrate`` with a live connection."""

from alembic import context

from modelyard.store.db import full_metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=full_metadata(), render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
