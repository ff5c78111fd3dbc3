"""One manifest per output folder (core/manifest.py), written last by every stage and read by one function; folders
written before manifests are refused in one line that names `python -m pipeline.migrate`, which adds one."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from core.errors import OutputError
from core.manifest import MANIFEST, read_entries, sha256, verified
from net.checkpoint import list_checkpoints
from pipeline import evaluate, generate
from tests.conftest import ROOT, snapshot, stage_config
from tests.test_evaluate import SMALL, eval_config, write_checkpoints

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def pipeline_folders(tmp_path_factory) -> dict[str, Path]:
    """A tiny dataset, its training run and both evaluations, written by the stages."""
    root = tmp_path_factory.mktemp("manifest")
    data, ckpts, results = root / "data", root / "ckpts", root / "results"
    generate.run(stage_config("gen", ["ndocuments=300", "neval_documents=50", *SMALL, f"out_dir={data}"]))
    write_checkpoints(ckpts, data, [0, 10])
    evaluate.run_inorder(eval_config("i", ckpts, results, "nsamples=1", "device=cpu"))
    evaluate.run_outorder(eval_config("o", ckpts, results, "nsamples=1", "max_per_pattern=1", "device=cpu"))
    return {"data": data, "ckpts": ckpts, "results": results}


def test_every_stage_writes_one_manifest_that_covers_its_files(pipeline_folders):
    data, ckpts, results = (pipeline_folders[k] for k in ("data", "ckpts", "results"))
    (gen,) = read_entries(data).values()
    assert gen.stage == "gen" and gen.config["out_dir"] == str(data) and gen.fingerprint == json.loads(
        (data / "meta.json").read_text())["config"]
    assert set(gen.files) == {p.name for p in data.iterdir()} - {MANIFEST}
    (run,) = read_entries(ckpts).values()
    assert run.complete and run.upstream == {"folder": str(data), "fingerprint": gen.fingerprint}
    assert set(run.files) == {p.name for _, p in list_checkpoints(ckpts)} | {"metrics.jsonl"}
    assert run.ran == {"device": "cpu", "precision": "float32"}
    entries = read_entries(results)
    assert set(entries) == {"inorder", "outorder"}  # one manifest for the folder both evaluations share
    for name, entry in entries.items():
        assert f"{name}.csv" in entry.files and verified(results, entry)
        assert entry.upstream["folder"] == str(ckpts) and entry.upstream["fingerprint"] == run.fingerprint
    for folder, entry in ((data, gen), (ckpts, run), *((results, e) for e in entries.values())):
        assert all(sha256(folder / name) == digest for name, digest in entry.files.items())
        assert set(entry.code) == {"commit", "dirty", "torch", "numpy", "hydra"}
        assert entry.code["torch"] == torch.__version__


def test_a_stage_decides_from_the_manifest(pipeline_folders, tmp_path):
    """A file changed after the entry makes the output incomplete (redone, never kept); a folder without a manifest
    but with an older version's record is refused in one line naming the migration."""
    results = tmp_path / "results"
    ckpts = pipeline_folders["ckpts"]
    evaluate.run_inorder(eval_config("i", ckpts, results, "nsamples=1", "device=cpu"))
    assert evaluate.existing(results, "inorder").complete
    (results / "inorder.csv").write_text((results / "inorder.csv").read_text() + "\n")
    assert not evaluate.existing(results, "inorder").complete
    (results / MANIFEST).unlink()
    assert evaluate.existing(results, "inorder").record is None  # a kill before the entry: this stage's leftover
    summary = json.loads((results / "summary.json").read_text())
    summary["inorder"]["fingerprint"] = {"config": {}}  # what an older version kept instead of an entry
    (results / "summary.json").write_text(json.dumps(summary))
    before = snapshot(results)
    with pytest.raises(OutputError, match=rf"holds an in-order evaluation written by an earlier version of this "
                                          rf"pipeline \(no manifest.json\); add one with `cd {ROOT} && python -m "
                                          rf"pipeline.migrate {results}` \(it checks the files first"):
        evaluate.run_inorder(eval_config("i", ckpts, results, "nsamples=1", "device=cpu", "skip_complete=true"))
    assert snapshot(results) == before


