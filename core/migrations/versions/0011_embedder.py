"""Which embedder wrote each document version (model, mode and recipe).

A change of embedder re-embeds a document on its next ingest or sync instead of leaving
two vector spaces in one collection; `enclave status` shows a mix while one exists.
Versions stored before have none (NULL), and are re-embedded on their next ingest.

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("document_versions", sa.Column("embedder", sa.Text(), nullable=True))


def downgrade() -> None:
    op.drop_column("document_versions", "embedder")
