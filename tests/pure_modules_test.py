"""The maths modules import no Flax: with flax made unimportable they still
import and compute (the Flax modules are in layers.py and encoder.py)."""

import pathlib
import subprocess
import sys

REPO = pathlib.Path(__file__).resolve().parents[1]
PURE = (
  "kernels",
  "features",
  "attention",
  "exact_attention",
  "dropout",
  "normalization",
  "spectral",
)

_SCRIPT = f"""
import sys


class _NoFlax:
  def find_spec(self, name, path=None, target=None):
    if name == "flax" or name.startswith("flax."):
      raise ImportError("flax is blocked in this test")
    return None


sys.meta_path.insert(0, _NoFlax())
import jax
import jax.numpy as jnp
from macformer_jax import {", ".join(PURE)}
assert not [m for m in sys.modules if m == "flax" or m.startswith("flax.")]
q, k, v = jax.random.normal(jax.random.key(0), (3, 1, 8, 2, 4))
params = features.sample_rmf(jax.random.key(1), 4, 8, "exp", "stratified")
out = attention.macformer_attention(params, q, k, v)
assert out.shape == (1, 8, 2, 4), out.shape
leaves = jax.tree_util.tree_leaves(params)
assert len(leaves) == 2, leaves  # projections and scales; the plan is static
print("ok")
"""


def test_maths_modules_import_and_run_without_flax():
  result = subprocess.run(
    [sys.executable, "-c", _SCRIPT],
    cwd=REPO,
    capture_output=True,
    text=True,
    timeout=120,
  )
  assert result.returncode == 0, result.stderr
  assert result.stdout.strip().endswith("ok"), result.stdout
