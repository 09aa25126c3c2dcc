"""The owner's evaluation: golden sets (questions with who added them and from which audit
record), evaluation runs with their per-question results, and the latest feedback an
asker gave each answer (the feedback itself is an audit record; this table indexes it).

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "golden_questions",
        sa.Column("set_name", sa.String(64), primary_key=True),
        sa.Column("qid", sa.String(128), primary_key=True),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("body_json", sa.Text(), nullable=False),
        sa.Column("added_by", sa.String(200), nullable=True),
        sa.Column("from_record", sa.String(36), nullable=True),
        sa.Column("added_at", _TS, nullable=False),
    )
    op.create_table(
        "eval_runs",
        sa.Column("run_id", sa.String(36), primary_key=True),
        sa.Column("batch_id", sa.String(36), nullable=False, index=True),
        sa.Column("golden", sa.Text(), nullable=False),
        sa.Column("golden_sha256", sa.String(64), nullable=False),
        sa.Column("config", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("settings_json", sa.Text(), nullable=False),
        sa.Column("figures_json", sa.Text(), nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.Column("started_at", _TS, nullable=False, index=True),
        sa.Column("finished_at", _TS, nullable=True),
    )
    op.create_table(
        "eval_results",
        sa.Column("run_id", sa.String(36), sa.ForeignKey("eval_runs.run_id", ondelete="CASCADE"),
                  primary_key=True),
        sa.Column("position", sa.Integer(), primary_key=True),
        sa.Column("qid", sa.String(128), nullable=False),
        sa.Column("body_json", sa.Text(), nullable=False),
    )
    op.create_table(
        "answer_feedback",
        sa.Column("answer_record_id", sa.String(36), primary_key=True),
        sa.Column("user_id", sa.String(200), nullable=False),
        sa.Column("rating", sa.String(8), nullable=False, index=True),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.Column("feedback_record_id", sa.String(36), nullable=False),
        sa.Column("at", sa.String(32), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("answer_feedback")
    op.drop_table("eval_results")
    op.drop_table("eval_runs")
    op.drop_table("golden_questions")
