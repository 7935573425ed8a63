r"""Trains and tests one LRA model: `python run_lra.py --config=<file>:<arg>`.

Examples:
  # Offline smoke run on generated ListOps (a few minutes on a CPU):
  python run_lra.py --config=configs/listops.py:macformer_exp,smoke
  # LRA ListOps, softmax baseline, data from the LRA release:
  python run_lra.py --config=configs/listops.py:softmax \
    --config.data.data_dir=$HOME/lra_release/lra_release/listops-1000 \
    --workdir=runs/listops_softmax
  # Any config key can be overridden:
  python run_lra.py --config=configs/text.py:performer,preset=macformer \
    --config.train.num_train_steps=200

The config string is `<attention>[,preset=lra|macformer][,smoke]`
(configs/common.py). `--workdir` defaults to runs/<task>_<attention>_<preset>
[_smoke]; a run restarted with the same workdir resumes from its latest
checkpoint. The run ends by printing one summary line and writing
`<workdir>/results.json`. A mistake in the config string or a config value
(checked before any data is generated), and missing or malformed data, end
the run with one line on stderr, `error: ...`, and exit status 2 (no
traceback). SIGTERM (a scheduler's preemption notice) or Ctrl-C checkpoints
the step in flight and exits with status 143 or 130 (128 + the signal);
rerunning the command resumes there. A second Ctrl-C stops at once.

On several hosts, start the same command on every host (README, "Training on
several hosts"); `jax.distributed.initialize()` runs when the environment says
the process is one of several.
"""

import logging as std_logging
import os
import re
import sys

from absl import app
from absl import flags
from absl import logging
import jax
from ml_collections import config_flags

from macformer_jax import training
from macformer_jax.training import validation

PREEMPTED_EXIT_CODE = 143  # 128 + SIGTERM, as if the signal had killed it
INTERRUPTED_EXIT_CODE = 130  # 128 + SIGINT
ERROR_EXIT_CODE = 2  # a one-line `error: ...` (usage, config or data)

_CONFIG = config_flags.DEFINE_config_file(
  "config",
  None,
  "Run config: configs/<task>.py:<attention>[,preset=...][,smoke].",
  lock_config=True,
)
_WORKDIR = flags.DEFINE_string(
  "workdir",
  None,
  "Directory for checkpoints, metrics and results.json "
  "(default: runs/<task>_<attention>_<preset>[_smoke]).",
)
_MULTIHOST = flags.DEFINE_bool(
  "multihost",
  False,
  "Join a multi-host job with jax.distributed."
  "initialize(), which detects Cloud TPU slices, SLURM, Open MPI and "
  "Kubernetes by itself (automatic when their environment variables are "
  "set, see _multi_process).",
)
_COORDINATOR = flags.DEFINE_string(
  "coordinator_address",
  None,
  "host:port of process 0 (multi-host "
  "without a cluster manager; also JAX_COORDINATOR_ADDRESS).",
)
_NUM_PROCESSES = flags.DEFINE_integer(
  "num_processes", None, "Processes in the job (with --coordinator_address)."
)
_PROCESS_ID = flags.DEFINE_integer(
  "process_id", None, "This process's index, 0..num_processes-1."
)
flags.mark_flags_as_required(["config"])

# Environment variables that mean "this process is one of several": then
# `jax.distributed.initialize()` finds the coordinator by itself (Cloud TPU
# pods on GKE, SLURM, Open MPI) or from JAX_COORDINATOR_ADDRESS.
_MULTI_PROCESS_ENV = (
  "JAX_COORDINATOR_ADDRESS",
  "TPU_WORKER_HOSTNAMES",
  "MEGASCALE_COORDINATOR_ADDRESS",
)
_COUNT_ENV = ("SLURM_NTASKS", "OMPI_COMM_WORLD_SIZE")


def _multi_process() -> bool:
  if _MULTIHOST.value or _COORDINATOR.value or (_NUM_PROCESSES.value or 1) > 1:
    return True
  if any(os.environ.get(k) for k in _MULTI_PROCESS_ENV):
    hosts = os.environ.get("TPU_WORKER_HOSTNAMES", "")
    return "," in hosts or not hosts
  return any(int(os.environ.get(k, "1") or 1) > 1 for k in _COUNT_ENV)


class _QuietOrbax(std_logging.Filter):
  """Drops orbax's INFO lines (several per checkpoint); warnings stay."""

  def filter(self, record: std_logging.LogRecord) -> bool:
    return (
      record.levelno >= std_logging.WARNING
      or f"{os.sep}orbax{os.sep}" not in record.pathname
    )


class _DebugBackendProbe(std_logging.Filter):
  """JAX's backend probe ("Unable to initialize backend 'tpu'") at debug
  level: shown with -v 1, not at the top of every run."""

  def filter(self, record: std_logging.LogRecord) -> bool:
    if record.levelno < std_logging.WARNING and record.name.startswith(
      "jax._src.xla_bridge"
    ):
      return logging.get_verbosity() >= logging.DEBUG
    return True


