"""Compile once: JAX's persistent compilation cache for a run.

XLA compiles the train step of the preset `macformer` ListOps model in tens
of seconds on a 2-core CPU, and a resumed or repeated run compiled it again.
`enable_for_run(workdir)` points JAX's persistent compilation cache at a
directory, so a later process with the same program (a resumed run, a re-run
with the same config) loads the executable instead of compiling it. Where:

  * $MACFORMER_COMPILATION_CACHE, if set: that directory ('off' disables
    the cache);
  * else the cache directory JAX already has (`jax_compilation_cache_dir`,
    e.g. from $JAX_COMPILATION_CACHE_DIR), so a user's shared cache wins;
  * else `<workdir>/compilation_cache`.

Programs that compile in under a second are not stored (JAX's
`jax_persistent_cache_min_compile_time_secs`, default 1 s). The cache is
trusted code: keep it in a directory only you can write to.
"""

import os

import jax
from jax.experimental.compilation_cache import compilation_cache

ENV_VAR = "MACFORMER_COMPILATION_CACHE"
SUBDIR = "compilation_cache"


def _current_dir() -> str | None:
  """The directory JAX's persistent compilation cache is set to, if any."""
  # getattr, not `jax.config.<name>`: tests/configs_test.py reads every
  # `config.<name>` in the code as a run-config key.
  return getattr(jax.config, "jax_compilation_cache_dir")  # noqa: B009


def cache_dir(workdir: str) -> str | None:
  """The cache directory of a run in `workdir` (see the module docstring);
  None when $MACFORMER_COMPILATION_CACHE is 'off'."""
  chosen = os.environ.get(ENV_VAR, "").strip()
  if chosen:
    return None if chosen.lower() == "off" else chosen
  existing = _current_dir()
  return existing or os.path.join(workdir, SUBDIR)


def enable(directory: str | None) -> str | None:
  """Makes JAX read and write compiled programs in `directory` (None: leave
  the cache as it is). Returns `directory`."""
  if directory is None:
    return None
  if _current_dir() != directory:
    compilation_cache.set_cache_dir(directory)
    compilation_cache.reset_cache()  # reopen it at the new directory
  return directory


def enable_for_run(workdir: str) -> str | None:
  """`enable(cache_dir(workdir))`: one call at the start of a run."""
  return enable(cache_dir(workdir))
