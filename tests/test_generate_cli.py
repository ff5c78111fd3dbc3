"""01_generate_data.py through the real command line: output, bad input, nothing half-written."""

import signal
import subprocess
import sys

import pytest

from synthetic.dataset import load_dataset
from tests.conftest import ROOT, TINY_DATA, run_script, snapshot
from tests.independent_checker import check_dataset


def test_generates_and_prints_decoded_documents(tmp_path):
    out = tmp_path / "d"
    result = run_script("01_generate_data.py", *TINY_DATA, f"out_dir={out}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert f"wrote {out}" in result.stdout and "S T0_" in result.stdout
    check_dataset(out)
    again = run_script("01_generate_data.py", *TINY_DATA, f"out_dir={out}", "overwrite=true", "seed=3", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == [".d.lock", "d", "logs"]  # no temporary folder left


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["function.split.strategy=nope"], "function.split.strategy='nope' is not allowed; allowed: random, base"),
        (["function.split.n_compositions=5000"], "function.split.n_compositions=5000 exceeds the 1024 in-order"),
        (["function.split.strategy=random_biased", "function.split.n_identity=6"],
         "function.split.n_identity=6 must be <= 5"),
        (["function.split.n_identity=-1"], "function.split.n_identity=-1 must be >= 0"),
        (["ndocuments=0"], "ndocuments=0 must be >= 1"),
        (["seq_len=-2"], "seq_len=-2 must be >= 1"),
        (["function.n_functions=0"], "function.n_functions=0 must be >= 1"),
        (["seq_len=abc"], "seq_len='abc' must be an integer"),
        (["with_replacement=false", "seq_len=11"], "seq_len=11 must be <= n_alphabets=10 when with_replacement=false"),
        (["function.permute=true", "seq_len=1"], "seq_len=1 must be >= 2 when a level permutes positions"),
        (["function.permute=true", "function.permute_levels=[7]"], "function.permute_levels=[7] must be a list"),
        (["tag=../escape"], "tag='../escape' must be a plain folder name"),
        (["out_dir=../escape"], "out_dir='../escape' escapes the project through '..'"),
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(tmp_path, overrides, message):
    result = run_script("01_generate_data.py", *TINY_DATA, *overrides, cwd=tmp_path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert lines == [lines[0]] and lines[0].startswith("error: ") and message in lines[0], result.stderr
    assert not (tmp_path / "data").exists()


def test_existing_out_dir_is_refused_untouched(tmp_path):
    out = tmp_path / "d"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    result = run_script("01_generate_data.py", *TINY_DATA, f"out_dir={out}", cwd=tmp_path)
    assert result.returncode == 2 and "holds files that 01_generate_data.py did not write (keep.txt)" in result.stderr
    assert [p.name for p in out.iterdir()] == ["keep.txt"]


def test_tags_derive_from_settings_and_complete_runs_are_skipped(tmp_path):
    args = [*TINY_DATA, "direct=true", "function.split.n_compositions=7", "seed=2", "skip_complete=true"]
    first = run_script("01_generate_data.py", *args, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    (folder,) = (tmp_path / "data").glob("direct_random7_seed2-*")  # the hash names the non-default sizes
    before = snapshot(folder, identity=True)
    second = run_script("01_generate_data.py", *args, cwd=tmp_path)
    assert second.returncode == 0 and snapshot(folder, identity=True) == before
    assert "already holds this dataset: skipping" in second.stdout
    # Same folder, other contents: not "complete", so refused rather than silently reused.
    other = run_script("01_generate_data.py", *args[:-1], f"out_dir={folder}", "ndocuments=500", "skip_complete=true",
                       cwd=tmp_path)
    assert other.returncode == 2
    assert "holds a dataset of another config (it differs in ndocuments: 400 there, 500 here)" in other.stderr


def test_a_kill_in_the_middle_of_writing_leaves_no_dataset_and_loses_none(tmp_path):
    out = tmp_path / "d"

    def killed(*overrides: str) -> None:  # dies after train.npy ... vocab.json, halfway through functions.json
        died = subprocess.run([sys.executable, str(ROOT / "tests" / "killed_stage.py"), "gen", "functions.json",
                               *TINY_DATA, f"out_dir={out}", *overrides], cwd=tmp_path, capture_output=True, text=True,
                              timeout=120)
        assert died.returncode == -signal.SIGKILL, died.stderr[-2000:]

    killed()
    assert not out.exists()
    staged = list(tmp_path.glob(".d.staging-*"))  # what the killed run wrote, never under the dataset's name
    assert len(staged) == 1 and (staged[0] / "train.npy").is_file()
    done = run_script("01_generate_data.py", *TINY_DATA, f"out_dir={out}", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == [".d.lock", "d", "logs"]  # the leftover is cleared
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    killed("overwrite=true", "seed=3")  # replacing it is killed too: the dataset there stays whole
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    check_dataset(out)
    assert load_dataset(out).config["seed"] == 0
