"""The report of bench/growth.py: the latency table with its ratios, the
same-rows comparison of the short pages, and the query plans and their checks."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from bench.common import pct, table_head
from bench.growth_plans import PlanCheck
from bench.growth_shapes import PAGE, Shape, Target, Timings

GOAL_RATIO = 2.0


@dataclass
class Stage:
    """Everything measured at one size."""

    size: int
    timings: dict[str, Timings]
    target: Target
    plans: dict[str, PlanCheck]
    # The shapes whose page was shorter at the small size, timed again here with
    # that page's length as the limit: the same work at both sizes.
    same_rows: dict[str, Timings] = field(default_factory=dict)


def print_latencies(small: Stage, large: Stage) -> list[str]:
    """The latency table; returns the shapes whose p99 grew past the goal."""
    s, g = f"{small.size:,}", f"{large.size:,}"
    columns = [f"query ({PAGE} a page)", f"p50 ms {s}", f"p99 ms {s}", f"p50 ms {g}",
               f"p99 ms {g}", "p50 ratio", "p99 ratio", f"conc. p99 {s}", f"conc. p99 {g}",
               "conc. p99 ratio"]  # fmt: skip
    print("\n" + table_head(columns))
    over = []
    for name, at_small in small.timings.items():
        at_large = large.timings[name]
        seq_small = pct(at_small.sequential, 0.5), pct(at_small.sequential, 0.99)
        seq_large = pct(at_large.sequential, 0.5), pct(at_large.sequential, 0.99)
        conc_small, conc_large = pct(at_small.concurrent, 0.99), pct(at_large.concurrent, 0.99)
        if seq_large[1] / seq_small[1] > GOAL_RATIO:
            over.append(name)
        print(
            f"| {name} | {seq_small[0]:.1f} | {seq_small[1]:.1f} | {seq_large[0]:.1f} "
            f"| {seq_large[1]:.1f} | {seq_large[0] / seq_small[0]:.2f} "
            f"| {seq_large[1] / seq_small[1]:.2f} | {conc_small:.1f} | {conc_large:.1f} "
            f"| {conc_large / conc_small:.2f} |"
        )
    return over


def short_pages(small: Stage, all_shapes: list[Shape]) -> list[Shape]:
    """The list shapes whose page at the small size held fewer than ``PAGE`` jobs,
    each with that length as its limit."""
    shorter = []
    for shape in all_shapes:
        rows = min(small.plans[shape.name].rows_returned, PAGE)
        if not shape.by_id and 0 < rows < PAGE:
            shorter.append(replace(shape, limit=rows))
    return shorter


def print_same_rows(small: Stage, large: Stage) -> list[str]:
    """Sequential p50/p99 of the short pages at both sizes with the same limit:
    the growth of the query alone, not of the page it answers. Returns the
    shapes whose p99 grew past the goal even so."""
    over: list[str] = []
    if not large.same_rows:
        return over
    s, g = f"{small.size:,}", f"{large.size:,}"
    columns = ["query, the same rows at both sizes", "rows", f"p50 / p99 ms {s}",
               f"p50 / p99 ms {g}", "p50 ratio", "p99 ratio"]  # fmt: skip
    print("\n" + table_head(columns, text_columns=1))
    for name, at_large in large.same_rows.items():
        at_small = small.timings[name].sequential
        rows = min(small.plans[name].rows_returned, PAGE)
        p_small = pct(at_small, 0.5), pct(at_small, 0.99)
        p_large = pct(at_large.sequential, 0.5), pct(at_large.sequential, 0.99)
        if p_large[1] / p_small[1] > GOAL_RATIO:
            over.append(name)
        print(
            f"| {name} | {rows} | {p_small[0]:.1f} / {p_small[1]:.1f} "
            f"| {p_large[0]:.1f} / {p_large[1]:.1f} | {p_large[0] / p_small[0]:.2f} "
            f"| {p_large[1] / p_small[1]:.2f} |"
        )
    return over


def print_plans(small: Stage, large: Stage) -> list[str]:
    """The plans at the large size in full, then both sizes side by side; returns
    the shapes whose plan at the large size scans the table (at the small one a
    sequential scan of a few pages can be the right plan)."""
    for name, plan in large.plans.items():
        print(f"\n--- {name}, {large.size:,} jobs: EXPLAIN (ANALYZE, BUFFERS)\n{plan.text}")
    s, g = f"{small.size:,}", f"{large.size:,}"
    columns = ["query", f"plan at {g}", f"generic plan at {g}", f"plan at {s}",
               f"rows read / returned {s}", g, f"db p50 / p99 ms {s}", g]  # fmt: skip
    print("\n" + table_head(columns, text_columns=4))
    scanning = []
    for name, plan in large.plans.items():
        before = small.plans[name]
        if plan.seq_scan or plan.generic_seq_scan or "Index" not in plan.access:
            scanning.append(name)
        print(
            f"| {name} | {plan.access} | {plan.generic_access} | {before.access} "
            f"| {before.rows_read} / {before.rows_returned} "
            f"| {plan.rows_read} / {plan.rows_returned} "
            f"| {pct(before.db_latencies, 0.5):.2f} / {pct(before.db_latencies, 0.99):.2f} "
            f"| {pct(plan.db_latencies, 0.5):.2f} / {pct(plan.db_latencies, 0.99):.2f} |"
        )
    return scanning
