"""Packaging: the core imports nothing of the harness, every third-party
import is declared in pyproject.toml, and the built wheel installs and runs
in a clean venv without the extras."""

import ast
import importlib.metadata
import os
import pathlib
import re
import subprocess
import sys
import tomllib

from package_sources import copy_package_sources
import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
# The library's public modules; what they import from macformer_jax is the
# core too. The rest of macformer_jax/ is the trainer (extra [lra]).
CORE = (
  "kernels",
  "features",
  "attention",
  "normalization",
  "layers",
  "encoder",
)
# Dependencies of the harness only: the core must not import them.
HARNESS_MODULES = (
  "optax",
  "orbax",
  "tensorboardX",
  "tqdm",
  "tensorflow_datasets",
  "tensorflow",
  "ml_collections",
  "matplotlib",
  "PIL",
  "lra_tasks",
  "configs",
)

_CHECK_CORE = f"""
import sys
from macformer_jax import {", ".join(CORE)}
loaded = sorted(m for m in {HARNESS_MODULES!r} if m in sys.modules)
assert not loaded, f"the core imported {{loaded}}"
core_files = sorted(m.__file__ for name, m in list(sys.modules.items())
                    if name.startswith("macformer_jax."))
"""

# Run in the clean venv: the wheel's core, a forward pass of the one-call
# function and of the module, and a harness import that needs the extras.
_CLEAN_VENV = (
  _CHECK_CORE
  + """
import importlib, os
import jax, jax.numpy as jnp
import macformer_jax
assert os.path.realpath(macformer_jax.__file__).startswith(
    os.path.realpath(sys.prefix)), macformer_jax.__file__  # the wheel's copy
q, k, v = jax.random.normal(jax.random.key(0), (3, 1, 16, 2, 8))
params = features.sample_rmf(jax.random.key(1), 8, 16, "exp", "stratified")
out = attention.macformer_attention(params, q, k, v)
core = layers.attention_class("rmfa", num_features=16)()
variables = core.init({"params": jax.random.key(2),
                       "features": jax.random.key(3)}, q, k, v)
out_module = core.apply(variables, q, k, v)
assert out.shape == out_module.shape == (1, 16, 2, 8)
assert bool(jnp.all(jnp.isfinite(out))), out
try:
  importlib.import_module("macformer_jax.training")
except ModuleNotFoundError as e:
  assert "pip install 'macformer-jax[lra]'" in str(e), e  # says which extra
  print("without extras:", e.name)
else:
  raise AssertionError("macformer_jax.training imported without [lra]")
try:
  import configs  # run from outside the checkout: only an installed one
except ModuleNotFoundError:
  print("no top-level configs")
else:
  raise AssertionError(f"a top-level configs package: {configs.__file__}")
print("clean venv ok", macformer_jax.__version__)
"""
)


def _pyproject():
  with open(REPO / "pyproject.toml", "rb") as f:
    return tomllib.load(f)["project"]


def _names(requirements):
  """Normalised distribution names of requirement strings."""
  return {
    re.split(r"[<>=!~\[; ]", r, maxsplit=1)[0].lower().replace("_", "-")
    for r in requirements
  }


@pytest.fixture(scope="module")
def core_files():
  """Files of the macformer_jax modules the core imports (in a subprocess,
  which also asserts that no harness dependency gets imported)."""
  result = subprocess.run(
    [sys.executable, "-c", _CHECK_CORE + "print(*core_files, sep='\\n')"],
    cwd=REPO,
    capture_output=True,
    text=True,
    timeout=120,
  )
  assert result.returncode == 0, result.stderr
  return {pathlib.Path(p).resolve() for p in result.stdout.split()}


def test_core_imports_no_harness_dependency(core_files):
  assert {p.stem for p in core_files} >= set(CORE)


def _third_party_imports(path):
  tree = ast.parse(path.read_text(), str(path))
  for node in ast.walk(tree):
    if isinstance(node, ast.Import):
      names = [a.name for a in node.names]
    elif isinstance(node, ast.ImportFrom) and node.level == 0:
      names = [node.module]
    else:
      continue
    for name in names:
      top = name.split(".")[0]
      if top not in sys.stdlib_module_names:
        yield top


