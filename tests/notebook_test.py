"""Runs notebooks/macformer_quickstart.ipynb top to bottom (smoke settings).

MACFORMER_NOTEBOOK_SMOKE=1 shrinks every step (30 training steps on short
generated ListOps, D <= 256, L <= 128); the whole notebook takes well under a
minute on 2 CPU cores. MACFORMER_INSTALL_FROM points the install cell at this
checkout instead of the repository URL: it pip-installs the package (without
dependencies, already in the test environment) into a temporary folder, so
the notebook runs the installed package, as on Colab.

It runs headless as the README says, `jupyter nbconvert --to notebook
--execute` (nbconvert comes with the [test] extra); where nbconvert is not
installed, through nbclient (the library nbconvert runs it with).
"""

import importlib.util
import os
import pathlib
import subprocess
import sys

from nbclient import NotebookClient
import nbformat
from package_sources import copy_package_sources
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


def test_install_url_is_named_once():
  """One clearly marked place for the repository URL, in the first cell."""
  nb = nbformat.read(NOTEBOOK, as_version=4)
  sources = [c.source for c in nb.cells if c.cell_type == "code"]
  assert "EDIT HERE" in sources[0] and "REPO_URL = " in sources[0]
  assert sum(s.count("REPO_URL = ") for s in sources) == 1
  assert "pip install" in sources[0]


def test_notebook_runs_top_to_bottom(monkeypatch, tmp_path):
  monkeypatch.setenv("MACFORMER_NOTEBOOK_SMOKE", "1")
  monkeypatch.setenv(
    "MACFORMER_INSTALL_FROM", str(copy_package_sources(tmp_path / "checkout"))
  )
  monkeypatch.delenv("PYTHONPATH", raising=False)  # only the installed copy
  monkeypatch.setenv("JAX_PLATFORMS", "cpu")
  monkeypatch.delenv("MPLBACKEND", raising=False)  # the kernel's inline one
  nb = _execute(tmp_path)
  text = "\n".join(
    o.get("text", "")
    for c in nb.cells
    if c.cell_type == "code"
    for o in c.outputs
    if o.output_type == "stream"
  )
  assert "(smoke settings)" in text
  installed_at = text.split("installed at ", 1)[1].split()[0]
  assert not pathlib.Path(installed_at).resolve().is_relative_to(REPO)
  assert "task=listops attention=macformer_exp" in text  # trained and tested
  images = sum(
    "image/png" in o.get("data", {})
    for c in nb.cells
    if c.cell_type == "code"
    for o in c.outputs
  )
  assert images == 3  # training curve, error vs D, speed vs L
  for cell in nb.cells:
    for output in cell.get("outputs", []):
      if output.output_type == "error":
        pytest.fail(f"{output.ename}: {output.evalue}")


def _execute(tmp_path):
  """The notebook, run top to bottom in notebooks/ (fails on a cell error)."""
  if importlib.util.find_spec("nbconvert") is None:
    nb = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(
      nb,
      timeout=120,
      kernel_name="python3",
      resources={"metadata": {"path": str(NOTEBOOK.parent)}},
    ).execute()
    return nb
  result = subprocess.run(
    [
      sys.executable,
      "-m",
      "nbconvert",
      "--to",
      "notebook",
      "--execute",
      "--ExecutePreprocessor.timeout=120",
      "--ExecutePreprocessor.kernel_name=python3",
      "--output-dir",
      str(tmp_path),
      "--output",
      "executed",
      str(NOTEBOOK),
    ],
    env=os.environ,
    capture_output=True,
    text=True,
    timeout=600,
  )
  assert result.returncode == 0, result.stderr[-5000:]
  return nbformat.read(tmp_path / "executed.ipynb", as_version=4)
