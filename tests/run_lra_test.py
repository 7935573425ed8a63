"""run_lra.py ends every mistake on the command line (config string, config
value, unknown key) and missing or malformed data with one `error:` line on
stderr, exit status 2 and no traceback; Ctrl-C checkpoints the step in
flight and the same command resumes there; without a terminal a line comes
at least every 30 s."""

import io
import json
import logging
import os
import signal
import subprocess
import sys
import time

from macformer_jax.training import metrics
from macformer_jax.training import preemption

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_ENV = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=ROOT)

# Runs run_lra.py once per argv of a JSON list, each in a forked child of
# one process that imported it (a fresh absl/config state per child, as in
# a new process, without paying the imports each time); prints
# [[exit status, stderr], ...].
_FORK_DRIVER = """
import json, os, sys, tempfile, traceback
import run_lra
from absl import app

results = []
for argv in json.loads(sys.argv[1]):
  with tempfile.TemporaryFile("w+") as err:
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
      os.dup2(err.fileno(), 2)
      code = 1
      try:
        sys.argv = ["run_lra.py", *argv]
        app.run(run_lra.main, flags_parser=run_lra.parse_flags)
        code = 0
      except SystemExit as e:
        if isinstance(e.code, int):
          code = e.code
        else:
          print(e.code, file=sys.stderr)
      except BaseException:
        traceback.print_exc()
      finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    err.seek(0)
    results.append((os.waitstatus_to_exitcode(status), err.read()))
print(json.dumps(results))
"""


def _run_each(argvs):
  result = subprocess.run(
    [sys.executable, "-c", _FORK_DRIVER, json.dumps(argvs)],
    cwd=ROOT,
    env=_ENV,
    capture_output=True,
    text=True,
    timeout=300,
  )
  assert result.returncode == 0, result.stderr[-3000:]
  return json.loads(result.stdout)


_LISTOPS = "--config=configs/listops.py:softmax,smoke"
_NO_WORKDIR = "--workdir=/nonexistent/never_written"


def _malformed_listops(directory):
  directory.mkdir()
  good = "( ( [MAX 1 ) 2 ) ]\t2\r\n"
  for split in ("train", "val", "test"):
    rows = [good] * 3 + (["[MAX 1 2 ]\tseven\r\n"] if split == "train" else [])
    (directory / f"basic_{split}.tsv").write_text(
      "Source\tTarget\r\n" + "".join(rows)
    )


