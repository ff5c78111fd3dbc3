"""Verdict words and the rules that turn criteria checks (report.estimates) into a verdict with a one-line reason.

A judgement rests on some settings, each read as a Point (its replicates at a common step). Before any criterion:

  1. every replicate must fit its own training compositions (accuracy_train >= criteria.fit_min), else
     inconclusive, naming the runs that did not fit;
  2. every setting needs >= criteria.min_seeds replicates, else inconclusive.

Then the criteria, each judged at its interval's ends (report.estimates): all hold -> reproduced; one fails ->
not reproduced; otherwise (an interval straddles a threshold) -> inconclusive (fragile). A criterion without a
value (no run measured it) makes the verdict inconclusive.
"""

from collections.abc import Sequence

from report.criteria import Criteria
from report.estimates import FAILS, FRAGILE, HOLDS, MISSING, Check, all_of
from report.measures import Point

REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE, FRAGILE_VERDICT, NOT_RUN = (
    "reproduced", "not reproduced", "inconclusive", "inconclusive (fragile)", "not run")
VERDICTS = (REPRODUCED, NOT_REPRODUCED, FRAGILE_VERDICT, INCONCLUSIVE, NOT_RUN)
WORD = {HOLDS: REPRODUCED, FAILS: NOT_REPRODUCED, FRAGILE: FRAGILE_VERDICT, MISSING: INCONCLUSIVE}


def eligible(point: Point, c: Criteria) -> bool:
    """The point's replicates all fit their training compositions and are at least min_seeds."""
    return not point.unfit(c.fit_min) and point.n >= c.min_seeds


def gate(points: Sequence[Point], c: Criteria) -> str | None:
    """Why these points cannot support a verdict (rules 1 and 2), or None."""
    unfit = [u for p in points for u in p.unfit(c.fit_min)]
    if unfit:
        return (f"did not fit its training compositions (accuracy_train below fit_min {c.fit_min:g}): "
                + ", ".join(unfit))
    few = [f"{p.label} ({p.n} run{'s' * (p.n != 1)})" for p in points if p.n < c.min_seeds]
    if few:
        return f"fewer than min_seeds {c.min_seeds} replicates: " + ", ".join(few)
    return None


def decide(points: Sequence[Point], checks: Sequence[Check], c: Criteria) -> tuple[str, str]:
    """(verdict, one-line reason) for criteria `checks` measured on `points`; `c`: the criteria's common keys."""
    blocked = gate(points, c)
    if blocked:
        return INCONCLUSIVE, blocked
    state = all_of(ch.state for ch in checks)
    shown = checks if state == HOLDS else [ch for ch in checks if ch.state == state]
    return WORD[state], "; ".join(ch.text() for ch in shown)
