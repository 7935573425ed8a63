"""Devices: the only module that knows how steps map onto them.

Two engines, chosen by `train.parallelism`:

* 'sharding' (default): `jax.jit` over a `jax.sharding.Mesh` with axes
  ('data', 'model'). The global batch is a `NamedSharding(mesh, P('data'))`
  array: each host builds its share with
  `jax.make_array_from_process_local_data` from the rows it loaded; the train
  state is replicated (`P()`). XLA inserts the gradient all-reduce. The
  'model' axis has size 1 for now: parameter sharding (FSDP, tensor or
  sequence parallelism) changes `state_sharding` and the batch spec here,
  nothing else.
* 'pmap': `jax.pmap` over the same devices (every host's, so collectives
  span hosts) with axis 'batch', as the original LRA code did; the state is
  broadcast (`in_axes=None`), each device gets [B / devices] rows.

Both engines use the devices `select_devices` picks (ordered by host), feed
each host the same global batch rows, and run the same pure steps, so they
compute the same updates.
"""

from collections.abc import Callable
import functools
from typing import Any

import jax
from jax.sharding import Mesh
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P
import numpy as np

from macformer_jax.training import steps

PARALLELISMS = ("sharding", "pmap")
MESH_AXES = ("data", "model")  # batch over 'data'; 'model' size 1 for now
PMAP_AXIS = "batch"


def select_devices(num_devices: int) -> list[jax.Device]:
  """`num_devices` devices of every host (0 = all), ordered by host, then id.

  Raises:
    ValueError: more devices asked for than a host has.
  """
  local = jax.local_device_count()
  n = local if num_devices == 0 else num_devices
  if not 0 < n <= local:
    raise ValueError(
      f"train.num_devices={num_devices} but this host has "
      f"{local} devices: {jax.local_devices()}"
    )
  by_host: dict[int, list[jax.Device]] = {}
  for d in sorted(jax.devices(), key=lambda d: (d.process_index, d.id)):
    by_host.setdefault(d.process_index, []).append(d)
  return [d for host in sorted(by_host) for d in by_host[host][:n]]


def make_mesh(devices: list[jax.Device], all_devices: bool) -> Mesh:
  """A ('data', 'model') mesh of shape [len(devices), 1].

  With every device of the job, `jax.make_mesh` orders them for the
  interconnect (rings on TPU); a subset keeps the given order.
  """
  shape = (len(devices), 1)
  # Auto axes: XLA propagates shardings from the jit's in/out shardings (the
  # lm1b / big_vision style); Explicit axes would put them in the types.
  auto = (jax.sharding.AxisType.Auto,) * len(MESH_AXES)
  if all_devices:
    return jax.make_mesh(shape, MESH_AXES, axis_types=auto, devices=devices)
  return Mesh(
    np.asarray(devices, dtype=object).reshape(shape), MESH_AXES, axis_types=auto
  )


def _host_rows_of(sharding: NamedSharding, batch_size: int) -> np.ndarray:
  """Global batch rows held by this host's devices, in the order
  `make_array_from_process_local_data` expects them (by position)."""
  index_map = sharding.addressable_devices_indices_map((batch_size,))
  slices = sorted(
    {(s[0].start or 0, s[0].stop or batch_size) for s in index_map.values()}
  )
  return np.concatenate([np.arange(a, b) for a, b in slices])


