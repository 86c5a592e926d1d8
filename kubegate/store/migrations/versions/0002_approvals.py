"""Access requests, approval votes, grants and the notification outbox.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

PENDING = sa.text("state = 'pending'")


def upgrade() -> None:
    op.create_table(
        "access_requests",
        sa.Column("id", sa.String(16), primary_key=True),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=True),
        sa.Column("username", sa.Text, nullable=False),
        sa.Column("subject", sa.Text, nullable=False),
        sa.Column("issuer", sa.Text, nullable=False),
        sa.Column("groups", sa.JSON, nullable=False),
        sa.Column("claims", sa.JSON, nullable=False),
        sa.Column("connection", sa.Text, nullable=False),
        sa.Column("method", sa.String(16), nullable=False, server_default=""),
        sa.Column("path", sa.Text, nullable=False, server_default=""),
        sa.Column("query", sa.Text, nullable=False, server_default=""),
        sa.Column("info", sa.JSON, nullable=True),
        sa.Column("content_type", sa.Text, nullable=False, server_default=""),
        sa.Column("body_sha256", sa.String(64), nullable=False, server_default=""),
        sa.Column("body_bytes", sa.Integer, nullable=False, server_default="0"),
        sa.Column("kubectl_command", sa.Text, nullable=False, server_default=""),
        sa.Column("summary", sa.Text, nullable=False, server_default=""),
        sa.Column("scope", sa.JSON, nullable=True),
        sa.Column("reason", sa.Text, nullable=False, server_default=""),
        sa.Column("rules", sa.JSON, nullable=False),
        sa.Column("mode", sa.String(8), nullable=False),
        sa.Column("session_id", sa.String(32), nullable=True),
        sa.Column("server", sa.Text, nullable=False, server_default=""),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.Column("expires_at", sa.Double, nullable=False),
        sa.Column("decided_at", sa.Double, nullable=True),
        sa.Column("decided_by", sa.Text, nullable=False, server_default=""),
        sa.Column("decision_reason", sa.Text, nullable=False, server_default=""),
    )
    op.create_index(
        "ix_access_requests_pending",
        "access_requests",
        ["fingerprint"],
        unique=True,
        sqlite_where=PENDING,
        postgresql_where=PENDING,
    )
    op.create_index("ix_access_requests_created", "access_requests", ["created_at", "id"])
    op.create_index("ix_access_requests_state", "access_requests", ["state"])
    op.create_table(
        "approval_votes",
        sa.Column("request_id", sa.String(16), primary_key=True),
        sa.Column("reviewer", sa.Text, primary_key=True),
        sa.Column("subject", sa.Text, nullable=False),
        sa.Column("groups", sa.JSON, nullable=False),
        sa.Column("comment", sa.Text, nullable=False, server_default=""),
        sa.Column("at", sa.Double, nullable=False),
    )
    op.create_table(
        "grants",
        sa.Column("request_id", sa.String(16), primary_key=True),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("username", sa.Text, nullable=False),
        sa.Column("connection", sa.Text, nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=True),
        sa.Column("scope", sa.JSON, nullable=True),
        sa.Column("rules", sa.JSON, nullable=False),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.Column("expires_at", sa.Double, nullable=False),
        sa.Column("max_uses", sa.Integer, nullable=True),
        sa.Column("uses", sa.Integer, nullable=False, server_default="0"),
        sa.Column("last_used_at", sa.Double, nullable=True),
        sa.Column("revoked_at", sa.Double, nullable=True),
        sa.Column("revoked_by", sa.Text, nullable=False, server_default=""),
        sa.Column("revoke_reason", sa.Text, nullable=False, server_default=""),
    )
    op.create_index("ix_grants_fingerprint", "grants", ["fingerprint"])
    op.create_index("ix_grants_holder", "grants", ["username", "connection"])
    op.create_table(
        "notification_outbox",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("request_id", sa.String(16), nullable=False),
        sa.Column("event", sa.String(16), nullable=False),
        sa.Column("webhook", sa.String(63), nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("next_attempt_at", sa.Double, nullable=False),
        sa.Column("delivered_at", sa.Double, nullable=True),
        sa.Column("failed_at", sa.Double, nullable=True),
        sa.Column("last_error", sa.Text, nullable=False, server_default=""),
    )
    op.create_index("ix_notification_outbox_due", "notification_outbox", ["next_attempt_at"])


def downgrade() -> None:
    for table in ("notification_outbox", "grants", "approval_votes", "access_requests"):
        op.drop_table(table)
