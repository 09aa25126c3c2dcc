"""A document's display name: its path relative to the folder it was ingested from.

Employees see it instead of the server's absolute path; auditors and admins keep both.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("documents", sa.Column("display_name", sa.Text(), nullable=True))


def downgrade() -> None:
    op.drop_column("documents", "display_name")