class Engine:
  """Compiled steps, where they run, and how a host's batch gets there.

  Attributes:
    parallelism: 'sharding' or 'pmap'.
    devices: the devices used, every host's (`select_devices`).
    num_devices: len(devices).
    mesh: the ('data', 'model') mesh over `devices` (both engines; the
      checkpointed state lives on it).
    replicated: NamedSharding of the state (every device holds it all).
    batch_sharding: NamedSharding of a global batch (rows over 'data').
    batch_size: B, the global batch size.
    host_rows: int[B / hosts] rows of each global batch that this host
      loads (`lra_tasks.train_batches(..., rows=host_rows)`).
  """

  def __init__(
    self,
    parallelism: str,
    num_devices: int,
    batch_size: int,
    learning_rate_fn: Callable,
    dual_input: bool,
    compiler_options: dict[str, str] | None = None,
  ):
    """Builds the engine.

    Args:
      parallelism: `train.parallelism`, 'sharding' or 'pmap'.
      num_devices: `train.num_devices`, devices per host (0 = all).
      batch_size: the global batch size B.
      learning_rate_fn: passed to `steps.train_step`.
      dual_input: passed to the steps.
      compiler_options: XLA options for the jitted train and eval steps
        ('sharding' only; `cpu_compiler_options`); None: XLA's defaults.

    Raises:
      ValueError: an unknown parallelism, too many devices, or a batch that
        does not split evenly over the devices.
    """
    if parallelism not in PARALLELISMS:
      raise ValueError(
        f"train.parallelism={parallelism!r}; expected one of "
        f"{', '.join(PARALLELISMS)}"
      )
    self.parallelism = parallelism
    self.devices = select_devices(num_devices)
    self.num_devices = len(self.devices)
    hosts = jax.process_count()
    if batch_size % self.num_devices:
      raise ValueError(
        f"data.batch_size={batch_size} cannot be split evenly over "
        f"{self.num_devices} devices ({hosts} host(s) x "
        f"{self.num_devices // hosts}); use a multiple of "
        f"{self.num_devices}, or fewer devices (train.num_devices)"
      )
    self.batch_size = batch_size
    self.mesh = make_mesh(self.devices, all_devices=num_devices == 0)
    self.replicated = NamedSharding(self.mesh, P())
    self.batch_sharding = NamedSharding(self.mesh, P("data"))
    train = functools.partial(
      steps.train_step, learning_rate_fn=learning_rate_fn, dual_input=dual_input
    )
    evaluate = functools.partial(steps.eval_step, dual_input=dual_input)
    if parallelism == "sharding":
      self._train = jax.jit(
        train,
        in_shardings=(self.replicated, self.batch_sharding),
        out_shardings=(self.replicated, self.replicated),
        donate_argnums=(0,),
        compiler_options=compiler_options,
      )
      self._eval = jax.jit(
        evaluate,
        in_shardings=(self.replicated, self.batch_sharding),
        out_shardings=self.replicated,
        compiler_options=compiler_options,
      )
      self.host_rows = _host_rows_of(self.batch_sharding, batch_size)
    else:
      per_device = batch_size // self.num_devices
      here = jax.process_index()
      self._local = [
        i for i, d in enumerate(self.devices) if d.process_index == here
      ]
      self.host_rows = np.concatenate(
        [np.arange(i * per_device, (i + 1) * per_device) for i in self._local]
      )
      pmap = functools.partial(
        jax.pmap, axis_name=PMAP_AXIS, in_axes=(None, 0), devices=self.devices
      )
      self._train = pmap(
        functools.partial(train, axis_name=PMAP_AXIS),
        out_axes=(None, None),
        donate_argnums=(0,),
      )
      self._eval = pmap(
        functools.partial(evaluate, axis_name=PMAP_AXIS), out_axes=None
      )

  def put_batch(self, batch: dict[str, np.ndarray]) -> dict[str, Any]:
    """This host's rows (`host_rows`) of a global batch, onto the devices.

    Returns:
      'sharding': global [B, ...] arrays sharded over 'data';
      'pmap': [local devices, B / devices, ...] numpy arrays.
    """
    if self.parallelism == "sharding":
      return {
        k: jax.make_array_from_process_local_data(
          self.batch_sharding, v, (self.batch_size,) + v.shape[1:]
        )
        for k, v in batch.items()
      }
    n = len(self._local)
    return {k: v.reshape((n, -1) + v.shape[1:]) for k, v in batch.items()}

  def put_state(self, state: Any) -> Any:
    """`state` replicated on the mesh (a no-op for leaves already there).

    Every host passes the same values; the result is what checkpoints save
    and both engines take.
    """

    def put(x):
      if isinstance(x, jax.Array) and x.sharding.is_equivalent_to(
        self.replicated, x.ndim
      ):
        return x
      if jax.process_count() == 1:
        return jax.device_put(x, self.replicated)
      x = np.asarray(x)
      return jax.make_array_from_process_local_data(self.replicated, x, x.shape)

    return jax.tree.map(put, state)

  def train(
    self, state: Any, batch: dict[str, Any]
  ) -> tuple[Any, dict[str, jax.Array]]:
    """One update: (new state, metric sums over the global batch)."""
    return self._train(state, batch)

  def eval(self, state: Any, batch: dict[str, Any]) -> dict[str, jax.Array]:
    """Metric sums of one global eval batch (`steps.eval_step`)."""
    return self._eval(state, batch)

  def jit_replicated(self, fn: Callable) -> Callable:
    """`jax.jit(fn)` whose outputs are replicated on the mesh (e.g. the
    random-feature redraw, a function of a key only)."""
    return jax.jit(fn, out_shardings=self.replicated)

  @staticmethod
  def to_host(tree: Any) -> Any:
    """numpy copies of replicated (or single-device) arrays."""
    return jax.tree.map(np.asarray, tree)


# XLA:CPU's switch for its YNNPACK fusions: an empty list turns them off.
_YNN_OPTION = "xla_cpu_experimental_ynn_fusion_type"
# Attentions whose step is faster with YNNPACK's large dots (quadratic).
YNNPACK_ATTENTIONS = ("softmax", "exact_kernel")


@functools.cache
def _knows_option(name: str) -> bool:
  """Whether this jaxlib's XLA accepts the compile option `name`."""
  try:
    jax.jit(lambda x: x, compiler_options={name: ""}).lower(0.0).compile()
  except Exception:  # noqa: BLE001 (any refusal: an unknown option)
    return False
  return True


def cpu_compiler_options(setting: str, attention: str) -> dict[str, str]:
  """XLA compile options for the steps from `train.cpu_ynnpack`.

  On CPU, XLA's YNNPACK fusions (on by default in jax 0.10) made the
  training step of the linear-time attentions slower and softmax's faster,
  and their small parallel ops slow down in periods (measurements:
  docs/RMFA_CORE.md "YNNPACK and the training step"). Same maths either
  way, up to float32 round-off.

  Args:
    setting: 'auto' (off unless `attention` is in YNNPACK_ATTENTIONS),
      'on' or 'off'.
    attention: `config.attention.name`, the registered core.

  Returns:
    {} (XLA's default) or the option that turns the fusions off; {} also
    off CPU and where this jaxlib does not know the option.
  """
  off = setting == "off" or (
    setting == "auto" and attention not in YNNPACK_ATTENTIONS
  )
  if not off or jax.default_backend() != "cpu":
    return {}
  return {_YNN_OPTION: ""} if _knows_option(_YNN_OPTION) else {}


def make_engine(
  config: Any, learning_rate_fn: Callable, dual_input: bool
) -> Engine:
  """The Engine of `config.train` (parallelism, num_devices, cpu_ynnpack)
  and the batch."""
  return Engine(
    config.train.parallelism,
    config.train.num_devices,
    config.data.batch_size,
    learning_rate_fn,
    dual_input,
    compiler_options=cpu_compiler_options(
      config.train.cpu_ynnpack, config.attention.name
    ),
  )
