"""Where a run's persistent compilation cache goes, and switching it."""

import os

import jax

from macformer_jax.training import compilation_cache as cc


def test_cache_dir_order(tmp_path, monkeypatch):
  workdir = str(tmp_path / "run")
  monkeypatch.setenv(cc.ENV_VAR, str(tmp_path / "mine"))
  assert cc.cache_dir(workdir) == str(tmp_path / "mine")
  monkeypatch.setenv(cc.ENV_VAR, "off")
  assert cc.cache_dir(workdir) is None
  monkeypatch.delenv(cc.ENV_VAR)
  old = jax.config.jax_compilation_cache_dir
  try:
    jax.config.update("jax_compilation_cache_dir", None)
    assert cc.cache_dir(workdir) == os.path.join(workdir, cc.SUBDIR)
    jax.config.update("jax_compilation_cache_dir", str(tmp_path / "jax"))
    assert cc.cache_dir(workdir) == str(tmp_path / "jax")
  finally:
    jax.config.update("jax_compilation_cache_dir", old)


def test_enable_writes_compiled_programs_there(tmp_path):
  old = jax.config.jax_compilation_cache_dir
  old_min = jax.config.jax_persistent_cache_min_compile_time_secs
  try:
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
    assert cc.enable(None) is None
    assert jax.config.jax_compilation_cache_dir == old
    assert cc.enable(str(tmp_path)) == str(tmp_path)
    jax.jit(lambda x: x * 3.0 + 1.0)(jax.numpy.ones(17)).block_until_ready()
    assert os.listdir(tmp_path)
  finally:
    jax.config.update("jax_persistent_cache_min_compile_time_secs", old_min)
    if old:
      cc.enable(old)
