"""The schema as SQLAlchemy Core tables: one place that queries import; migrations freeze each change.

Times are UNIX seconds (double precision) so SQLite and PostgreSQL compare and hash them alike.
"""

from __future__ import annotations

import sqlalchemy as sa

GENESIS_HASH = "0" * 64
"""`prev_hash` of the first event a store ever records."""

metadata = sa.MetaData()

sessions = sa.Table(
    "sessions", metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("kubectl_session", sa.String(128), nullable=False, server_default=""),
    sa.Column("subject", sa.Text, nullable=False),
    sa.Column("username", sa.Text, nullable=False),
    sa.Column("issuer", sa.Text, nullable=False),
    sa.Column("groups", sa.JSON, nullable=False),
    sa.Column("claims", sa.JSON, nullable=False),
    sa.Column("connection", sa.Text, nullable=False),
    sa.Column("command", sa.Text, nullable=False),
    sa.Column("user_agent", sa.Text, nullable=False),
    sa.Column("source", sa.Text, nullable=False),
    sa.Column("started_at", sa.Double, nullable=False),
    sa.Column("ended_at", sa.Double, nullable=False),
    sa.Column("outcome", sa.String(16), nullable=False, server_default=""),
    sa.Column("requests", sa.Integer, nullable=False, server_default="0"),
    sa.Index("ix_sessions_started_at", "started_at", "id"),
    sa.Index("ix_sessions_username", "username"),
    sa.Index("ix_sessions_kubectl", "kubectl_session", "username", unique=True,
             sqlite_where=sa.text("kubectl_session <> ''"), postgresql_where=sa.text("kubectl_session <> ''")),
)

session_groups = sa.Table(
    "session_groups", metadata,
    sa.Column("session_id", sa.String(32), primary_key=True),
    sa.Column("name", sa.Text, primary_key=True),
    sa.Index("ix_session_groups_name", "name"),
)

events = sa.Table(
    "events", metadata,
    sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("session_id", sa.String(32), nullable=True),
    sa.Column("ts", sa.Double, nullable=False),
    sa.Column("type", sa.String(16), nullable=False),
    sa.Column("verb", sa.Text, nullable=True),
    sa.Column("resource", sa.Text, nullable=True),
    sa.Column("namespace", sa.Text, nullable=True),
    sa.Column("data", sa.Text, nullable=False),
    sa.Column("prev_hash", sa.String(64), nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),
    sa.Index("ix_events_session", "session_id", "seq"),
    sa.Index("ix_events_ts", "ts"),
)

chain_head = sa.Table(
    "chain_head", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("seq", sa.BigInteger, nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),
)
"""One row (id 1): the last appended event. Locked by every append, so replicas extend one chain."""

chain_checkpoints = sa.Table(
    "chain_checkpoints", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("created_at", sa.Double, nullable=False),
    sa.Column("cutoff", sa.Double, nullable=False),
    sa.Column("through_seq", sa.BigInteger, nullable=False),
    sa.Column("last_hash", sa.String(64), nullable=False),
    sa.Column("events_removed", sa.Integer, nullable=False),
    sa.Column("sessions_removed", sa.Integer, nullable=False),
)
"""Where retention cut the chain: the remaining chain starts after `through_seq` from `last_hash`."""