def test_every_third_party_import_is_declared(core_files):
  """Core files need only the core dependencies; the harness (trainer,
  lra_tasks, configs, run_lra.py, benchmarks) the core plus [lra]; the
  tests also [test]. TensorFlow is optional (CIFAR-10 preparation only)."""
  project = _pyproject()
  core = _names(project["dependencies"])
  lra = core | _names(project["optional-dependencies"]["lra"])
  test = lra | _names(project["optional-dependencies"]["test"])
  local = {"macformer_jax", "lra_tasks", "configs", "run_lra", "benchmarks"} | {
    p.stem for p in [*REPO.glob("benchmarks/*.py"), *REPO.glob("tests/*.py")]
  }
  distributions = importlib.metadata.packages_distributions()
  groups = [
    (sorted(core_files), core),
    (
      [
        p
        for p in REPO.glob("macformer_jax/**/*.py")
        if p.resolve() not in core_files
      ]
      + list(REPO.glob("lra_tasks/*.py"))
      + list(REPO.glob("configs/*.py"))
      + [REPO / "run_lra.py"]
      + list(REPO.glob("benchmarks/*.py")),
      lra,
    ),
    (list(REPO.glob("tests/*.py")), test),
  ]
  missing = []
  for paths, allowed in groups:
    for path in paths:
      for top in set(_third_party_imports(path)) - local - {"tensorflow"}:
        dists = {
          d.lower().replace("_", "-") for d in distributions.get(top, [top])
        }
        if not dists & allowed:
          missing.append(f"{path.relative_to(REPO)}: {top} ({dists})")
  assert not missing, "imports not declared in pyproject.toml:\n" + "\n".join(
    missing
  )


def test_requirements_install_the_package_with_its_extras():
  """requirements.txt (the README's and CI's install) is the package itself
  with both extras, so the two lists cannot drift apart."""
  lines = [
    line.split("#")[0].strip()
    for line in (REPO / "requirements.txt").read_text().splitlines()
  ]
  assert [line for line in lines if line] == ["-e .[lra,test]"]
  assert set(_pyproject()["optional-dependencies"]) == {"lra", "test"}


@pytest.mark.slow
def test_wheel_installs_and_runs_in_a_clean_venv(tmp_path):
  """Builds the wheel from a copy of the sources (no build/ in the checkout),
  installs it without extras into a fresh venv (its dependencies come from
  the package index: about a minute) and runs the core there."""
  src = copy_package_sources(tmp_path / "src")
  dist = tmp_path / "dist"
  pip_env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
  pip_env.pop("PYTHONPATH", None)

  def run(*command, cwd=tmp_path):
    result = subprocess.run(
      command, cwd=cwd, env=pip_env, capture_output=True, text=True, timeout=900
    )
    assert result.returncode == 0, (
      command,
      result.stdout[-3000:],
      result.stderr[-3000:],
    )
    return result.stdout

  run(
    sys.executable,
    "-m",
    "pip",
    "wheel",
    "--quiet",
    "--no-deps",
    "-w",
    str(dist),
    str(src),
  )
  wheels = list(dist.glob("macformer_jax-*.whl"))
  assert len(wheels) == 1, wheels
  listing = run(sys.executable, "-m", "zipfile", "-l", str(wheels[0]))
  for path in (
    "macformer_jax/attention.py",
    "lra_tasks/listops.py",
    "macformer_jax/training/configs/common.py",
  ):
    assert path in listing
  assert "tests/" not in listing and "benchmarks/" not in listing
  names = [line.split()[0] for line in listing.splitlines()[1:]]
  assert not [n for n in names if n.startswith(("configs/", "build/"))]
  venv = tmp_path / "venv"
  run(sys.executable, "-m", "venv", str(venv))
  python = str(venv / "bin" / "python")
  run(python, "-m", "pip", "install", "--quiet", str(wheels[0]))
  out = run(python, "-c", _CLEAN_VENV)  # in tmp_path, outside the checkout
  assert "clean venv ok" in out, out
  assert "without extras: " in out, out
  assert "no top-level configs" in out, out
  assert not (REPO / "build").exists()


def test_packages_are_listed_and_configs_installs_in_the_namespace():
  """pyproject.toml lists the packages (no top-level `configs`: configs/
  installs as macformer_jax.training.configs); every package directory of
  the checkout is listed, so that none is left out of the wheel."""
  with open(REPO / "pyproject.toml", "rb") as f:
    setuptools = tomllib.load(f)["tool"]["setuptools"]
  packages = set(setuptools["packages"])
  assert "configs" not in packages
  assert setuptools["package-dir"] == {
    "macformer_jax.training.configs": "configs"
  }
  directories = {
    str(p.parent.relative_to(REPO)).replace(os.sep, ".")
    for top in ("macformer_jax", "lra_tasks", "configs")
    for p in (REPO / top).rglob("__init__.py")
  }
  installed = {
    setuptools["package-dir"].get(p, p.replace(".", "/")).replace("/", ".")
    for p in packages
  }
  assert installed == directories
  assert "/build/" in (REPO / ".gitignore").read_text().split()
