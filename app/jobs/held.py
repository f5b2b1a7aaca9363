"""A submit the request that made the job runs itself (the OpenAI route).

The request holds what a worker would read back from the database: the job
as it was inserted (already ``processing``, its ledger row open). The step
fills in how the job ended, so the request answers without reading the job
and its transcript again. Nothing here is stored: if the process dies, the
task's lease runs out and a worker finds the open ledger row, as after any
submit cut off by a crash.
"""

from __future__ import annotations

from dataclasses import dataclass

from app.models import Job
from app.transcripts import Transcript


@dataclass
class HeldSubmit:
    job: Job
    submission: int | None  # the ledger row written with the job (none for the local engine)
    completed: Job | None = None  # the job as its completion left it
    transcript: Transcript | None = None