def test_every_mistake_is_one_error_line_with_status_2(tmp_path):
  """Each bad input: exit status 2, no traceback, the last stderr line is
  `error: ...` naming the culprit; before any data (config mistakes) it is
  the only line."""
  empty = tmp_path / "empty"
  empty.mkdir()
  listops_dir = tmp_path / "listops"
  _malformed_listops(listops_dir)
  # (argv, words the error line must contain, only line on stderr)
  cases = [
    # Config strings: a typo, an unknown preset, argument, flag value.
    (
      ["--config=configs/listops.py:macformr_exp"],
      [
        "'macformr_exp'",
        "did you mean 'macformer_exp'",
        "ATTENTION_PRESETS in configs/common.py",
      ],
      True,
    ),
    (
      ["--config=configs/listops.py:softmax,preset=foo"],
      ["unknown preset 'foo'", "lra, macformer", "configs/common.py"],
      True,
    ),
    (
      ["--config=configs/listops.py:softmx"],
      ["unknown config argument 'softmx'", "did you mean 'softmax'"],
      True,
    ),
    (
      ["--config=configs/listops.py:softmax,preset=big"],
      ["unknown preset 'big'"],
      True,
    ),
    (
      ["--config=configs/listops.py:softmax,size=2"],
      ["unknown config argument 'size'"],
      True,
    ),
    (
      ["--config=configs/listops.py:softmax,smoke=maybe"],
      ["smoke takes true/false"],
      True,
    ),
    (
      ["--config=configs/nothere.py:softmax"],
      ["configs/nothere.py", "No such file"],
      True,
    ),
    # Unknown keys and bad values of --config.<key>.
    (
      [_LISTOPS, "--config.attention.options.num_features=128"],
      [
        "--config.attention.options.num_features: the config has no such "
        "key (num_features)"
      ],
      True,
    ),
    (
      [_LISTOPS, "--config.model.emb_dm=3"],
      ["--config.model.emb_dm", 'Did you mean "emb_dim"'],
      True,
    ),
    (
      [_LISTOPS, "--config.train.num_train_stepz=200"],
      ["--config.train.num_train_stepz", "num_train_steps"],
      True,
    ),
    (
      [
        "--config=configs/listops.py:macformer_exp",
        "--config.attention.options.num_featurs=64",
      ],
      ["--config.attention.options.num_featurs", "num_features"],
      True,
    ),
    (
      [_LISTOPS, "--config.train.num_train_steps=abc"],
      ["--config.train.num_train_steps=abc", "int"],
      True,
    ),
    # Out-of-range values, checked before any data is generated.
    (
      [_LISTOPS, "--config.train.num_train_steps=-5"],
      ["--config.train.num_train_steps=-5: must be >= 1"],
      True,
    ),
    (
      [_LISTOPS, "--config.data.batch_size=0"],
      ["--config.data.batch_size=0: must be >= 1"],
      True,
    ),
    ([_LISTOPS, "--config.data.max_len=0"], ["--config.data.max_len=0"], True),
    (
      [_LISTOPS, "--config.model.dropout_rate=1.5"],
      ["--config.model.dropout_rate=1.5: must be in [0, 1)"],
      True,
    ),
    (
      [
        "--config=configs/listops.py:macformer_exp,smoke",
        "--config.attention.options.num_features=0",
      ],
      ["--config.attention.options.num_features=0"],
      True,
    ),
    (
      [
        "--config=configs/listops.py:macformer_inverse",
        "--config.attention.options.qk_scale=2.0",
      ],
      [
        "--config.attention.options.qk_scale=2.0",
        "radius of convergence",
        "macformer_inverse_tuned",
      ],
      True,
    ),
    (
      ["--config=configs/listops.py:softmax", "extra"],
      ["unexpected arguments: extra"],
      True,
    ),
    # Missing and malformed data.
    (
      [
        "--config=configs/retrieval.py:linear,smoke",
        f"--config.data.data_dir={empty}",
        f"--workdir={tmp_path / 'r1'}",
      ],
      [
        "data for task 'retrieval': retrieval: new_aan_pairs.train.tsv not "
        f"found; looked in: {empty}",
        "lra_release",
      ],
      False,
    ),
    (
      [
        _LISTOPS,
        f"--config.data.data_dir={listops_dir}",
        f"--workdir={tmp_path / 'r2'}",
      ],
      [f"data for task 'listops': {listops_dir / 'basic_train.tsv'}:5:"],
      False,
    ),
  ]
  results = _run_each(
    [
      argv
      if any(a.startswith("--workdir") for a in argv)
      else argv + [_NO_WORKDIR]
      for argv, _, _ in cases
    ]
  )
  for (argv, words, only), (status, stderr) in zip(cases, results, strict=True):
    lines = stderr.strip().splitlines()
    assert status == 2, (argv, status, stderr[-3000:])
    assert "Traceback" not in stderr, (argv, stderr[-3000:])
    assert lines[-1].startswith("error: "), (argv, stderr[-3000:])
    for word in words:
      assert word in lines[-1], (argv, word, lines[-1])
    if only:
      assert len(lines) == 1, (argv, stderr)


def test_a_second_ctrl_c_stops_at_once():
  """The first SIGINT is a notice (the step in flight finishes); after it,
  SIGINT has its default action, which ends the process at once."""
  notice = preemption.PreemptionNotice()
  notice.install()
  try:
    os.kill(os.getpid(), signal.SIGINT)
    assert notice.received and notice.signal_name == "SIGINT"
    assert signal.getsignal(signal.SIGINT) == signal.SIG_DFL
  finally:
    notice.restore()
  assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
  error = preemption.Preempted(7, "/w/checkpoints/latest", "SIGINT")
  assert error.exit_code == 130
  assert str(error).startswith("interrupted (SIGINT): stopped after step 7")


