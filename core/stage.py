"""The stage contract.

A stage is a function from a validated config to its output folder (`pipeline.generate.run`, `pipeline.train.run`,
...). Its typed config marks the keys that do NOT change its output (core.config.NEUTRAL): every other key is its
fingerprint (core.config.fingerprint). The fingerprint is stored in the folder's manifest entry, and `decide` turns
what an existing output folder holds into one of four actions, in one place for every stage:

  fresh    nothing of this stage is there (or an empty folder): write it
  skip     this very output is there, whole, and skip_complete=true: keep it
  resume   an unfinished run of this very config, and resume (or skip_complete): continue it (training only)
  replace  overwrite=true, or the stage's own leftover of this very config (a killed run): write it anew

Everything else is refused with one line that suggests the safe fix first (another tag= or out_dir=) and says what
overwrite=true would delete. Never replaced, whatever the flags (`check_target`): a path that is not a folder; the
working directory, the project's root or a folder above either; a folder holding anything no stage of this pipeline
writes there (a .git, *.py files, hidden files other than the pipeline's own locks and temporary files); and, for a
stage that swaps in its whole folder, a non-empty folder without the stage's marker (meta.json, summary.json).
"""

import fnmatch
import os
from dataclasses import dataclass
from pathlib import Path

from core.config import flatten
from core.errors import ConfigError, OutputError
from core.manifest import MANIFEST, read_entry, verified

ROOT = Path(__file__).resolve().parent.parent  # the project: never an output folder, nor any folder above it
CONFIG = ROOT / "config"  # every stage's YAML, one folder per stage
DEFAULT_N_FUNCTIONS = 3  # config/gen/conf.yaml's function.n_functions: implicit in tags, any other N is named
PIPELINE_HIDDEN = (".*.lock", ".*.tmp-*", ".*.staging-*", ".*.old-*")  # what core/io.py leaves in a folder
FRESH, SKIP, RESUME, REPLACE = "fresh", "skip", "resume", "replace"


@dataclass(frozen=True)
class Stage:
    noun: str  # what one output is, in messages: "dataset", "training run", ...
    script: str  # the numbered script that writes it
    config: str  # its config, "<folder under config/>/<name>"
    schema: str  # its typed config, "<module>:<class>" (pipeline.tags.schema_of imports it: the stages load torch)
    location_keys: frozenset[str]  # where its inputs and outputs live: in the fingerprint, not in the run's name
    own_files: tuple[str, ...]  # glob patterns of the entries it (or a stage sharing its folder) writes
    resumable: bool = False  # an unfinished output can be continued (training)
    marker: str | None = None  # whole-folder stages: the file that marks a folder as this stage's output

    def check_target(self, out_dir: Path, found: "Found | None" = None) -> None:
        """Refuse (OutputError) an out_dir that no flag may let this stage write: see the module's docstring.
        `found`: what the stage read there, if it did (a marker it cannot read is refused too). Read-only, so a
        stage calls it before taking the folder's lock (which would leave its file beside a refused folder), and
        `decide` again under it."""
        where = f"out_dir={str(out_dir)!r}"
        # a folder (or nothing yet), and never the working directory, the project's root or a folder above either
        # (they hold the project)
        target = out_dir.resolve()
        for name, protected in (("the working directory", Path.cwd().resolve()), ("the project's root", ROOT)):
            if target == protected or target in protected.parents:
                raise OutputError(f"{where} is {name} or a folder above it; name a folder of its own, e.g. the default")
        if out_dir.exists() and not out_dir.is_dir():
            raise OutputError(f"{where} is a file, not a folder; name a folder, e.g. the default")
        foreign = [n for n in entries(out_dir) if not any(fnmatch.fnmatch(n, p) for p in self.own_files)]
        if foreign:
            shown = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
            raise OutputError(f"{where} holds files that {self.script} did not write ({shown}); write elsewhere with "
                              "another tag= (or out_dir=): a folder of other files is never replaced")
        if self.marker and entries(out_dir):
            if not (out_dir / self.marker).is_file():
                raise OutputError(f"{where} holds files but no {self.marker}, so it is not {with_article(self.noun)} "
                                  f"that {self.script} wrote; write elsewhere with another tag= (or out_dir=): it is "
                                  "never replaced")
            if found is not None and found.record is None and not found.legacy:
                raise OutputError(f"{where} holds a {self.marker} that {self.script} cannot read as its own; write "
                                  "elsewhere with another tag= (or out_dir=): it is never replaced")


RESULT_FILES = ("inorder.csv", "outorder.csv", "run.json", "metrics.jsonl", "summary.json", "analysis", MANIFEST)
STAGES = {
    "gen": Stage(noun="dataset", script="01_generate_data.py", config="gen/conf",
                 schema="pipeline.generate:GenerateConfig", location_keys=frozenset(), marker="meta.json",
                 own_files=("meta.json", "vocab.json", "functions.json", "train_compositions.json", "*.npy", MANIFEST)),
    "train": Stage(noun="training run", script="02_train.py", config="train/conf", schema="pipeline.train:TrainConfig",
                   location_keys=frozenset({"out_dir", "data.path"}), resumable=True,
                   own_files=("ckpt_*.pt", "metrics.jsonl", MANIFEST)),
    "inorder": Stage(noun="in-order evaluation", script="03_evaluate_i.py", config="eval/conf",
                     schema="pipeline.evaluate:EvalConfig", location_keys=frozenset({"out_dir", "ckpt_dir"}),
                     own_files=RESULT_FILES),
    "outorder": Stage(noun="out-of-order evaluation", script="03_evaluate_o.py", config="eval/conf",
                      schema="pipeline.evaluate:EvalConfig", location_keys=frozenset({"out_dir", "ckpt_dir"}),
                      own_files=RESULT_FILES),
    "analyze": Stage(noun="analysis", script="05_analyze.py", config="analyze/conf", marker="summary.json",
                     schema="pipeline.analyze:AnalyzeConfig", location_keys=frozenset({"ckpt_dir"}),
                     own_files=("*.csv", "*.png", "summary.json", MANIFEST)),
}


