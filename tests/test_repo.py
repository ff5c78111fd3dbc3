"""Promises the repository makes about itself: CI runs the README's test command; every config key is explained."""

import re
import subprocess

from tests.conftest import ROOT


def readme_commands() -> list[str]:
    return re.findall(r"```bash\n(.+?)\n```", (ROOT / "README.md").read_text())[:2]


def test_ci_runs_the_readme_test_command_verbatim():
    run_pipeline, run_tests = readme_commands()
    assert run_pipeline.endswith("./run.sh") and run_tests.endswith("python -m pytest")
    assert run_tests in (ROOT / ".ci" / "run").read_text().splitlines()


def test_every_yaml_key_has_a_comment():
    """A key line carries a `# ...` comment, or sits right below a comment line (for long values)."""
    missing = []
    for path in sorted((ROOT / "config").rglob("*.yaml")):
        lines = path.read_text().splitlines()
        for i, line in enumerate(lines):
            if re.match(r"^\s*[\w.]+:", line) and "#" not in line and not lines[i - 1].lstrip().startswith("#"):
                missing.append(f"{path.relative_to(ROOT)}:{i + 1}: {line.strip()}")
    assert not missing, "\n".join(missing)


def test_the_task_is_cited_in_the_repository_only():
    """Every citation of the task points at docs/task.md: none at the task statement outside the repository."""
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    cited = [name for name in tracked if (ROOT / name).suffix in (".py", ".md", ".yaml", ".sh", ".txt", ".toml")
             and re.search(r"SPEC\.md|\.\./shared", (ROOT / name).read_text())]
    assert not cited, cited
