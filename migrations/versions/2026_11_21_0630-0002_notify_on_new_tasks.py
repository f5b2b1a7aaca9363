"""notify workers from the database when a task is inserted

A statement-level trigger sends NOTIFY stt_tasks for every INSERT into tasks,
so the code that writes a task needs no extra round trip to wake the workers
(and a job and its first task can be written by one statement).
PostgreSQL only: SQLite has one process, woken in memory.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21 06:30:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(
        """
        CREATE FUNCTION stt_notify_tasks() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_notify('stt_tasks', '');
            RETURN NULL;
        END $$
        """
    )
    op.execute(
        "CREATE TRIGGER tasks_notify AFTER INSERT ON tasks "
        "FOR EACH STATEMENT EXECUTE FUNCTION stt_notify_tasks()"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP TRIGGER tasks_notify ON tasks")
    op.execute("DROP FUNCTION stt_notify_tasks()")
