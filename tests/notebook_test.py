"""Runs notebooks/macformer_quickstart.ipynb top to bottom (smoke settings).

MACFORMER_NOTEBOOK_SMOKE=1 shrinks every step (30 training steps on short
generated ListOps, D <= 256, L <= 128); the whole notebook takes well under a
minute on 2 CPU cores. The repository root goes on the kernel's PYTHONPATH,
so the notebook's install cell is skipped, as it is in a clone.
"""

import os
import pathlib

import nbformat
from nbclient import NotebookClient
import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
NOTEBOOK = REPO / "notebooks" / "macformer_quickstart.ipynb"


def test_notebook_is_clean():
  """Committed without outputs, with a Python 3 kernel."""
  nb = nbformat.read(NOTEBOOK, as_version=4)
  nbformat.validate(nb)
  assert nb.metadata.kernelspec.name == "python3"
  for cell in nb.cells:
    if cell.cell_type == "code":
      assert not cell.outputs and cell.execution_count is None


def test_notebook_runs_top_to_bottom(monkeypatch):
  monkeypatch.setenv("MACFORMER_NOTEBOOK_SMOKE", "1")
  monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
      [str(REPO)] + [p for p in [os.environ.get("PYTHONPATH")] if p]))
  monkeypatch.setenv("JAX_PLATFORMS", "cpu")
  monkeypatch.delenv("MPLBACKEND", raising=False)  # the kernel's inline one
  nb = nbformat.read(NOTEBOOK, as_version=4)
  client = NotebookClient(
      nb, timeout=120, kernel_name="python3",
      resources={"metadata": {"path": str(NOTEBOOK.parent)}})
  client.execute()  # raises CellExecutionError on the first failing cell
  text = "\n".join(o.get("text", "") for c in nb.cells if c.cell_type == "code"
                   for o in c.outputs if o.output_type == "stream")
  assert "(smoke settings)" in text  # the install cell was skipped
  assert "task=listops attention=macformer_exp" in text  # trained and tested
  images = sum("image/png" in o.get("data", {}) for c in nb.cells
               if c.cell_type == "code" for o in c.outputs)
  assert images == 3  # training curve, error vs D, speed vs L
  for cell in nb.cells:
    for output in cell.get("outputs", []):
      if output.output_type == "error":
        pytest.fail(f"{output.ename}: {output.evalue}")
