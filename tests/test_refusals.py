"""Refusals through the real command line leave everything as they found it (issue 15): a deleted key that an
interpolation needs is named, and a refusal under the lock leaves the lock file it found byte for byte (and
creates none)."""

import subprocess
from pathlib import Path

import pytest

from pipeline import generate
from tests.conftest import TINY_DATA, snapshot, stage_config
from tests.test_safety import TINY_TASK, error_line, script


def run(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(script(*args, logs=cwd / "logs"), cwd=cwd, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize(("stage", "deletion", "message"), [
    ("01_generate_data.py", "~seed=0", "~seed=0 deletes seed, but tag uses it (${seed}); give seed a value"),
    ("01_generate_data.py", "~seed", "~seed deletes seed, but tag uses it (${seed})"),
    ("02_train.py", "~data.tag", "~data.tag deletes data.tag, but tag uses it (${data.tag})"),
    ("02_train.py", "~data", "~data deletes data, but tag uses it (${data.tag})"),
])
def test_deleting_a_key_that_an_interpolation_uses_names_the_key(tmp_path, stage, deletion, message):
    result = run(tmp_path, stage, deletion)
    assert message in error_line(result)
    assert list(tmp_path.iterdir()) == []  # refused before Hydra: not even its logs


def test_a_refusal_under_the_lock_leaves_the_lock_file_it_found(tmp_path):
    """An existing dataset of another config is refused under the lock: the lock file that its writer left (its
    pid) keeps its bytes, and without one none is left."""
    data = tmp_path / "work" / "d"
    generate.run(stage_config("gen", [*TINY_DATA, *TINY_TASK, f"out_dir={data}"]))
    lock = data.parent / ".d.lock"
    assert lock.read_text().startswith("pid ")
    for lock_file in (True, False):
        if not lock_file:
            lock.unlink()
        before = snapshot(data.parent)
        result = run(tmp_path, "01_generate_data.py", *TINY_DATA, *TINY_TASK, "out_dir=work/d", "seed=1")
        assert "out_dir='work/d' holds a dataset of another config (it differs in seed: " in error_line(result)
        assert snapshot(data.parent) == before
