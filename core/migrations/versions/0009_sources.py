"""Sources (folders, SMB shares, IMAP mailboxes, intranet sites) and what each held at its
last sync: one row per entry with its change signals, so a re-sync fetches only what
changed and deletes what disappeared.

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "sources",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("location", sa.Text(), nullable=False),
        sa.Column("username", sa.Text(), nullable=True),
        sa.Column("credentials", sa.Text(), nullable=True),
        sa.Column("include_json", sa.Text(), nullable=False),
        sa.Column("exclude_json", sa.Text(), nullable=False),
        sa.Column("groups_json", sa.Text(), nullable=False),
        sa.Column("mapping_json", sa.Text(), nullable=False),
        sa.Column("options_json", sa.Text(), nullable=False),
        sa.Column("every_s", sa.Integer(), nullable=True),
        sa.Column("job_id", sa.String(36), nullable=True),
        sa.Column("last_sync_at", _TS, nullable=True),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("updated_at", _TS, nullable=False),
    )
    op.create_table(
        "source_entries",
        sa.Column("source", sa.String(64), sa.ForeignKey("sources.name", ondelete="CASCADE"),
                  primary_key=True),
        sa.Column("key", sa.Text(), primary_key=True),
        sa.Column("location", sa.Text(), nullable=False),
        sa.Column("doc_id", sa.String(36), nullable=False),
        sa.Column("entry_json", sa.Text(), nullable=False),
        sa.Column("listed_signal", sa.Text(), nullable=False),
        sa.Column("synced_signal", sa.Text(), nullable=True),
        sa.Column("seen_job", sa.String(36), nullable=True),
    )
    op.create_index("ix_source_entries_location", "source_entries", ["source", "location"])


def downgrade() -> None:
    op.drop_index("ix_source_entries_location", "source_entries")
    op.drop_table("source_entries")
    op.drop_table("sources")
