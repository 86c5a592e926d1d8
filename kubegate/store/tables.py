"""The schema as SQLAlchemy Core tables: one place that queries import; migrations freeze each change.

Times are UNIX seconds (double precision) so SQLite and PostgreSQL compare and hash them alike.
"""

from __future__ import annotations

import sqlalchemy as sa

GENESIS_HASH = "0" * 64
"""`prev_hash` of the first event a store ever records."""

metadata = sa.MetaData()

sessions = sa.Table(
    "sessions",
    metadata,
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
    sa.Column("via", sa.String(16), nullable=False, server_default=""),  # "mcp": opened by an MCP session
    sa.Index("ix_sessions_started_at", "started_at", "id"),
    sa.Index("ix_sessions_username", "username"),
    sa.Index(
        "ix_sessions_kubectl",
        "kubectl_session",
        "username",
        unique=True,
        sqlite_where=sa.text("kubectl_session <> ''"),
        postgresql_where=sa.text("kubectl_session <> ''"),
    ),
)

session_groups = sa.Table(
    "session_groups",
    metadata,
    sa.Column("session_id", sa.String(32), primary_key=True),
    sa.Column("name", sa.Text, primary_key=True),
    sa.Index("ix_session_groups_name", "name"),
)

events = sa.Table(
    "events",
    metadata,
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
    "chain_head",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("seq", sa.BigInteger, nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),
)
"""One row (id 1): the last appended event. Locked by every append, so replicas extend one chain."""

chain_checkpoints = sa.Table(
    "chain_checkpoints",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("created_at", sa.Double, nullable=False),
    sa.Column("cutoff", sa.Double, nullable=False),
    sa.Column("through_seq", sa.BigInteger, nullable=False),
    sa.Column("last_hash", sa.String(64), nullable=False),
    sa.Column("events_removed", sa.Integer, nullable=False),
    sa.Column("sessions_removed", sa.Integer, nullable=False),
)
"""Where retention cut the chain: the remaining chain starts after `through_seq` from `last_hash`."""

_PENDING = sa.text("state = 'pending'")

access_requests = sa.Table(
    "access_requests",
    metadata,
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
    sa.Index(
        "ix_access_requests_pending", "fingerprint", unique=True, sqlite_where=_PENDING, postgresql_where=_PENDING
    ),
    sa.Index("ix_access_requests_created", "created_at", "id"),
    sa.Index("ix_access_requests_state", "state"),
)
"""One request for a human's yes: an exact request (`kind` request, keyed by `fingerprint`) or a scope.
At most one pending row per fingerprint, so identical attempts (WebSocket and SPDY, a retried job) join it."""

approval_votes = sa.Table(
    "approval_votes",
    metadata,
    sa.Column("request_id", sa.String(16), primary_key=True),
    sa.Column("reviewer", sa.Text, primary_key=True),
    sa.Column("subject", sa.Text, nullable=False),
    sa.Column("groups", sa.JSON, nullable=False),
    sa.Column("comment", sa.Text, nullable=False, server_default=""),
    sa.Column("at", sa.Double, nullable=False),
)
"""One reviewer's approval of one request; the groups are kept as they were when the reviewer approved."""

grants = sa.Table(
    "grants",
    metadata,
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
    sa.Index("ix_grants_fingerprint", "fingerprint"),
    sa.Index("ix_grants_holder", "username", "connection"),
)
"""What an approval creates: single use (`max_uses` 1) for one fingerprint, or a scope until it expires."""

notification_outbox = sa.Table(
    "notification_outbox",
    metadata,
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
    sa.Index("ix_notification_outbox_due", "next_attempt_at"),
)
"""Notifications written in the same transaction as the change they announce, delivered and retried
from here, so a webhook that is down delays a message but never loses it."""

ui_signouts = sa.Table(
    "ui_signouts",
    metadata,
    sa.Column("session_digest", sa.String(64), primary_key=True),
    sa.Column("expires_at", sa.Double, nullable=False),
    sa.Index("ix_ui_signouts_expires_at", "expires_at"),
)
"""Web UI sessions signed out before their cookie expires (sha256 of the session's secret), kept until
then: a copied cookie stops working at sign-out, on every replica."""

chain_anchors = sa.Table(
    "chain_anchors",
    metadata,
    sa.Column("number", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("seq", sa.BigInteger, nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),
    sa.Column("created_at", sa.Double, nullable=False),
    sa.Column("key_id", sa.String(64), nullable=False),
    sa.Column("document", sa.Text, nullable=False),
    sa.Column("delivered", sa.JSON, nullable=False),
)
"""Signed checkpoints of the chain head, and which external anchors (s3, webhook) have each one. The
anchors, not this table, are what `audit verify` trusts: this one says what should be found there."""

export_cursors = sa.Table(
    "export_cursors",
    metadata,
    sa.Column("sink", sa.String(63), primary_key=True),
    sa.Column("seq", sa.BigInteger, nullable=False),
    sa.Column("updated_at", sa.Double, nullable=False),
    sa.Column("owner", sa.String(32), nullable=False, server_default=""),
    sa.Column("lease_until", sa.Double, nullable=False, server_default="0"),
)
"""The last event each export sink acknowledged: the events table is the outbox, this the cursor into it.
`owner` holds the sink's lease until `lease_until`, so of several replicas one exports each sink at a time."""

slack_replays = sa.Table(
    "slack_replays",
    metadata,
    sa.Column("signature_digest", sa.String(64), primary_key=True),
    sa.Column("expires_at", sa.Double, nullable=False),
    sa.Index("ix_slack_replays_expires_at", "expires_at"),
)
"""Slack interactions already acted on (sha256 of the signature), kept until Slack's five-minute window
for their timestamp has passed: a replay to any replica finds its row."""