def as_written_before_manifests(folders: dict[str, Path], root: Path) -> dict[str, Path]:
    """Copies of the folders as the previous version wrote them: no manifest.json; summary.json's sections hold their
    fingerprint (without the precision, which runs did not record) and the sha256 of their files."""
    copies = {}
    for name, folder in folders.items():
        copies[name] = root / name
        shutil.copytree(folder, copies[name])
        entries = read_entries(copies[name])
        (copies[name] / MANIFEST).unlink()
        if name == "results":
            summary = json.loads((copies[name] / "summary.json").read_text())
            for section, entry in entries.items():
                fingerprint = json.loads(json.dumps(entry.fingerprint))
                del fingerprint["config"]["precision"]
                summary[section] |= {"fingerprint": fingerprint, "files": entry.files}
            (copies[name] / "summary.json").write_text(json.dumps(summary))
    return copies


def migrate(*folders: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pipeline.migrate", *map(str, folders)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)


def test_migrate_adds_the_manifest_a_stage_would_write(pipeline_folders, tmp_path):
    old = as_written_before_manifests(pipeline_folders, tmp_path)
    data, ckpts, results = old["data"], old["ckpts"], old["results"]
    kept = {name: snapshot(folder) for name, folder in old.items()}
    for run in (lambda: generate.run(stage_config("gen", ["ndocuments=300", "neval_documents=50", *SMALL,
                                                          f"out_dir={data}", "skip_complete=true"])),
                lambda: evaluate.run_inorder(eval_config("i", ckpts, results, "nsamples=1", "device=cpu",
                                                         "skip_complete=true"))):
        with pytest.raises(OutputError, match="written by an earlier version of this pipeline"):
            run()
    assert {name: snapshot(folder) for name, folder in old.items()} == kept  # refused, nothing touched
    done = migrate(tmp_path)  # a parent folder: every output folder below it
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [f"{ckpts}: added manifest.json for train", f"{data}: added manifest.json "
                                        f"for gen", f"{results}: added manifest.json for inorder, outorder"]
    for name in ("data", "ckpts"):  # the migrated entries are the ones the stages write, but for the code version
        assert {k: (e.fingerprint, e.files, e.complete) for k, e in read_entries(old[name]).items()} == {
            k: (e.fingerprint, e.files, e.complete) for k, e in read_entries(pipeline_folders[name]).items()}
    fresh = read_entries(pipeline_folders["results"])
    assert {k: e.fingerprint for k, e in read_entries(results).items()} == {k: e.fingerprint for k, e in fresh.items()}
    assert "fingerprint" not in json.loads((results / "summary.json").read_text())["inorder"]
    generate.run(stage_config("gen", ["ndocuments=300", "neval_documents=50", *SMALL, f"out_dir={data}",
                                      "skip_complete=true"]))  # kept now
    assert snapshot(data) == kept["data"] | {MANIFEST: snapshot(data)[MANIFEST]}
    again = migrate(data)
    assert again.returncode == 0 and again.stdout.strip() == f"{data}: has a manifest already"


def test_migrate_refuses_a_folder_whose_files_do_not_match_their_record(pipeline_folders, tmp_path):
    results = as_written_before_manifests({"results": pipeline_folders["results"]}, tmp_path)["results"]
    (results / "outorder.csv").write_text("edited by hand\n")
    before = snapshot(results)
    done = migrate(results)
    assert done.returncode == 2 and done.stderr.count("\n") == 1
    assert "outorder.csv does not match the sha256 its record holds" in done.stderr
    assert snapshot(results) == before
