"""Users (principals) and their API keys, stored as SHA-256 digests.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("user_id", sa.String(200), primary_key=True),
        sa.Column("groups_json", sa.Text(), nullable=False),
        sa.Column("roles_json", sa.Text(), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("revoked_at", _TS, nullable=True),
    )
    op.create_table(
        "api_keys",
        sa.Column("key_id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("user_id", sa.String(200), sa.ForeignKey("users.user_id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("key_sha256", sa.String(64), nullable=False, unique=True),
        sa.Column("shown", sa.String(16), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("revoked_at", _TS, nullable=True),
    )
    op.create_index("ix_api_keys_user_id", "api_keys", ["user_id"])


def downgrade() -> None:
    op.drop_table("api_keys")
    op.drop_table("users")
