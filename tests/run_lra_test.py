"""run_lra.py ends a bad `--config.<key>` override, and missing or malformed
data, with one clear line on stderr and no traceback."""

import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run(*flags, config="configs/listops.py:softmax,smoke",
         workdir="/nonexistent/never_written"):
  return subprocess.run(
      [sys.executable, "run_lra.py", f"--config={config}",
       f"--workdir={workdir}", *flags], cwd=ROOT,
      env=dict(os.environ, JAX_PLATFORMS="cpu"), capture_output=True,
      text=True, timeout=120)


def _last_line(result):
  assert result.returncode != 0
  assert "Traceback" not in result.stderr, result.stderr[-3000:]
  return result.stderr.strip().splitlines()[-1]


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


def test_missing_data_files_are_one_line(tmp_path):
  empty = tmp_path / "empty"
  empty.mkdir()
  line = _last_line(_run(f"--config.data.data_dir={empty}",
                         config="configs/retrieval.py:linear,smoke",
                         workdir=str(tmp_path / "run")))
  assert line.startswith("error: data for task 'retrieval': retrieval: "
                         "new_aan_pairs.train.tsv not found; looked in: "
                         f"{empty}"), line
  assert "lra_release" in line  # where to get the files


def test_malformed_row_is_one_line_with_file_and_line(tmp_path):
  data = tmp_path / "listops"
  data.mkdir()
  good = "( ( [MAX 1 ) 2 ) ]\t2\r\n"
  for split in ("train", "val", "test"):
    rows = [good] * 3 + (["[MAX 1 2 ]\tseven\r\n"] if split == "train" else [])
    (data / f"basic_{split}.tsv").write_text("Source\tTarget\r\n" +
                                             "".join(rows))
  line = _last_line(_run(f"--config.data.data_dir={data}",
                         workdir=str(tmp_path / "run")))
  path = data / "basic_train.tsv"
  assert line.startswith(f"error: data for task 'listops': {path}:5:"), line
