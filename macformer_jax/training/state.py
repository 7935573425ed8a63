"""The train state of a run and its initialisation (named keys, under jit)."""

from typing import Any

from flax.training import train_state
import jax
import numpy as np
import optax

from macformer_jax import encoder
from macformer_jax import layers

RNG_NAMES = ("params", "features", "dropout", "redraw")


class TrainState(train_state.TrainState):
  """Flax TrainState plus the non-trainable state of a run.

  Attributes:
    random_features: the model's `random_features` collection ({} if none).
    rng: uint32 key data of the dropout key; step s draws its masks from
      `fold_in(key, s)` (per example under pmap, `steps`), so they depend
      on neither device nor host.
  """

  random_features: Any = None
  rng: Any = None


def named_keys(seed: int) -> dict[str, jax.Array]:
  """One typed key per name in RNG_NAMES, split from `config.seed`."""
  keys = jax.random.split(jax.random.key(seed), len(RNG_NAMES))
  return dict(zip(RNG_NAMES, keys, strict=True))


def create_train_state(
  config: Any,
  model: Any,
  dual_input: bool,
  tx: optax.GradientTransformation,
  keys: dict[str, jax.Array],
  sharding: jax.sharding.Sharding | None = None,
) -> TrainState:
  """Initialises params, random features and the optimizer, in one jit.

  Args:
    config: the run config (reads `data.max_len`).
    model: the Flax model (`encoder.build_model`).
    dual_input: the model takes ('inputs', 'inputs2').
    tx: the optimizer.
    keys: `named_keys(config.seed)`.
    sharding: where every leaf goes (`Engine.replicated`: on every device of
      every host); None = jit's default device.

  Returns:
    The TrainState at step 0.
  """
  inputs = encoder.init_inputs(1, config.data.max_len, dual_input)

  def init():
    variables = model.init(
      {
        "params": keys["params"],
        "features": keys["features"],
        "dropout": keys["dropout"],
      },
      *inputs,
      deterministic=True,
    )
    return TrainState.create(
      apply_fn=model.apply,
      params=variables["params"],
      tx=tx,
      random_features=variables.get(layers.FEATURES, {}),
      rng=jax.random.key_data(keys["dropout"]),
    )

  return jax.jit(init, out_shardings=sharding)()


def num_params(params: Any) -> int:
  """The number of scalars in a parameter tree."""
  return int(sum(np.prod(x.shape) for x in jax.tree.leaves(params)))
