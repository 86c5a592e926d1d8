"""Sessions, events with their hash chain, and retention checkpoints.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

GENESIS_HASH = "0" * 64


def upgrade() -> None:
    op.create_table(
        "sessions",
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
    )
    op.create_index("ix_sessions_started_at", "sessions", ["started_at", "id"])
    op.create_index("ix_sessions_username", "sessions", ["username"])
    op.create_index(
        "ix_sessions_kubectl",
        "sessions",
        ["kubectl_session", "username"],
        unique=True,
        sqlite_where=sa.text("kubectl_session <> ''"),
        postgresql_where=sa.text("kubectl_session <> ''"),
    )
    op.create_table(
        "session_groups",
        sa.Column("session_id", sa.String(32), primary_key=True),
        sa.Column("name", sa.Text, primary_key=True),
    )
    op.create_index("ix_session_groups_name", "session_groups", ["name"])
    op.create_table(
        "events",
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
    )
    op.create_index("ix_events_session", "events", ["session_id", "seq"])
    op.create_index("ix_events_ts", "events", ["ts"])
    head = op.create_table(
        "chain_head",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
    )
    op.bulk_insert(head, [{"id": 1, "seq": 0, "hash": GENESIS_HASH}])
    op.create_table(
        "chain_checkpoints",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.Column("cutoff", sa.Double, nullable=False),
        sa.Column("through_seq", sa.BigInteger, nullable=False),
        sa.Column("last_hash", sa.String(64), nullable=False),
        sa.Column("events_removed", sa.Integer, nullable=False),
        sa.Column("sessions_removed", sa.Integer, nullable=False),
    )


def downgrade() -> None:
    for table in ("chain_checkpoints", "chain_head", "events", "session_groups", "sessions"):
        op.drop_table(table)
