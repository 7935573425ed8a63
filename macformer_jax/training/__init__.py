"""The LRA trainer, `train_and_evaluate(config, workdir)`, a module per concern.

  state.py        TrainState, named keys, initialisation under jit
  steps.py        pure train/eval steps, per-example dropout keys
  parallel.py     devices: jit over a ('data', 'model') Mesh, or pmap
  data.py         task sources, offline data through the task registry
  metrics.py      metric means, the train window, writers, progress bar
  checkpoints.py  orbax checkpoints (latest + best-eval)
  preemption.py   SIGTERM: checkpoint at the next step, raise Preempted
  validation.py   config values checked once, before any data (ConfigError)
  loop.py         train_and_evaluate (run: also the state), evaluate,
                  summary_line
  configs         the run configs: configs/ of the repository, as installed

It needs the `[lra]` extra (`pip install 'macformer-jax[lra]'`); without it,
importing this package says so.

Dependencies point one way: this package imports the model modules and
`lra_tasks`; nothing in `macformer_jax` (and nothing in `lra_tasks`) imports
it, so `import macformer_jax.layers` pulls in no orbax, tensorboardX or tqdm.
"""

# First: without the [lra] extra, says which extra to install.
from macformer_jax.training import _extras  # noqa: F401
from macformer_jax.training.data import DataError
from macformer_jax.training.loop import evaluate
from macformer_jax.training.loop import run
from macformer_jax.training.loop import summary_line
from macformer_jax.training.loop import train_and_evaluate
from macformer_jax.training.parallel import cpu_compiler_options
from macformer_jax.training.parallel import Engine
from macformer_jax.training.parallel import make_engine
from macformer_jax.training.preemption import Preempted
from macformer_jax.training.state import create_train_state
from macformer_jax.training.state import named_keys
from macformer_jax.training.state import TrainState
from macformer_jax.training.steps import eval_step
from macformer_jax.training.steps import train_step
from macformer_jax.training.validation import check_config
from macformer_jax.training.validation import ConfigError

__all__ = [
  "ConfigError",
  "DataError",
  "Engine",
  "Preempted",
  "TrainState",
  "check_config",
  "cpu_compiler_options",
  "create_train_state",
  "eval_step",
  "evaluate",
  "make_engine",
  "named_keys",
  "run",
  "summary_line",
  "train_and_evaluate",
  "train_step",
]
