"""A number measured over replicate runs (its mean and Student-t interval, report.stats.mean_ci), and a criterion
on it judged at both ends of the interval.

A criterion `value >= threshold` (or <=) is evaluated three ways: at the mean, at the interval's end least
favourable to it (conservative) and at the end most favourable (optimistic). It

  holds    at the conservative end (so at the mean and the optimistic end too);
  fails    even at the optimistic end (the interval excludes it holding);
  fragile  otherwise: the interval straddles the threshold (the mean may pass or fail);
  missing  no run has the value (e.g. no unseen composition): nothing is decided.

A difference of two estimates takes interval arithmetic (low = a.low - b.high, high = a.high - b.low): it assumes
no pairing between the two settings' seeds, so it is conservative. One run has no interval: its ends are its value.
"""

import math
from collections.abc import Iterable
from dataclasses import dataclass

from report.stats import mean_ci

HOLDS, FRAGILE, FAILS, MISSING = "holds", "fragile", "fails", "not measured"


@dataclass(frozen=True)
class Estimate:
    """Mean of one quantity over replicate runs, with its interval (None with fewer than two values)."""

    mean: float
    low: float | None
    high: float | None
    n: int  # runs that have the quantity

    @property
    def ends(self) -> tuple[float, float]:
        """(low, high), the mean itself when there is no interval."""
        return (self.mean if self.low is None else self.low), (self.mean if self.high is None else self.high)

    def __sub__(self, other: "Estimate") -> "Estimate":
        (a_low, a_high), (b_low, b_high) = self.ends, other.ends
        both = self.low is not None and other.low is not None
        return Estimate(self.mean - other.mean, a_low - b_high if both else None, a_high - b_low if both else None,
                        min(self.n, other.n))

    def text(self) -> str:
        """'0.952 [0.931, 0.973]', '0.952 (1 run)' or '–' (no run has it)."""
        if self.n == 0:
            return "–"
        if self.low is None:
            return f"{self.mean:.3f} (1 run)"
        return f"{self.mean:.3f} [{self.low:.3f}, {self.high:.3f}]"


def estimate(values: Iterable[float | None], confidence: float) -> Estimate:
    """The mean and interval of the values that are not None."""
    mean, low, high, n = mean_ci([math.nan if v is None else v for v in values], confidence)
    return Estimate(mean, low, high, n)


@dataclass(frozen=True)
class Check:
    """One criterion: `value` compared with `threshold` by `op` ('>=' or '<=')."""

    name: str  # what is compared, e.g. "unseen accuracy, random 50"
    value: Estimate
    op: str
    threshold: float

    @property
    def state(self) -> str:
        low, high = self.value.ends
        conservative, optimistic = (low, high) if self.op == ">=" else (-high, -low)
        threshold = self.threshold if self.op == ">=" else -self.threshold
        if self.value.n == 0:
            return MISSING
        if optimistic < threshold:
            return FAILS
        return HOLDS if conservative >= threshold else FRAGILE

    def text(self) -> str:
        return f"{self.name} {self.value.text()} {self.op} {self.threshold:g}: {self.state}"

    def record(self) -> dict:
        """findings.json: the numbers behind the check."""
        v = self.value
        return {"name": self.name, "mean": None if v.n == 0 else v.mean, "ci_low": v.low, "ci_high": v.high,
                "n_runs": v.n, "op": self.op, "threshold": self.threshold, "state": self.state}


def all_of(states: Iterable[str]) -> str:
    """Every criterion must hold: one unmeasured criterion decides nothing, else one failure fails, else one
    fragile criterion makes the whole fragile."""
    states = list(states)
    return next((s for s in (MISSING, FAILS, FRAGILE) if s in states), HOLDS)
