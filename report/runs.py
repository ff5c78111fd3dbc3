"""The evaluated runs one report reads, from results/ only (the evaluation stage copies what the report needs).

results/<tag>/run.json               {"tag", "data": the dataset's generation config, "model": model_args, "train": how
                                     it was trained, "ckpt_dir"}
results/<tag>/manifest.json          each evaluation's entry: its fingerprint (Run.config's eval.*) and the sha256 of
                                     its files (core/manifest.py)
results/<tag>/inorder.csv            step, composition, n_functions, displacement, in_train, token_acc, seq_acc, ...
results/<tag>/outorder.csv           step, composition, n_identity, displacement, token_acc, seq_acc, tf_acc, ...
results/<tag>/metrics.jsonl          the training run's events (train: loss, lr; eval: eval_all/tf_acc, ...)
results/<tag>/analysis/summary.json  05_analyze.py's numbers for finding 7 ("mechanism"; optional), read only where
                                     the analysis's manifest entry covers it and its files verify
A run folder needs run.json and at least one of the two CSV files, each read only where its evaluation's manifest
entry covers it and the sha256 of every file of that entry still matches. Besides the columns below, the
per-step accuracy columns (y1_acc, tf_y1_acc, ...) and the composition's text (composition) are read when present,
other columns ignored. Accuracies must be numbers in [0, 1] and in_train 0 or 1, as the evaluation writes them.

Then a run's accuracies at one step (inorder_numbers, outorder_numbers), and the runs table every report writes
(reports/<name>/runs.csv): one row per run, every config key that differs between the runs, and the run's headline
numbers at its last evaluated step.
"""

import csv
import fnmatch
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np

from core.config import flatten as leaves
from core.errors import OutputError, PipelineError
from core.manifest import MANIFEST, changed, read_entries, read_entry
from core.stage import DEFAULT_N_FUNCTIONS, STAGES
from synthetic.task import TaskSpec

METRICS = ("token_acc", "seq_acc", "tf_acc")
INORDER_COLUMNS = {"step": int, "n_functions": int, "displacement": int, "in_train": bool,
                   **dict.fromkeys(METRICS, float)}
OUTORDER_COLUMNS = {"step": int, "n_identity": int, "displacement": int, **dict.fromkeys(METRICS, float)}
STEP_COLUMN = re.compile(r"(tf_)?y\d+_acc")  # optional per-step accuracies: y1_acc.., tf_y1_acc..
TEXT_COLUMNS = ("composition",)  # optional, kept as text: its task tokens, e.g. 'T0_1 T1_0 T2_3'
INORDER_STRATEGIES = ("random", "base", "random_biased")  # training compositions are all in order
DEFAULT_DEPTH = 5  # config/gen/conf.yaml's function.depth (L): implicit in labels, any other depth is named
SEED_KEYS = ("data.tag", "data.seed", "train.seed", "train.tag")  # replicates differ only in these config keys
TRUE, FALSE = ("1",), ("0",)
KIND_NAMES = {int: "an integer", float: "a number in [0, 1]", bool: "0 or 1", str: "text"}

Table = dict[str, np.ndarray]  # column name -> (rows,) array


class ReportError(PipelineError):
    """Results that are missing or malformed, or a report config that cannot be honoured."""


