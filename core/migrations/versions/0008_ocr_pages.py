"""The pages OCR read in each document version, with their mean word confidence.

`enclave status` and the admin job detail list the pages read with less than
ENCLAVE_OCR__MIN_CONFIDENCE; versions stored before have none (NULL).

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("document_versions", sa.Column("ocr_json", sa.Text(), nullable=True))


def downgrade() -> None:
    op.drop_column("document_versions", "ocr_json")
