"""The audit chain's seal: a signature over each record's hash, by a key the database lacks.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # "<key id>:<signature>"; outside the hashed fields, so that a record's hash can be signed.
    # Records from before sealing have none.
    op.add_column("audit_records", sa.Column("seal", sa.Text(), nullable=True))


def downgrade() -> None:
    op.drop_column("audit_records", "seal")
