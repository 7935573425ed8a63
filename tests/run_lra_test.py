"""run_lra.py turns a bad `--config.<key>` override into one clear line."""

import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run(*flags):
  return subprocess.run(
      [sys.executable, "run_lra.py", "--config=configs/listops.py:softmax,smoke",
       "--workdir=/nonexistent/never_written", *flags], cwd=ROOT,
      capture_output=True, text=True, timeout=120)


def test_unknown_override_names_the_flag():
  result = _run("--config.attention.options.num_features=128")
  assert result.returncode != 0
  assert "--config.attention.options.num_features: the config has no such " \
         "key (num_features)" in result.stderr
  assert "Traceback" not in result.stderr


def test_misspelt_override_suggests_the_key():
  result = _run("--config.model.emb_dm=3")
  assert result.returncode != 0
  assert "--config.model.emb_dm" in result.stderr
  assert 'Did you mean "emb_dim"' in result.stderr
