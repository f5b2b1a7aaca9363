"""notify workers only of tasks they can claim

A task inserted already leased (the OpenAI route runs its own job's submit)
is no worker's to take: its NOTIFY woke every worker of every process into a
claim that could find nothing. The trigger now looks at the inserted rows and
stays silent when all of them are leased.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-21 13:00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_NOTIFY_ALWAYS = """
    CREATE OR REPLACE FUNCTION stt_notify_tasks() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        PERFORM pg_notify('stt_tasks', '');
        RETURN NULL;
    END $$
"""

_NOTIFY_IF_CLAIMABLE = """
    CREATE OR REPLACE FUNCTION stt_notify_tasks() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF EXISTS (SELECT 1 FROM inserted_tasks WHERE claim_token IS NULL) THEN
            PERFORM pg_notify('stt_tasks', '');
        END IF;
        RETURN NULL;
    END $$
"""


def _replace_trigger(function: str, referencing: str) -> None:
    if op.get_bind().dialect.name != "postgresql":
        return  # SQLite has one process, woken in memory
    op.execute("DROP TRIGGER tasks_notify ON tasks")
    op.execute(function)
    op.execute(
        f"CREATE TRIGGER tasks_notify AFTER INSERT ON tasks {referencing}"
        "FOR EACH STATEMENT EXECUTE FUNCTION stt_notify_tasks()"
    )


def upgrade() -> None:
    _replace_trigger(_NOTIFY_IF_CLAIMABLE, "REFERENCING NEW TABLE AS inserted_tasks ")


def downgrade() -> None:
    _replace_trigger(_NOTIFY_ALWAYS, "")
