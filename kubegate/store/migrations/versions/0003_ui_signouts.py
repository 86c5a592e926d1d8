"""Web UI sign-outs, so a session cookie stops working when its owner signs out.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ui_signouts",
        sa.Column("session_digest", sa.String(64), primary_key=True),
        sa.Column("expires_at", sa.Double, nullable=False),
    )
    op.create_index("ix_ui_signouts_expires_at", "ui_signouts", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_ui_signouts_expires_at", table_name="ui_signouts")
    op.drop_table("ui_signouts")
