"""Refusals through the real command line leave everything as they found it (issue 15): a deleted key that an
interpolation needs is named."""

import subprocess
from pathlib import Path

import pytest

from tests.test_safety import error_line, script


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

