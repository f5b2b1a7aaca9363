"""jobs: an index for GET /jobs?status=…&provider=… together

With the status index or the provider index alone, the planner walks one and
filters on the other column, reading about one row in (share of the pair) for
each row of the page: 776 rows for a page of 51 at 1,000,000 jobs for a rare
pair in bench/growth.py, and more the rarer the pair. This one reads a page.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07 12:10:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_NAME = "ix_jobs_client_id_status_provider_created_at_id"


def upgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.create_index(
            _NAME, ["client_id", "status", "provider", "created_at", "id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_index(_NAME)
