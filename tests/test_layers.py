"""The layering of ../shared/STYLE.md habit 16, kept by import-linter.

framework and storage < realtime and http < plugin < capabilities < gateway
< cli: a module imports only from layers below its own (the contract is in
pyproject.toml). The second test proves the contract has teeth: a copy of
the package whose framework imports a capability fails it.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    """Run import-linter on the tree at ``root`` (its own pyproject.toml and package)."""
    command = [
        sys.executable,
        "-c",
        "from importlinter.cli import lint_imports_command; lint_imports_command()",
    ]
    return subprocess.run(
        command,
        cwd=root,
        env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_every_module_imports_only_from_layers_below_its_own() -> None:
    result = lint_imports(REPO)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "BROKEN" not in result.stdout


def test_a_framework_module_that_imports_a_capability_breaks_the_contract(
    tmp_path: Path,
) -> None:
    shutil.copytree(
        REPO / "hubbub", tmp_path / "hubbub", ignore=shutil.ignore_patterns("__pycache__")
    )
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    batcher = tmp_path / "hubbub" / "actors" / "batcher.py"
    batcher.write_text(batcher.read_text() + "\nimport hubbub.chat.entity  # noqa\n")
    result = lint_imports(tmp_path)
    assert result.returncode != 0
    assert "hubbub.actors is not allowed to import hubbub.chat" in result.stdout
