"""Pure train and eval steps; the same code under jit-sharding and pmap.

A step sees a batch of b examples: the whole global batch under jit (the
batch is a sharded global array and XLA splits the work), or one device's
share under pmap (then `axis_name` names the pmap axis and sums are psummed).

Dropout never depends on the device. Under jit the model draws its masks for
the global batch from `fold_in(key, step)`: with partitionable threefry
(`jax_threefry_partitionable`, on by default) each mask element is a
function of the key and its index in the global array, however the array is
sharded. A pmap device sees only its rows, so there each example i (its
position in the global batch) gets `fold_in(fold_in(key, step), i)` and the
model runs under `vmap` over examples (about 20 % slower on CPU, measured on
the smoke ListOps model, which is why jit does not do the same). Either way
the losses and updates are the same on 1, 2 or N devices and hosts, up to the
order of float summation; the two engines draw different masks.
"""

from collections.abc import Callable
from typing import Any

import jax
from jax import lax
import jax.numpy as jnp
import optax

from macformer_jax import encoder
from macformer_jax import layers

Batch = dict[str, jax.Array]


def _variables(state: Any, params: Any) -> dict[str, Any]:
  variables = {"params": params}
  if state.random_features:
    variables[layers.FEATURES] = state.random_features
  return variables


def _psum(x: Any, axis_name: str | None) -> Any:
  return x if axis_name is None else lax.psum(x, axis_name)


def global_indices(batch_size: int, axis_name: str | None) -> jax.Array:
  """int32[b]: positions of this step's examples in the global batch.

  Under pmap, device d of the axis holds rows [d * b, (d + 1) * b) (the
  engine feeds them so); under jit the batch is the global one.
  """
  first = 0 if axis_name is None else lax.axis_index(axis_name) * batch_size
  return first + jnp.arange(batch_size, dtype=jnp.int32)


def example_keys(
  rng: jax.Array, step: jax.Array, indices: jax.Array
) -> jax.Array:
  """Typed keys [b]: fold_in(fold_in(wrap(rng), step), index) per example.

  Args:
    rng: uint32 key data (TrainState.rng).
    step: the step (int scalar).
    indices: int32[b] positions in the global batch.
  """
  step_key = jax.random.fold_in(jax.random.wrap_key_data(rng), step)
  return jax.vmap(lambda i: jax.random.fold_in(step_key, i))(indices)


def classification_sums(
  logits: jax.Array, targets: jax.Array, weights: jax.Array
) -> dict[str, jax.Array]:
  """Weighted sums of the cross-entropy and of correct predictions.

  Args:
    logits: [B, C] float32.
    targets: [B] int class ids.
    weights: [B] float32, 0 for padded examples.

  Returns:
    {'loss': sum w * CE, 'accuracy': sum w * correct, 'denominator': sum w},
    float32 scalars (divide by the denominator for means).
  """
  ce = optax.softmax_cross_entropy_with_integer_labels(logits, targets)
  correct = (jnp.argmax(logits, -1) == targets).astype(jnp.float32)
  return {
    "loss": jnp.sum(ce * weights),
    "accuracy": jnp.sum(correct * weights),
    "denominator": jnp.sum(weights),
  }


def _logits_with_dropout(
  state: Any, params: Any, inputs: tuple[jax.Array, ...], keys: jax.Array
) -> jax.Array:
  """[b, C] logits, example i run with dropout key keys[i] (vmap)."""
  variables = _variables(state, params)

  def one(key, *example):
    batch_of_one = [x[None] for x in example]
    return state.apply_fn(
      variables, *batch_of_one, deterministic=False, rngs={"dropout": key}
    )[0]

  return jax.vmap(one)(keys, *inputs)


def train_step(
  state: Any,
  batch: Batch,
  *,
  learning_rate_fn: Callable,
  dual_input: bool,
  axis_name: str | None = None,
) -> tuple[Any, dict[str, jax.Array]]:
  """One optimizer update.

  The loss is sum(w * CE) over the step's examples divided by the global
  sum of weights; under pmap the gradients are psummed, so every engine
  computes the update of the whole global batch.

  Args:
    state: the TrainState (replicated).
    batch: {'inputs': [b, L] int32, 'targets': [b] int32, 'weights': [b]
      float32} (+ 'inputs2'); b = B under jit, B / devices under pmap.
    learning_rate_fn: the schedule (for the logged learning rate).
    dual_input: the model takes ('inputs', 'inputs2').
    axis_name: the pmap axis, or None under jit.

  Returns:
    (new state, metrics): sums 'loss', 'accuracy', 'denominator' over the
    global batch, and the 'learning_rate' of this update.
  """
  step = state.step
  weights = batch["weights"].astype(jnp.float32)
  denominator = _psum(jnp.sum(weights), axis_name)
  inputs = encoder.model_inputs(batch, dual_input)
  if axis_name is None:  # the global batch: one key (module docstring)
    step_key = jax.random.fold_in(jax.random.wrap_key_data(state.rng), step)
    forward = lambda params: state.apply_fn(
      _variables(state, params),
      *inputs,
      deterministic=False,
      rngs={"dropout": step_key},
    )
  else:  # a device's rows: a key per example
    keys = example_keys(
      state.rng, step, global_indices(weights.shape[0], axis_name)
    )
    forward = lambda params: _logits_with_dropout(state, params, inputs, keys)

  def loss_fn(params):
    logits = forward(params)
    sums = classification_sums(logits, batch["targets"], weights)
    return sums["loss"] / jnp.maximum(denominator, 1.0), sums

  grads, sums = jax.grad(loss_fn, has_aux=True)(state.params)
  grads = _psum(grads, axis_name)
  new_state = state.apply_gradients(grads=grads)
  metrics = {
    "loss": _psum(sums["loss"], axis_name),
    "accuracy": _psum(sums["accuracy"], axis_name),
    "denominator": denominator,
    "learning_rate": learning_rate_fn(step),
  }
  return new_state, metrics


def eval_step(
  state: Any, batch: Batch, *, dual_input: bool, axis_name: str | None = None
) -> dict[str, jax.Array]:
  """Metric sums of one eval batch (psummed under pmap).

  Args:
    state: the TrainState.
    batch: as in `train_step`; padded examples have weight 0.
    dual_input: the model takes ('inputs', 'inputs2').
    axis_name: the pmap axis, or None.

  Returns:
    {'loss', 'accuracy', 'denominator'} sums (see `classification_sums`) and
    'class_counts': [C] float32, the weight of each target class (for the
    majority-class baseline).
  """
  logits = state.apply_fn(
    _variables(state, state.params),
    *encoder.model_inputs(batch, dual_input),
    deterministic=True,
  )
  weights = batch["weights"].astype(jnp.float32)
  sums = classification_sums(logits, batch["targets"], weights)
  sums["class_counts"] = (
    jnp.zeros(logits.shape[-1], jnp.float32).at[batch["targets"]].add(weights)
  )
  return jax.tree.map(lambda x: _psum(x, axis_name), sums)