@dataclass(frozen=True)
class Run:
    """One evaluated run: its settings and its result tables (None when that evaluation was not run)."""

    tag: str
    folder: Path
    info: dict  # run.json: "data" (the dataset's generation config), "model" (model_args), ...
    inorder: Table | None
    outorder: Table | None
    metrics: list[dict]  # records of the training run's metrics.jsonl ([] when absent)
    mechanism: dict | None  # 05_analyze.py's numbers for finding 7, when results/<tag>/analysis/ holds them

    @property
    def data(self) -> dict:
        return self.info["data"]

    @property
    def model(self) -> dict:
        return self.info["model"]

    @property
    def direct(self) -> bool:
        return bool(self.data["direct"])

    @property
    def format(self) -> str:
        return "direct" if self.direct else "step-by-step"

    @property
    def split(self) -> dict:
        return self.data["function"]["split"]

    @property
    def strategy(self) -> str:
        return self.split["strategy"]

    @property
    def kind(self) -> str:
        return self.model["kind"]

    @property
    def arch(self) -> str:
        """Model label, e.g. 'nanogpt L2 d120' ('attention-only' appended when the MLPs are off)."""
        label = f"{self.kind} L{self.model.get('n_layer', '?')} d{self.model.get('n_embd', '?')}"
        return label + (" attention-only" if self.model.get("mlp") is False else "")

    @property
    def config(self) -> dict[str, object]:
        """Every setting of run.json's groups, flat: 'data.function.split.n_compositions', 'model.n_layer', ...
        (lists as JSON text, so every value compares and prints)."""
        return flatten({k: v for k, v in self.info.items() if isinstance(v, dict)})

    @property
    def seed(self) -> str:
        """The seeds this replicate differs by: the dataset's, and its training's where it was set apart (train.seed;
        null trains with the dataset's), e.g. '1' or '0 (train 1)'."""
        data, train = int(self.data.get("seed", 0)), self.info.get("train", {}).get("seed")
        return str(data) if train in (None, data) else f"{data} (train {train})"

    @property
    def spec(self) -> TaskSpec:
        """The task its dataset was generated for, in its format."""
        d, fn = self.data, self.data["function"]
        return TaskSpec(d["n_alphabets"], d["seq_len"], fn["depth"], fn["n_functions"], self.direct)

    @property
    def n_train(self) -> int:
        """Training compositions, in order and out of order, as the split draws them (docs/task.md §5): the base
        set (1 + L·N) where the strategy includes it, plus its drawn in-order and fully displaced compositions."""
        split, fn = self.split, self.data["function"]
        n, base = split["n_compositions"], 1 + fn["depth"] * fn["n_functions"]
        return {"random": n, "random_biased": n, "base": base + n, "random_combo": 1 + n, "base_combo": base + n,
                "randombase_combo": base + split.get("n_compositions_inorder", 0) + n}.get(split["strategy"], n)

    @property
    def split_label(self) -> str:
        """The training split in words, e.g. 'random 50', 'base + 20', 'randombase_combo 10 + 5 in-order',
        'random 50 (N=4, depth=3)' (the default N and depth are implicit, as in the tags)."""
        s, n, split = self.strategy, self.split["n_compositions"], self.split
        label = {"base": f"base + {n}", "random_biased": f"random_biased {n} ({split.get('n_identity')} identities)",
                 "randombase_combo": f"randombase_combo {n} + {split.get('n_compositions_inorder', 0)} in-order",
                 }.get(s, f"{s} {n}")
        n_functions, depth = self.data["function"]["n_functions"], self.data["function"]["depth"]
        named = [f"N={n_functions}"] * (n_functions != DEFAULT_N_FUNCTIONS)
        named += [f"depth={depth}"] * (depth != DEFAULT_DEPTH)
        return f"{label} ({', '.join(named)})" if named else label

    @property
    def pool(self) -> int:
        """The task's in-order compositions, (N + 1)^L: each of the L slots the identity or one of its level's N
        functions (docs/task.md §3)."""
        fn = self.data["function"]
        return (fn["n_functions"] + 1) ** fn["depth"]

    @property
    def training(self) -> dict | None:
        """How it was trained, from run.json: steps = epochs · (ndocuments // batch_size) as 02_train.py counts them,
        batch_size, documents (ndocuments), epochs and the peak learning_rate; None where run.json lacks one."""
        t = self.info.get("train") or {}
        out = {"documents": self.data.get("ndocuments"), "epochs": t.get("epochs"),
               "batch_size": (t.get("data") or {}).get("batch_size"),
               "learning_rate": (t.get("optimizer") or {}).get("learning_rate")}
        if not all(isinstance(v, int | float) for v in out.values()):
            return None
        return {"steps": out["epochs"] * (out["documents"] // out["batch_size"]), **out}

    @property
    def setting(self) -> str:
        """Runs with the same setting are replicates: every config key but the seeds and tags (SEED_KEYS)."""
        return json.dumps({k: v for k, v in self.config.items() if k not in SEED_KEYS}, sort_keys=True)

    def chance(self, metric: str) -> float:
        """Chance level of `metric`: 1/A per token, (1/A)^m for a whole sequence."""
        a = 1 / self.data["n_alphabets"]
        return a ** self.data["seq_len"] if metric == "seq_acc" else a


def flatten(tree: dict) -> dict[str, object]:
    """Nested dicts -> {'a.b.c': value}, as a table cell: lists become JSON text."""
    return {key: json.dumps(value) if isinstance(value, list) else value for key, value in leaves(tree).items()}


def read_run_json(path: Path) -> dict:
    try:
        info = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise ReportError(f"{path} is not readable JSON ({err})") from None
    if not isinstance(info, dict):
        raise ReportError(f"{path} must hold a JSON object")
    for key, types in [("data.direct", bool), ("data.n_alphabets", int), ("data.seq_len", int),
                       ("data.function.depth", int), ("data.function.n_functions", int),
                       ("data.function.split.strategy", str), ("data.function.split.n_compositions", int),
                       ("model.kind", str)]:
        node = info
        for part in key.split("."):
            if not isinstance(node, dict) or part not in node:
                raise ReportError(f"{path}: key {key} is missing")
            node = node[part]
        if not isinstance(node, types) or (isinstance(node, bool) and types is not bool):
            raise ReportError(f"{path}: {key}={node!r} has the wrong type")
    return info


def _float(cell: str) -> float:
    try:
        return float(cell)
    except ValueError:
        return math.nan  # not a number: fails either test of _column


def _column(raw: list[str], kind: type, path: Path, column: str) -> np.ndarray:
    """One CSV column as an array of `kind`; a bad cell is reported with its line number."""
    if kind is str:
        return np.asarray(raw, dtype=str)
    if kind is bool:
        cells = np.char.strip(np.asarray(raw, dtype=str))
        ok, values = np.isin(cells, TRUE + FALSE), np.isin(cells, TRUE)
    else:
        try:
            values = np.asarray(raw, dtype=float)  # NaN fails either test
        except ValueError:  # a cell that is not a number: read cell by cell (dense evaluations hold 100k rows)
            values = np.asarray([_float(c) for c in raw])
        ok = (values >= 0) & (values <= 1) if kind is float else np.isfinite(values) & (values == np.round(values))
    if not ok.all():
        line = int(np.flatnonzero(~ok)[0])
        raise ReportError(f"{path} line {line + 2}: {column}={raw[line]!r} is not {KIND_NAMES[kind]}")
    return values if kind is bool else values.astype(kind)


def read_table(path: Path, columns: dict[str, type]) -> Table:
    """The named columns of a results CSV as arrays; one-line errors for missing columns or bad values."""
    with open(path, newline="") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header is None:
            raise ReportError(f"{path} is empty")
        missing = [c for c in columns if c not in header]
        if missing:
            raise ReportError(f"{path} lacks the columns {', '.join(missing)} (has: {', '.join(header)})")
        rows = list(reader)
    for line, row in enumerate(rows, start=2):
        if len(row) != len(header):
            raise ReportError(f"{path} line {line} has {len(row)} cells, the header {len(header)}")
    if not rows:
        raise ReportError(f"{path} has a header but no rows")
    columns = {**columns, **{c: float for c in header if STEP_COLUMN.fullmatch(c)},
               **{c: str for c in header if c in TEXT_COLUMNS}}
    at = {c: header.index(c) for c in columns}  # once per column, not per row: dense evaluations hold 100k rows
    return {c: _column([row[at[c]] for row in rows], kind, path, c) for c, kind in columns.items()}


def read_metrics(path: Path) -> list[dict]:
    """Records of metrics.jsonl; lines that are not JSON objects (a torn last line) are skipped."""
    records = []
    for line in path.read_text().splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and isinstance(record.get("step"), int | float):
            records.append(record)
    return records


def read_mechanism(path: Path) -> dict:
    """The finding-7 numbers of an analysis's summary.json, with the checkpoint it analysed and the analysis
    folder ("folder": its figures and CSVs); only what the analysis's manifest entry vouches for."""
    check_manifest(path.parent, "analyze")
    try:
        summary = json.loads(path.read_text())
        return summary["mechanism"] | {"checkpoint": summary["checkpoint"], "step": summary["step"],
                                       "folder": str(path.parent)}
    except (ValueError, KeyError, TypeError) as err:
        raise ReportError(f"{path} is not an analysis summary ({err}); rerun 05_analyze.py") from None


def check_manifest(folder: Path, stage: str) -> None:
    """A results file is read only when its stage's manifest entry (written last) covers it and every file it covers
    still has its sha256: one it does not cover is from a stage killed before the entry (or made by hand), one that
    no longer matches from one killed (or edited) after it; neither is ever read."""
    why = (f" (a stage was interrupted, or the file made or edited by hand); rerun {STAGES[stage].script} for this "
           f"run, or leave it out with exclude=[{folder.name if stage != 'analyze' else folder.parent.name}]")
    try:
        entry = read_entry(folder, stage)
    except OutputError as err:
        raise ReportError(f"{err}{why}") from None
    own = f"{stage}.csv" if stage != "analyze" else "summary.json"
    if entry is None or own not in entry.files:
        raise ReportError(f"{folder / own} is not covered by {folder / MANIFEST}, which its stage writes last{why}")
    for name in changed(folder, entry):
        raise ReportError(f"{folder / name} does not match the sha256 that {MANIFEST} records for it{why}")


def evaluation_settings(folder: Path) -> dict:
    """How the run was evaluated (nsamples, nckpts, min_group_samples, its seed, ...): the settings in the
    fingerprint of the evaluations' manifest entries that every entry agrees on, without the tags and folders and
    those left null (taken from the run itself: its dataset's format, its newest checkpoint); {} for results
    without them."""
    try:
        configs = [entry.fingerprint["config"] for entry in read_entries(folder).values()]
        first, *rest = configs
        ignored = {"tag", "ckpt_tag", *STAGES["inorder"].location_keys}
        return {k: v for k, v in first.items()
                if k not in ignored and v is not None and all(k in c and c[k] == v for c in rest)}
    except (OutputError, ValueError, KeyError, TypeError, AttributeError):
        return {}


def load_run(folder: Path, analyses: dict[str, dict]) -> Run:
    info = read_run_json(folder / "run.json")
    settings = evaluation_settings(folder)
    if settings:  # Run.config's eval.*: runs evaluated differently are told apart, and compared
        info = {**info, "eval": settings}
    tables = {}
    for name, columns in (("inorder", INORDER_COLUMNS), ("outorder", OUTORDER_COLUMNS)):
        path = folder / f"{name}.csv"
        if path.is_file():
            check_manifest(folder, name)
        tables[name] = read_table(path, columns) if path.is_file() else None
    if tables["inorder"] is None and tables["outorder"] is None:
        raise ReportError(f"{folder} has run.json but neither inorder.csv nor outorder.csv")
    metrics = read_metrics(folder / "metrics.jsonl") if (folder / "metrics.jsonl").is_file() else []
    tag = info.get("tag") if isinstance(info.get("tag"), str) else folder.name
    own = folder / "analysis" / "summary.json"
    mechanism = read_mechanism(own) if own.is_file() else analyses.get(str(Path(str(info.get("ckpt_dir")))))
    return Run(tag, folder, info, tables["inorder"], tables["outorder"], metrics, mechanism)


def load_runs(results_dir: str, include: list[str], exclude: list[str]) -> tuple[list[Run], list[str]]:
    """Every run folder of results_dir whose name matches a glob of `include` and none of `exclude` and that
    holds a run.json, sorted by tag; and notes on the folders skipped (no run.json). An empty selection is an
    error."""
    root = Path(results_dir)
    if not root.is_dir():
        raise ReportError(f"results_dir={results_dir!r} does not exist; evaluate runs with 03_evaluate_i.py first")

    def chosen(name: str) -> bool:
        return any(fnmatch.fnmatchcase(name, g) for g in include) and not any(
            fnmatch.fnmatchcase(name, g) for g in exclude)

    folders = sorted(p for p in root.iterdir() if p.is_dir() and chosen(p.name))
    notes = [f"skipped {p}: no run.json" for p in folders
             if not (p / "run.json").is_file() and not (p / "analysis").is_dir()]
    # every results/*/analysis/summary.json, keyed by the checkpoint folder it analysed (a run's ckpt_dir), not by
    # results folder: an analysis is named by its own settings, an evaluation by its own, so the two can sit in
    # different folders of results/ for one training run
    found = [read_mechanism(path) for path in sorted(root.glob("*/analysis/summary.json"))]
    analyses = {str(Path(mechanism["checkpoint"]).parent): mechanism for mechanism in found}
    runs = [load_run(p, analyses) for p in folders if (p / "run.json").is_file()]
    if not runs:
        raise ReportError(
            f"results_dir={results_dir!r} holds no run matching include={include} and exclude={exclude} (a folder "
            "with run.json and inorder.csv or outorder.csv); evaluate runs with 03_evaluate_i.py first"
        )
    return runs, notes


def check_metric(runs: list[Run], metric: str) -> None:
    """Every run's in-order results hold the column `metric` (y<k>_acc columns exist only up to the run's L)."""
    for r in runs:
        if r.inorder is not None and metric not in r.inorder:
            raise ReportError(f"metric={metric!r} is not a column of {r.folder / 'inorder.csv'} (accuracies there: "
                              f"{', '.join(c for c in r.inorder if c.endswith('_acc'))})")


# ---- a run's accuracies at one step ----


@dataclass(frozen=True, order=True)
class ByFunctions:
    """In-order compositions of `n_functions` non-identity functions (`unseen`: only those not trained on)."""

    n_functions: int
    unseen: bool = False


@dataclass(frozen=True, order=True)
class ByDisplacement:
    """Out-of-order compositions of one displacement."""

    displacement: int


@dataclass(frozen=True, order=True)
class Cell:
    """Out-of-order compositions of one (#identities, displacement) group."""

    n_identity: int
    displacement: int


# a quantity: a subset named by a word ("all", "train", "unseen", "multi", "displaced") or a structured group
Quantity = str | ByFunctions | ByDisplacement | Cell
Numbers = dict[Quantity, float | None]  # quantity -> value
Q = TypeVar("Q", ByFunctions, ByDisplacement, Cell)


def last_step(table: Table) -> int:
    return int(table["step"].max())


def _mean(values: np.ndarray, mask: np.ndarray) -> float | None:
    return float(values[mask].mean()) if mask.any() else None


def inorder_numbers(run: Run, metric: str, step: int) -> Numbers:
    """In-order accuracy at `step`: over all compositions ("all"), the training ones ("train"), the unseen ones
    ("unseen"), those of >= 2 functions ("multi"), and per #functions k over all of them (ByFunctions(k)) and over
    the unseen ones (ByFunctions(k, unseen=True))."""
    t = run.inorder
    at, unseen = t["step"] == step, ~t["in_train"]
    acc, n_fn = t[metric], t["n_functions"]
    ks = np.unique(n_fn).tolist()
    return {"all": _mean(acc, at), "train": _mean(acc, at & t["in_train"]), "unseen": _mean(acc, at & unseen),
            "multi": _mean(acc, at & (n_fn >= 2)), **{ByFunctions(k): _mean(acc, at & (n_fn == k)) for k in ks},
            **{ByFunctions(k, unseen=True): _mean(acc, at & unseen & (n_fn == k)) for k in ks}}


def outorder_numbers(run: Run, metric: str, step: int) -> Numbers:
    """Out-of-order accuracy at `step`: over displacement >= 1 ("displaced"), per displacement d (ByDisplacement(d))
    and per (#identities i, displacement d) group (Cell(i, d))."""
    t = run.outorder
    at = t["step"] == step
    acc, n_id, disp = t[metric], t["n_identity"], t["displacement"]
    cells = sorted(set(zip(n_id[at].tolist(), disp[at].tolist(), strict=True)))
    return {"displaced": _mean(acc, at & (disp >= 1)),
            **{ByDisplacement(d): _mean(acc, at & (disp == d)) for d in np.unique(disp[at]).tolist()},
            **{Cell(i, d): _mean(acc, at & (n_id == i) & (disp == d)) for i, d in cells}}


def accuracy_train(run: Run, metric: str, step: int) -> float | None:
    """Accuracy on the run's own (in-order) training compositions at `step`; None when its in-order evaluation
    has no such checkpoint or no training composition."""
    if run.inorder is None or not (run.inorder["step"] == step).any():
        return None
    return inorder_numbers(run, metric, step)["train"]


# ---- the runs table (runs.csv) ----

HEADLINE = ["n_train", "step", "accuracy_train", "accuracy_all", "accuracy_unseen", "accuracy_displaced"]


def differing_keys(runs: list[Run]) -> list[str]:
    """Config keys (Run.config) whose value is not the same for every run (absent counts as a value)."""
    keys = sorted({k for r in runs for k in r.config})
    return [k for k in keys if len({json.dumps(r.config.get(k)) for r in runs}) > 1]


def headline(run: Run, metric: str) -> dict:
    """HEADLINE for one run: in-order accuracies at its last in-order step, displaced at its out-of-order step."""
    i = inorder_numbers(run, metric, last_step(run.inorder)) if run.inorder is not None else {}
    o = outorder_numbers(run, metric, last_step(run.outorder)) if run.outorder is not None else {}
    step = last_step(run.inorder) if run.inorder is not None else last_step(run.outorder)
    return {"n_train": run.n_train, "step": step, "accuracy_train": i.get("train"), "accuracy_all": i.get("all"),
            "accuracy_unseen": i.get("unseen"), "accuracy_displaced": o.get("displaced")}


def runs_rows(runs: list[Run], metric: str) -> tuple[list[str], list[dict]]:
    """(columns, rows) of runs.csv: run, the differing config keys, HEADLINE."""
    keys = differing_keys(runs)
    rows = [{"run": r.tag, **{k: r.config.get(k) for k in keys}, **headline(r, metric)} for r in runs]
    return ["run", *keys, *HEADLINE], rows
