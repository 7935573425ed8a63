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
`<workdir>/results.json`. Missing or malformed data, like an unknown config
key, end the run with one line on stderr (no traceback). SIGTERM (a
scheduler's preemption notice) checkpoints the step in flight and exits with
status 143 (128 + SIGTERM); rerunning the command resumes there.

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

PREEMPTED_EXIT_CODE = 143  # 128 + SIGTERM, as if the signal had killed it

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Run config: configs/<task>.py:<attention>[,preset=...]"
    "[,smoke].", lock_config=True)
_WORKDIR = flags.DEFINE_string(
    "workdir", None, "Directory for checkpoints, metrics and results.json "
    "(default: runs/<task>_<attention>_<preset>[_smoke]).")
_MULTIHOST = flags.DEFINE_bool(
    "multihost", False, "Join a multi-host job with jax.distributed."
    "initialize(), which detects Cloud TPU slices, SLURM, Open MPI and "
    "Kubernetes by itself (automatic when their environment variables are "
    "set, see _multi_process).")
_COORDINATOR = flags.DEFINE_string(
    "coordinator_address", None, "host:port of process 0 (multi-host "
    "without a cluster manager; also JAX_COORDINATOR_ADDRESS).")
_NUM_PROCESSES = flags.DEFINE_integer(
    "num_processes", None, "Processes in the job (with --coordinator_address).")
_PROCESS_ID = flags.DEFINE_integer(
    "process_id", None, "This process's index, 0..num_processes-1.")
flags.mark_flags_as_required(["config"])

# Environment variables that mean "this process is one of several": then
# `jax.distributed.initialize()` finds the coordinator by itself (Cloud TPU
# pods on GKE, SLURM, Open MPI) or from JAX_COORDINATOR_ADDRESS.
_MULTI_PROCESS_ENV = ("JAX_COORDINATOR_ADDRESS", "TPU_WORKER_HOSTNAMES",
                      "MEGASCALE_COORDINATOR_ADDRESS")
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
    return (record.levelno >= std_logging.WARNING or
            f"{os.sep}orbax{os.sep}" not in record.pathname)


def default_workdir(config) -> str:
  name = f"{config.task}_{config.attention.variant}_{config.preset}"
  return os.path.join("runs", name + ("_smoke" if config.smoke else ""))


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  logging.get_absl_handler().addFilter(_QuietOrbax())
  if _multi_process():
    if os.environ.get("JAX_PLATFORMS", "") == "cpu":
      # CPU processes need an implementation of cross-process collectives.
      jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(_COORDINATOR.value, _NUM_PROCESSES.value,
                               _PROCESS_ID.value)
  config = _CONFIG.value
  workdir = _WORKDIR.value or default_workdir(config)
  logging.info("JAX %s: process %d/%d, local devices %s", jax.__version__,
               jax.process_index(), jax.process_count(), jax.local_devices())
  logging.info("workdir %s, config:\n%s", workdir, config)
  try:
    results = training.train_and_evaluate(config, workdir)
  except training.DataError as e:
    sys.exit(f"error: data for task {config.task!r}: {e}")
  except training.Preempted as e:
    print(e, file=sys.stderr, flush=True)
    sys.exit(PREEMPTED_EXIT_CODE)
  if jax.process_index() == 0:
    print(training.summary_line(results), flush=True)


def parse_flags(argv):
  """absl flag parsing, with one clear line for a bad `--config.<key>`.

  ml_collections reports an override of a key the config does not have as a
  chain of KeyError/AttributeError tracebacks; say which flag it was instead.
  """
  try:
    return flags.FLAGS(argv)
  except (AttributeError, KeyError) as e:
    overrides = [a.split("=", 1)[0] for a in argv[1:]
                 if a.startswith("--config.")]
    detail = e.args[0] if e.args else str(e)
    while isinstance(detail, BaseException) or (
        isinstance(detail, str) and detail[:1] in "'\""):
      detail = (detail.args[0] if isinstance(detail, BaseException)
                else detail[1:-1])
    detail = str(detail).replace("\\n", " ").replace("\n", " ").replace("'", "")
    name = re.split(r"\s", detail.strip())[0].strip("'\"\\")
    culprit = [o for o in overrides if o.endswith("." + name)] or overrides
    sys.exit(f"error: {', '.join(culprit)}: the config has no such key "
             f"({detail}). The keys are documented in configs/common.py "
             "(get_base_config); an attention's options are the fields of "
             "its core in macformer_jax/layers.py.")


if __name__ == "__main__":
  app.run(main, flags_parser=parse_flags)
