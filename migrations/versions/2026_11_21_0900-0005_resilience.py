"""idempotency keys, the submit ledger, fallback providers and deadlines, listing indexes

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-21 09:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("fallback_providers", sa.JSON(), nullable=False, server_default="[]")
        )
        batch_op.add_column(
            sa.Column("provider_attempts", sa.JSON(), nullable=False, server_default="[]")
        )
        batch_op.add_column(sa.Column("deadline_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index(
            "ix_jobs_client_id_status_created_at_id",
            ["client_id", "status", "created_at", "id"],
            unique=False,
        )
        batch_op.create_index(
            "ix_jobs_client_id_provider_created_at_id",
            ["client_id", "provider", "created_at", "id"],
            unique=False,
        )
        batch_op.create_index("ix_jobs_completed_at", ["completed_at"], unique=False)
    # The defaults were for the rows already there; the application writes its own.
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.alter_column("fallback_providers", server_default=None)
        batch_op.alter_column("provider_attempts", server_default=None)

    op.create_table(
        "idempotency_keys",
        sa.Column("client_id", sa.String(length=40), nullable=False),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("request_hash", sa.String(length=64), nullable=False),
        sa.Column("job_id", sa.String(length=40), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["client_id"],
            ["clients.id"],
            name=op.f("fk_idempotency_keys_client_id_clients"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["job_id"],
            ["jobs.id"],
            name=op.f("fk_idempotency_keys_job_id_jobs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("client_id", "key", name=op.f("pk_idempotency_keys")),
    )
    with op.batch_alter_table("idempotency_keys", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_idempotency_keys_created_at"), ["created_at"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_idempotency_keys_job_id"), ["job_id"], unique=False)

    op.create_table(
        "provider_submissions",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("job_id", sa.String(length=40), nullable=False),
        sa.Column("provider", sa.String(length=40), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("outcome", sa.String(length=20), nullable=True),
        sa.Column("provider_job_id", sa.String(length=200), nullable=True),
        sa.ForeignKeyConstraint(
            ["job_id"],
            ["jobs.id"],
            name=op.f("fk_provider_submissions_job_id_jobs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_provider_submissions")),
    )
    with op.batch_alter_table("provider_submissions", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_provider_submissions_job_id"), ["job_id"], unique=False
        )


def downgrade() -> None:
    op.drop_table("provider_submissions")
    op.drop_table("idempotency_keys")
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_index("ix_jobs_completed_at")
        batch_op.drop_index("ix_jobs_client_id_provider_created_at_id")
        batch_op.drop_index("ix_jobs_client_id_status_created_at_id")
        batch_op.drop_column("deadline_at")
        batch_op.drop_column("provider_attempts")
        batch_op.drop_column("fallback_providers")
