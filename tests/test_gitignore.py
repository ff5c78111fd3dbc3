"""The repository ignores what a checkout makes: a virtual environment is ignored as a folder and as a symlink."""

import subprocess

import pytest

from tests.conftest import ROOT


@pytest.mark.parametrize("path", [".venv", ".venv-cluster"])
def test_a_symlinked_venv_is_ignored(path):
    # --no-index: by the patterns alone; a path that does not exist is matched as a file, as git sees a symlink
    result = subprocess.run(["git", "check-ignore", "--no-index", "-q", path], cwd=ROOT)
    assert result.returncode == 0, f"{path} is not ignored by .gitignore"
