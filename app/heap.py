"""The garbage collector's view of a long-running process.

A full (generation 2) collection walks every tracked object. In the gateway
after start-up that is the framework, SQLAlchemy, pydantic and our modules:
measured at 80-100 ms a pass on the benchmark machine, which stalled whatever
request was running then (GET /jobs: p50 4.9 ms, max 104 ms). None of those
objects is ever garbage, so once the process is ready they are moved out of
the collector's way (``gc.freeze``, as CPython's documentation suggests for
long-running servers); objects made later are collected as before.
"""

from __future__ import annotations

import gc
import logging

log = logging.getLogger(__name__)


def freeze_startup_objects() -> int:
    """Collect what start-up left behind, then exempt the survivors from later
    collections; returns how many. Call once per process, when it is ready."""
    gc.collect()
    gc.freeze()
    frozen = gc.get_freeze_count()
    log.info("start-up objects kept out of garbage collection: %d", frozen)
    return frozen