_TINY = [
  "--config=configs/listops.py:softmax,smoke",
  "--config.model.emb_dim=16",
  "--config.model.qkv_dim=16",
  "--config.model.mlp_dim=32",
  "--config.model.num_layers=1",
  "--config.data.max_len=64",
  "--config.data.batch_size=8",
  "--config.data.offline.num_train=400",
  "--config.data.offline.num_val=40",
  "--config.data.offline.num_test=36",
  "--config.data.offline.min_length=4",
  "--config.data.offline.max_length=60",
  "--config.data.offline.max_depth=4",
  "--config.optimizer.warmup_steps=10",
  "--config.train.num_devices=1",
  "--config.train.num_train_steps=60",
  "--config.train.log_every=1",
  "--config.train.eval_frequency=60",
  "--config.train.checkpoint_every=0",
]


def test_ctrl_c_checkpoints_and_the_same_command_resumes_there(tmp_path):
  """Ctrl-C: the step in flight is checkpointed, the run exits 130 with one
  line saying so; the same command resumes there. The rerun (with JAX's
  platform probe on) also shows that the logs hold neither the backend probe
  nor the config dump nor a TFDS "Downloading" line."""
  command = [
    sys.executable,
    "run_lra.py",
    *_TINY,
    f"--workdir={tmp_path / 'run'}",
  ]
  run = subprocess.Popen(
    command,
    cwd=ROOT,
    env=_ENV,
    stdout=subprocess.PIPE,
    stderr=subprocess.PIPE,
    text=True,
  )
  try:
    lines = []
    for line in run.stderr:  # no terminal: a log line per step
      lines.append(line)
      if "step 1/60: train loss" in line:
        run.send_signal(signal.SIGINT)
        break
    lines += run.stderr.readlines()
    assert run.wait(timeout=120) == 130, "".join(lines)[-3000:]
  finally:
    run.kill()
  stderr = "".join(lines)
  assert "Traceback" not in stderr, stderr[-3000:]
  last = stderr.strip().splitlines()[-1]
  assert last.startswith("interrupted (SIGINT): stopped after step "), last
  assert last.endswith("run the same command again to resume"), last
  step = int(last.split("stopped after step ")[1].split(",")[0])
  assert 1 <= step < 60
  assert os.path.isdir(tmp_path / "run" / "checkpoints" / "latest" / str(step))

  env = {k: v for k, v in _ENV.items() if k != "JAX_PLATFORMS"}
  rerun = subprocess.run(
    command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
  )
  assert rerun.returncode == 0, rerun.stderr[-3000:]
  assert f"at step {step}\n" in rerun.stderr, rerun.stderr[-3000:]
  assert f"step {step + 1}/60: train loss" in rerun.stderr
  assert f"step {step}/60: train loss" not in rerun.stderr
  assert (
    "task=listops attention=softmax preset=lra,smoke steps=60" in rerun.stdout
  )
  assert "Unable to initialize backend" not in rerun.stderr
  assert "emb_dim" not in rerun.stderr  # no config dump
  assert f"config in {tmp_path / 'run' / 'config.json'}" in rerun.stderr
  assert "Downloading" not in rerun.stderr + rerun.stdout


def test_without_a_terminal_a_line_after_each_silent_interval(
  monkeypatch, caplog
):
  monkeypatch.setattr(sys, "stderr", io.StringIO())  # not a terminal
  caplog.set_level(logging.INFO)
  heartbeat = metrics.Heartbeat(interval=0.1)
  try:
    heartbeat.phase("preparing the data and the model")
    time.sleep(0.35)
    progress = metrics.Progress(0, 10, heartbeat)
    time.sleep(0.25)
  finally:
    heartbeat.close()
  lines = [
    r.getMessage()
    for r in caplog.records
    if r.getMessage().startswith("still ")
  ]
  assert any("still preparing the data and the model" in x for x in lines)
  assert any("still compiling and running step 1/10" in x for x in lines)
  assert progress.bar is None
