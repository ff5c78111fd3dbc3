"""How a finding's verdict is reached: the thresholds (config/report/conf.yaml `criteria`, typed: parsed once with the
report config, pipeline.report.ReportConfig), the verdict words, the rules that turn criteria checks
(report.stats.Check) into a verdict with a one-line reason, and the Finding record with the markdown its details are
written in.

A judgement rests on some settings, each read as a Point (its replicates at a common step). Before any criterion:

  1. every replicate must fit its own training compositions (accuracy_train >= criteria.fit_min), else
     inconclusive, naming the runs that did not fit;
  2. every setting needs >= criteria.min_seeds replicates, else inconclusive.

Then the criteria, each judged at its interval's ends (report.stats): all hold -> reproduced; one fails -> not
reproduced; otherwise (an interval straddles a threshold) -> inconclusive (fragile). A criterion without a value (no
run measured it) makes the verdict inconclusive.
"""

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from core.config import at_least, one_of
from core.errors import ConfigError
from report.figure_rows import FigureTable, Study
from report.stats import FAILS, FRAGILE, HOLDS, MISSING, Check, Point, all_of

# ---- the criteria: config/report/conf.yaml's `criteria`, typed ----

FRACTION = at_least(0.0, 1.0)


@dataclass(frozen=True)
class F1:
    max_compositions: int = field(metadata=at_least(1))
    min_unseen: float = field(metadata=FRACTION)


@dataclass(frozen=True)
class F2:
    min_single: float = field(metadata=FRACTION)
    max_multi: float = field(metadata=FRACTION)
    random_margin: float = field(metadata=FRACTION)
    control_min: float = field(metadata=FRACTION)


@dataclass(frozen=True)
class F3:
    min_gap: float = field(metadata=FRACTION)


@dataclass(frozen=True)
class F4:
    min_drop: float = field(metadata=FRACTION)
    min_gain: float = field(metadata=FRACTION)


@dataclass(frozen=True)
class F5:
    window_low: float = field(metadata=FRACTION)
    window_high: float = field(metadata=FRACTION)
    min_effect: float = field(metadata=FRACTION)
    null_fit_max: float = field(metadata=FRACTION)
    order_level: float = field(metadata=FRACTION)
    min_order: float = field(metadata=FRACTION)
    levels: list[float] = field(metadata=FRACTION)

    def __post_init__(self) -> None:
        if self.window_low >= self.window_high:
            raise ConfigError(f"criteria.f5.window_low={self.window_low} must be below criteria.f5.window_high="
                              f"{self.window_high}")


@dataclass(frozen=True)
class F6:
    lstm_max: float = field(metadata=FRACTION)
    transformer_min: float = field(metadata=FRACTION)


@dataclass(frozen=True)
class F7:
    attention_ratio: float = field(metadata=at_least(0.0))
    early_margin: float = field(metadata=FRACTION)
    late_accuracy: float = field(metadata=FRACTION)
    readout: str = field(metadata=one_of("probe", "logit_lens"))
    late_fraction: float = field(metadata=FRACTION)
    min_layers: int = field(metadata=at_least(1))
    ablation_share: float = field(metadata=FRACTION)
    min_margin: float = field(metadata=FRACTION)
    min_restored: float = field(metadata=FRACTION)
    min_gap: float = field(metadata=at_least(0.0))


@dataclass(frozen=True)
class Criteria:
    fit_min: float = field(metadata=FRACTION)
    min_seeds: int = field(metadata=at_least(1))
    f1: F1
    f2: F2
    f3: F3
    f4: F4
    f5: F5
    f6: F6
    f7: F7


# ---- verdict words, the gates, and criteria checks -> a verdict ----

REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE, FRAGILE_VERDICT, NOT_RUN = (
    "reproduced", "not reproduced", "inconclusive", "inconclusive (fragile)", "not run")
VERDICTS = (REPRODUCED, NOT_REPRODUCED, FRAGILE_VERDICT, INCONCLUSIVE, NOT_RUN)
WORD = {HOLDS: REPRODUCED, FAILS: NOT_REPRODUCED, FRAGILE: FRAGILE_VERDICT, MISSING: INCONCLUSIVE}
STATE = {verdict: state for state, verdict in WORD.items()}  # a verdict's criteria state: verdicts combine as states


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


# ---- what a finding reads and returns, and the markdown of its details ----

METRIC_NAMES = {"token_acc": "token accuracy", "seq_acc": "sequence accuracy", "tf_acc": "teacher-forced accuracy"}


@dataclass(frozen=True)
class Finding:
    number: int
    title: str
    source: str  # where the claim comes from (docs/task.md §9)
    claim: str  # what the study found
    criterion: str  # the fixed test, thresholds written out
    verdict: str  # one of VERDICTS
    reason: str  # one line: the numbers that decided the verdict
    details: list[str]  # markdown lines: the measured numbers
    figure: str | None  # stem of the figure that shows it
    runs: list[str] = field(default_factory=list)  # the runs the verdict rests on
    checks: list[dict] = field(default_factory=list)  # report.stats.Check.record() of each criterion


@dataclass(frozen=True)
class Context:
    """What a finding reads: the study, its figure tables by name and the criteria (config `criteria`)."""

    study: Study
    tables: dict[str, FigureTable]
    criteria: Criteria

    @property
    def name(self) -> str:
        return METRIC_NAMES[self.study.metric]


def signed(value: float) -> str:
    return "–" if math.isnan(value) else f"{value:+.4f}"


def fmt(value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return "never" if value == math.inf else f"{value:.3f}"


def md_table(header: list[str], rows: list[list]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]


def fit_text(p: Point) -> str:
    """'1.000 (min 0.998)': the replicates' mean accuracy on their own training compositions and the lowest."""
    return f"{fmt(p.train_estimate().mean)} (min {fmt(p.train_min)})" if p.train_min is not None else "–"


COUNT = "training compositions"


def make_finding(base: dict, points: list[Point], checks: list[Check], c: Criteria, details: list[str],
                 note: str = "") -> Finding:
    verdict, reason = decide(points, checks, c)
    return Finding(**base, verdict=verdict, reason=note + reason, details=details,
                   runs=[t for p in points for t in p.tags], checks=[ch.record() for ch in checks])


def count_text(key: int | tuple) -> str:
    return f"{key[0]} compositions ({key[1]})" if isinstance(key, tuple) else f"{key} compositions"


def pick(candidates: dict, c: Criteria, rank: Callable = lambda key: key) -> tuple[object, list, str]:
    """The candidate (key -> the points it compares) of highest `rank` among those whose points are all eligible
    (they fit, with min_seeds replicates), else of highest rank among all; the higher-ranked candidates passed
    over, and a note naming them and why."""
    ok = [k for k, points in candidates.items() if not gate(points, c)]
    chosen = max(ok or list(candidates), key=rank)
    passed = [k for k in candidates if k not in ok and rank(k) > rank(chosen)]
    return chosen, passed, "".join(f"passed over {count_text(k)}: {gate(candidates[k], c)}. " for k in passed)
