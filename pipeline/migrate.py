"""`python -m pipeline.migrate FOLDER [FOLDER ...]`: give output folders written before manifests their manifest.json.

A dataset, a training run, a results folder (each evaluation's section) or an analysis is recognized by the record
it kept then (meta.json; the checkpoints' train_config; summary.json's per-section "fingerprint" and "files"; an
analysis summary.json's), its files are checked against that record, and the entry its stage would write today goes
in manifest.json (the records move there from summary.json). The precision, which runs did not record then, is
inferred from the recorded device, bf16 and bf16_cpu (device=auto as this machine resolves it). A folder named may
also hold output folders at any depth (`python -m pipeline.migrate runs/`). A folder that already has a manifest is
left as it is; one whose files do not match is refused, and nothing is written for it.
"""

import json
import sys
from pathlib import Path

from core.config import fingerprint
from core.errors import USER_ERRORS, OutputError, first_line
from core.io import json_text, write_text
from core.manifest import MANIFEST, read_entries, sha256, write_entry
from net.checkpoint import list_checkpoints, load_latest_checkpoint, trained_precision
from net.device import recorded_precision
from pipeline.train import TrainConfig
from synthetic.dataset import load_dataset


def migrate_dataset(folder: Path) -> list[str]:
    ds = load_dataset(folder)  # verifies every file against meta.json
    files = sorted(p.name for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
    write_entry(folder, "gen", config=ds.config, fingerprint=ds.config, files=files)
    return ["gen"]


def migrate_training(folder: Path) -> list[str]:
    newest = load_latest_checkpoint(folder)  # verifies its checksum
    config = newest["train_config"]
    n_train = newest["data"]["meta"]["arrays"]["train.npy"]["shape"][0]
    max_steps = config["epochs"] * (n_train // config["data"]["batch_size"])
    files = [path.name for _, path in list_checkpoints(folder)]
    files += ["metrics.jsonl"] if (folder / "metrics.jsonl").is_file() else []
    precision = trained_precision(newest)
    write_entry(folder, "train", config=config, fingerprint=fingerprint(TrainConfig, config, precision),
                files=files, complete=newest["step"] == max_steps, ran={"device": None, "precision": precision},
                upstream={"folder": newest["data"]["path"], "fingerprint": newest["data"]["meta"]["config"]})
    return ["train"]


def migrate_sections(folder: Path, summary: dict, sections: list[str]) -> list[str]:
    """Evaluations (results/<tag>/) or an analysis: each section's fingerprint and files move to the manifest."""
    records = {section: summary[section] if section != "analyze" else summary for section in sections}
    for record in records.values():
        recorded = record.get("files") or {}  # an analysis listed its files' names, with no sha256
        for name, digest in (recorded.items() if isinstance(recorded, dict) else ((n, None) for n in recorded)):
            if not (folder / name).is_file() or (digest is not None and sha256(folder / name) != digest):
                raise OutputError(f"{folder / name} does not match the sha256 its record holds; rerun its stage "
                                  "with overwrite=true instead")
    for section, record in records.items():
        fingerprint = record["fingerprint"]
        if section != "analyze":
            fingerprint["config"]["precision"] = recorded_precision(fingerprint["config"])
        files = list(record["files"]) + (["summary.json"] if section == "analyze" else [])
        write_entry(folder, section, config=record.get("config") or fingerprint["config"], fingerprint=fingerprint,
                    files=files, ran={"device": None, "precision": "float32" if section == "analyze" else
                                      fingerprint["config"]["precision"]})
    if sections != ["analyze"]:  # the records now live in the manifest (an analysis's summary.json is covered)
        write_text(folder / "summary.json", json_text({k: {kk: vv for kk, vv in v.items() if kk not in
                                                           ("fingerprint", "files")} for k, v in summary.items()}))
    return sections


def migrate(folder: Path) -> list[str] | None:
    """Add folder's manifest; the stages it now covers ([] when it had one already, None when it holds no output)."""
    if read_entries(folder):
        return []
    if (folder / "meta.json").is_file():
        return migrate_dataset(folder)
    if list_checkpoints(folder):
        return migrate_training(folder)
    summary = json.loads((folder / "summary.json").read_text()) if (folder / "summary.json").is_file() else {}
    if "fingerprint" in summary and "mechanism" in summary:
        return migrate_sections(folder, summary, ["analyze"])
    sections = [s for s in ("inorder", "outorder") if "fingerprint" in summary.get(s, {})]
    return migrate_sections(folder, summary, sections) if sections else None


def main(paths: list[str]) -> int:
    """Migrate each output folder named, or found below a folder named (runs/, results/, ...)."""
    if not paths:
        print(__doc__.splitlines()[0], file=sys.stderr)
        return 2
    for name in paths:
        found = 0
        for folder in [Path(name), *sorted(d for d in Path(name).rglob("*") if d.is_dir())]:
            if any(part.startswith(".") for part in folder.relative_to(name).parts):
                continue  # the pipeline's locks and staging folders
            try:
                stages = migrate(folder)
            except USER_ERRORS as err:
                print(f"error: {folder}: {first_line(err)}", file=sys.stderr)
                return 2
            except (OSError, ValueError, KeyError, TypeError) as err:  # a record of an unexpected shape
                print(f"error: {folder}: its record cannot be read ({first_line(err)}); rerun its stage with "
                      "overwrite=true instead", file=sys.stderr)
                return 2
            if stages is not None:
                found += 1
                print(f"{folder}: " + (f"added {MANIFEST} for {', '.join(stages)}" if stages else
                                       "has a manifest already"))
        if not found:
            print(f"error: {name} holds no output folder of this pipeline", file=sys.stderr)
            return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
