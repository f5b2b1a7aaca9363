"""The report of bench/lifecycle.py: the table per topology, the goal, CPU per job by
process, SQL statements and new connections per job, and any problem the checks found."""

from __future__ import annotations

import json
from typing import Any

from bench.common import table_head, table_row

GOAL_JOBS_PER_SECOND = 300.0


def _f(value: float | None, digits: int = 1) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def report(results: list[dict[str, Any]]) -> None:
    print("\n| topology | jobs | jobs/s end to end | creates/s | create p50/p99 ms "
          "| end to end p50/p99 s | all completed | webhooks missing/dup | vendor submits = jobs |"
          "\n|---|---:|---:|---:|---:|---:|---|---:|---|")  # fmt: skip
    for r in results:
        c = r["checks"]
        completed = c["completed_in_db"] == c["created"] == r["jobs_asked"]
        print(
            f"| {r['topology']}: {r['description']} | {c['created']} | "
            f"{r['jobs_per_second']:.1f} | {r['creates_per_second']:.1f} | "
            f"{r['create_p50_ms']:.0f} / {r['create_p99_ms']:.0f} | "
            f"{_f(r['end_to_end_p50_s'], 2)} / {_f(r['end_to_end_p99_s'], 2)} | "
            f"{'yes' if completed else 'NO ' + json.dumps(c['not_completed_in_db'])} | "
            f"{c['webhooks_missing']} / {c['webhooks_duplicate']} | "
            f"{'yes' if c['vendor_submits_equal_jobs'] else 'NO'} |"
        )
    print()
    for r in results:
        ratio = r["jobs_per_second"] / GOAL_JOBS_PER_SECOND
        print(f"{r['topology']}: {r['jobs_per_second']:.1f} jobs/s end to end = "
              f"{ratio:.2f} of the goal ({GOAL_JOBS_PER_SECOND:.0f} jobs/s)")  # fmt: skip
    if len(results) == 2:
        a, b = results
        print(f"B/A: {b['jobs_per_second'] / a['jobs_per_second']:.2f}")
    for r in results:
        vendors = ", ".join(
            f"{vendor} {p50:.2f}/{p99:.2f}"
            for vendor, (p50, p99) in r["end_to_end_p50_p99_s_by_vendor"].items()
        )
        print(f"{r['topology']}: end to end p50/p99 s by vendor: {vendors}")
    print("\nCPU per job (ms), by process:")
    names = sorted({n for r in results for n in r["cpu_ms_per_job"]})
    print(table_head(["process", *(r["topology"] for r in results)]))
    for name in names:
        print(table_row([name, *(_f(r["cpu_ms_per_job"].get(name)) for r in results)]))
    print(table_row(["all", *(_f(sum(r["cpu_ms_per_job"].values())) for r in results)]))
    for r in results:
        if r["statements_per_job"]:
            per_job = r["statements_per_job"]
            print(f"\n{r['topology']}: SQL statements per job, {sum(per_job.values()):.1f} in all:")
            for kind, n in sorted(per_job.items(), key=lambda kv: -kv[1]):
                print(f"  {n:6.2f}  {kind}")
    for r in results:
        db, done = r["database"], max(r["completed_with_webhook"], 1)
        print(f"{r['topology']}: {db['connections_opened'] / done:.2f} PostgreSQL connections "
              "opened per job (pool churn)")  # fmt: skip
    for r in results:
        c = r["checks"]
        problems = {k: c[k] for k in ("webhooks_unexpected", "webhooks_duplicate_events",
                                      "bad_signatures") if c[k]}  # fmt: skip
        if problems or c["other_events"] or r["creation_errors"]:
            print(f"{r['topology']}: {problems} other events {dict(c['other_events'])} "
                  f"creation errors {r['creation_errors']}")  # fmt: skip
        for vendor, v in c["vendors"].items():
            if not v["accepted"] == v["jobs"] == v["submit_requests"]:
                print(f"{r['topology']}: {vendor} {v}")
