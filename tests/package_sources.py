"""The files a wheel of this repository is built from, copied elsewhere.

Shared by the packaging and notebook tests: pip builds in the source tree,
and a build/ folder in the checkout would race with other runs.
"""

import pathlib
import shutil

REPO = pathlib.Path(__file__).resolve().parents[1]


def copy_package_sources(dest: pathlib.Path) -> pathlib.Path:
  """Copies pyproject.toml, README.md and the packages into `dest` (new)."""
  dest.mkdir()
  for name in ("pyproject.toml", "README.md"):
    shutil.copy(REPO / name, dest / name)
  for package in ("macformer_jax", "lra_tasks", "configs"):
    shutil.copytree(
      REPO / package,
      dest / package,
      ignore=shutil.ignore_patterns("__pycache__"),
    )
  return dest
