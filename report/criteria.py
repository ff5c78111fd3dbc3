"""The report's verdict thresholds (config/report/conf.yaml `criteria`), typed: parsed once with the report config
(pipeline.report.ReportConfig) and read by attribute by the findings (report.findings, report.mechanism,
report.dynamics, report.verdicts)."""

from dataclasses import dataclass, field

from core.config import at_least
from core.errors import ConfigError

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

