"""jobs.vendor_signalled_at: a vendor callback that found no poll waiting

A callback makes the job's poll task due now. One that came while the submit's
answer (or a poll) was still on its way found nothing to make due, and the job
waited for its next scheduled poll. The callback now leaves this mark, and the
next poll scheduled for the job is due at once.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07 09:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("vendor_signalled_at", sa.DateTime(timezone=True), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_column("vendor_signalled_at")