def _fail(message: str) -> None:
  """Ends the run with one line on stderr and exit status 2."""
  print(f"error: {message}", file=sys.stderr, flush=True)
  sys.exit(ERROR_EXIT_CODE)


def default_workdir(config) -> str:
  name = f"{config.task}_{config.attention.variant}_{config.preset}"
  return os.path.join("runs", name + ("_smoke" if config.smoke else ""))


def main(argv):
  if len(argv) > 1:
    _fail(
      f"unexpected arguments: {' '.join(argv[1:])} (flags are "
      "--name=value; see --help)"
    )
  handler = logging.get_absl_handler()
  handler.addFilter(_QuietOrbax())
  handler.addFilter(_DebugBackendProbe())
  config = _CONFIG.value
  try:
    _ = config.task  # loads the file
  except OSError as e:  # ml_collections defers a file it could not load
    lines = [line.strip() for line in str(e).splitlines() if line.strip()]
    _fail(
      f"--config={flags.FLAGS['config'].config_filename}: cannot load "
      f"the config file: {lines[-1]}"
    )
  try:
    validation.check_config(config)  # before any data is generated
  except validation.ConfigError as e:
    _fail(f"--config.{e}" if e.key else str(e))
  if _multi_process():
    if os.environ.get("JAX_PLATFORMS", "") == "cpu":
      # CPU processes need an implementation of cross-process collectives.
      jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(
      _COORDINATOR.value, _NUM_PROCESSES.value, _PROCESS_ID.value
    )
  workdir = _WORKDIR.value or default_workdir(config)
  logging.info(
    "JAX %s: process %d/%d, local devices %s",
    jax.__version__,
    jax.process_index(),
    jax.process_count(),
    jax.local_devices(),
  )
  logging.info(
    "workdir %s (config in %s)", workdir, os.path.join(workdir, "config.json")
  )
  logging.debug("config:\n%s", config)
  try:
    results = training.train_and_evaluate(config, workdir)
  except training.DataError as e:
    _fail(f"data for task {config.task!r}: {e}")
  except training.Preempted as e:
    print(e, file=sys.stderr, flush=True)
    sys.exit(e.exit_code)
  except KeyboardInterrupt:
    # Ctrl-C outside the training steps (data, compilation, the test).
    print(
      "interrupted (SIGINT) outside the training steps; run the same "
      "command again to resume from the latest checkpoint",
      file=sys.stderr,
      flush=True,
    )
    sys.exit(INTERRUPTED_EXIT_CODE)
  if jax.process_index() == 0:
    print(training.summary_line(results), flush=True)


def _root_cause(error: BaseException) -> BaseException:
  """The innermost exception of a chain (ml_collections wraps the error of a
  config file in two more)."""
  seen = set()
  while id(error) not in seen:
    seen.add(id(error))
    inner = error.__cause__ or error.__context__
    if inner is None:
      break
    error = inner
  return error


def _first_line(error: BaseException) -> str:
  detail = error.args[0] if error.args else str(error)
  while isinstance(detail, BaseException):
    detail = detail.args[0] if detail.args else str(detail)
  detail = str(detail).strip()
  if detail[:1] in "'\"" and detail[-1:] == detail[:1]:  # a KeyError's repr
    detail = detail[1:-1]
  return (
    detail.replace("\\n", " ").splitlines()[0]
    if detail
    else type(error).__name__
  )


def parse_flags(argv):
  """absl flag parsing; a mistake ends the run with one `error:` line.

  ml_collections reports a mistake in the config string, or an override of a
  key the config does not have, as a chain of tracebacks; say which flag it
  was, and what is wrong with it, instead.
  """
  try:
    return flags.FLAGS(argv)
  except flags.Error as e:
    match = re.match(r"flag (--\S+): ", str(e))
    cause = _root_cause(e)
    detail = _first_line(cause) if cause is not e else str(e).split("\n")[0]
    if match and not detail.startswith(match.group(1)):
      detail = f"{match.group(1)}: {detail}"
    _fail(f"{detail}")
  except (AttributeError, KeyError) as e:
    overrides = [
      a.split("=", 1)[0] for a in argv[1:] if a.startswith("--config.")
    ]
    detail = e.args[0] if e.args else str(e)
    while isinstance(detail, BaseException) or (
      isinstance(detail, str) and detail[:1] in "'\""
    ):
      detail = (
        detail.args[0] if isinstance(detail, BaseException) else detail[1:-1]
      )
    detail = str(detail).replace("\\n", " ").replace("\n", " ").replace("'", "")
    name = re.split(r"\s", detail.strip())[0].strip("'\"\\")
    culprit = [o for o in overrides if o.endswith("." + name)] or overrides
    _fail(
      f"{', '.join(culprit)}: the config has no such key ({detail}). "
      "The keys are documented in configs/common.py (get_base_config); "
      "an attention's options are the fields of its core in "
      "macformer_jax/layers.py."
    )


if __name__ == "__main__":
  app.run(main, flags_parser=parse_flags)
