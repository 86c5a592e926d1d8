"""Slack interactions seen, so a replay is refused by every replica.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "slack_replays",
        sa.Column("signature_digest", sa.String(64), primary_key=True),
        sa.Column("expires_at", sa.Double, nullable=False),
    )
    op.create_index("ix_slack_replays_expires_at", "slack_replays", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_slack_replays_expires_at", table_name="slack_replays")
    op.drop_table("slack_replays")
