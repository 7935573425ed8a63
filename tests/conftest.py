"""Test-wide JAX set-up: CPU, two simulated devices (for the pmap tests),
and a persistent compilation cache so re-runs compile less."""

import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")
_flags = os.environ.get("XLA_FLAGS", "")
if "xla_force_host_platform_device_count" not in _flags:
  os.environ["XLA_FLAGS"] = (
    _flags + " --xla_force_host_platform_device_count=2"
  ).strip()
_cache = os.path.join(os.path.dirname(os.path.dirname(__file__)), ".jax_cache")
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", _cache)
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.5")

from absl import flags  # pylint: disable=g-import-not-at-top
import jax  # pylint: disable=g-import-not-at-top
import pytest  # pylint: disable=g-import-not-at-top

# absltest-style helpers read flags; pytest never parses them.
flags.FLAGS.mark_as_parsed()


@pytest.fixture(scope="module")
def compile_fast():
  """Fewer XLA passes, for modules that compile many small programs;
  opt in with `pytestmark = pytest.mark.usefixtures("compile_fast")`.
  Module-scoped and restored, so other test files keep the default."""
  old = jax.config.read("jax_disable_most_optimizations")
  jax.config.update("jax_disable_most_optimizations", True)
  yield
  jax.config.update("jax_disable_most_optimizations", old)
