"""The audit trail: hash-chained records, the chain's head, and the passage texts they cite.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_AT = sa.String(32)  # UTC ISO time with microseconds: sorts as text, hashes the same everywhere


def upgrade() -> None:
    op.create_table(
        "audit_records",
        sa.Column("seq", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("record_id", sa.String(36), nullable=False, unique=True),
        sa.Column("kind", sa.String(60), nullable=False),
        sa.Column("at", _AT, nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("refused", sa.Boolean(), nullable=True),
        sa.Column("unsupported", sa.Integer(), nullable=False),
        sa.Column("question", sa.Text(), nullable=True),
        sa.Column("answer", sa.Text(), nullable=True),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
    )
    op.create_index("ix_audit_records_kind", "audit_records", ["kind"])
    op.create_index("ix_audit_records_at", "audit_records", ["at"])
    op.create_index("ix_audit_records_actor", "audit_records", ["actor"])
    head = op.create_table(
        "audit_head",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
    )
    op.bulk_insert(head, [{"id": 1, "seq": 0, "hash": "0" * 64}])
    op.create_table(
        "audit_texts",
        sa.Column("chunk_id", sa.String(36), primary_key=True),
        sa.Column("text_sha256", sa.String(64), primary_key=True),
        sa.Column("doc_id", sa.String(36), nullable=False),
        sa.Column("version", sa.String(64), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("text", sa.Text(), nullable=True),
        sa.Column("first_at", _AT, nullable=False),
        sa.Column("last_at", _AT, nullable=False),
        sa.Column("purged_at", _AT, nullable=True),
        sa.Column("purge_reason", sa.Text(), nullable=True),
    )
    op.create_index("ix_audit_texts_doc_id", "audit_texts", ["doc_id"])
    op.create_index("ix_audit_texts_last_at", "audit_texts", ["last_at"])


def downgrade() -> None:
    op.drop_table("audit_texts")
    op.drop_table("audit_head")
    op.drop_table("audit_records")