@dataclass(frozen=True)
class Found:
    """What a stage found in its output folder."""

    record: dict | None  # its manifest entry's fingerprint; None when the folder holds no output of this stage
    complete: bool = False  # that output is whole (every file present and matching; training: at its last step)
    contents: str = ""  # what overwrite=true would delete, in words
    legacy: bool = False  # an output of this stage written before manifests (no entry): migrate it, or replace it


def found_output(out_dir: Path, section: str, what: str, legacy: bool) -> Found:
    """What out_dir holds of `section` ("gen", "inorder", ...) by its manifest entry: its fingerprint, and whether every
    file it covers is there, unchanged. `what` names the output in words; `legacy`: an output written before
    manifests is there (the stage's own test, used only when there is no entry). Training has its own (checkpoints)."""
    entry = read_entry(out_dir, section)
    if entry is None:
        return Found(None, legacy=legacy, contents=f"{what} in {out_dir}")
    return Found(entry.fingerprint, entry.complete and verified(out_dir, entry),
                 contents=f"{what} in {out_dir} ({', '.join(entry.files) or 'incomplete'})")


def check_flags(skip_complete: bool, overwrite: bool) -> None:
    """A stage's config validation: keeping an output and replacing it exclude each other."""
    if skip_complete and overwrite:
        raise ConfigError("skip_complete=true and overwrite=true exclude each other; pick one")


def differing_keys(a: dict, b: dict) -> list[str]:
    """The dotted keys two records differ in. A key one lacks counts as null there: a key added to a config with a
    null default (off) leaves the identity of the runs made before it unchanged."""
    fa, fb = flatten(a), flatten(b)
    return sorted(k for k in fa.keys() | fb.keys() if fa.get(k) != fb.get(k))


def differences(there: dict, here: dict, shown: int = 3) -> str:
    """`ndocuments: 500 there, 400 here, seed` for the keys two records differ in (values for the first `shown`):
    after a changed YAML default, this says which value the folder's output was made with."""
    ft, fh = flatten(there), flatten(here)
    keys = [k for k in differing_keys(there, here) if k != "tag"] or ["tag"]  # the tag follows the rest
    named = [f"{k}: {ft.get(k)} there, {fh.get(k)} here" for k in keys[:shown]]
    rest = keys[shown:]
    return "; ".join(named) + (f"; and {', '.join(rest[:5])}" if rest else "") + (
        f" and {len(rest) - 5} more" if len(rest) > 5 else "")


def with_article(noun: str) -> str:
    """'a training run', 'an analysis'."""
    return f"{'an' if noun[0] in 'aeiou' else 'a'} {noun}"


def entries(folder: Path) -> list[str]:
    """What folder holds besides the pipeline's own locks and temporary files ([] when it is no folder)."""
    if not folder.is_dir():
        return []
    return [n for n in sorted(os.listdir(folder)) if not any(fnmatch.fnmatch(n, p) for p in PIPELINE_HIDDEN)]


def decide(stage: Stage, out_dir: Path, record: dict, found: Found, *, skip_complete: bool, overwrite: bool,
           resume: bool = False) -> str:
    """FRESH, SKIP, RESUME or REPLACE for writing `record`'s output into out_dir; OutputError when refused."""
    stage.check_target(out_dir, found)
    if found.record is None and not found.legacy:
        return FRESH
    where = f"out_dir={str(out_dir)!r}"
    deletes = f"overwrite=true deletes {found.contents}" if found.contents else "overwrite=true deletes it"
    if found.legacy:
        if overwrite:
            return REPLACE
        raise OutputError(f"{where} holds {with_article(stage.noun)} written by an earlier version of this pipeline "
                          f"(no {MANIFEST}); add one with `cd {ROOT} && python -m pipeline.migrate "
                          f"{out_dir.resolve()}` (it checks the files first; a parent folder migrates all below it), "
                          f"or write elsewhere with another tag= (or out_dir=); {deletes}")
    if not differing_keys(found.record, record):
        if found.complete and (skip_complete or (stage.resumable and resume)):
            return SKIP  # a finished run has nothing left to resume
        if not found.complete and stage.resumable and (resume or skip_complete):
            return RESUME
        if overwrite or (not found.complete and not stage.resumable):
            return REPLACE
        if found.complete:
            raise OutputError(f"{where} already holds this very {stage.noun}; pass skip_complete=true to keep it, or "
                              f"write another copy with another tag= (or out_dir=); {deletes}")
        raise OutputError(f"{where} holds an unfinished {stage.noun} of this config; pass resume=true to continue "
                          f"it, or write elsewhere with another tag= (or out_dir=); {deletes}")
    if overwrite:
        return REPLACE
    action = "cannot resume it" if resume else "is refused"
    # (training's `complete` is relative to this config's last step, so says nothing of a run of another config)
    what = f"an incomplete {stage.noun}" if not (found.complete or stage.resumable) else with_article(stage.noun)
    raise OutputError(f"{where} holds {what} of another config (it differs in {differences(found.record, record)}), "
                      f"so this one {action}; write it elsewhere with another tag= (or out_dir=) to keep both, or, to "
                      f"use it (a default changed since?), pass the values it was made with and tag={out_dir.name}; "
                      f"{deletes}")
