"""Every notebook executes in smoke mode in a temporary copy, changing no file outside it,
and is stored without outputs."""

import hashlib
import os
import shutil
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
SKIPPED = {".git", ".venv", "__pycache__", ".pytest_cache", ".hypothesis", ".ruff_cache"}


def checkout_files() -> dict[str, str]:
    """Every file of the checkout (not the environment or caches) → its content's digest."""
    files = {}
    for folder, subfolders, names in os.walk(ROOT):
        # pruned, not filtered after: the environment alone holds tens of thousands of files
        subfolders[:] = [
            name for name in subfolders if name not in SKIPPED and not name.endswith(".egg-info")
        ]
        for name in names:
            path = Path(folder, name)
            if path.is_file():
                files[str(path.relative_to(ROOT))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return files


def test_there_are_notebooks():
    assert NOTEBOOKS


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_stored_without_outputs(path):
    notebook = nbformat.read(path, as_version=4)
    for cell in notebook.cells:
        if cell.cell_type == "code":
            assert not cell.outputs and cell.execution_count is None


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_executes_in_smoke_mode_in_a_copy_changing_nothing_outside(
    path, monkeypatch, tmp_path
):
    # The notebook alone, copied to an empty folder: what it writes (runs, figures) goes to
    # folders it creates there, and the checkout (the README's figures) is left as it was.
    from nbclient import NotebookClient

    monkeypatch.setenv("PVAE_SMOKE", "1")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    copy = tmp_path / path.name
    shutil.copyfile(path, copy)
    before = checkout_files()
    notebook = nbformat.read(copy, as_version=4)
    NotebookClient(
        notebook,
        timeout=300,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},
    ).execute()
    errors = [o for c in notebook.cells for o in c.get("outputs", []) if o.output_type == "error"]
    assert not errors
    after = checkout_files()
    changed = sorted(
        name for name in before.keys() | after.keys() if before.get(name) != after.get(name)
    )
    assert not changed
