"""Dropout from a counter-based hash: masks cost a few integer ops a value.

`jax.random.bernoulli` draws threefry bits for every activation: about 20
integer rounds per 32-bit word, materialised as a uint32 array the size of
the activation, which on a CPU cost a fifth of the whole training step of
the Macformer ListOps model (and most of softmax attention's, whose dropout
covers the [B, H, L, L] weights). Here the keep mask is a hash of (key,
position): bits = mix(mix(mix(i) ^ k0) ^ k1) for the flat index i of each
element in row-major order and the two words (k0, k1) of the key's data,
where mix is a 32-bit integer finaliser (`_mix`). XLA fuses it into the
op that applies the mask, so no random bits are ever written to memory.

What the threefry masks guaranteed still holds: a mask is a function of the
key and of each element's index in the (global) array, so under jit it does
not depend on how the array is sharded over devices or hosts, and a resumed
run redraws the same masks. A block of a larger mask is the same function
of its global indices (`keep_mask(..., offsets=...)`), which lets a blocked
computation (`exact_attention`) drop exactly the weights the whole einsum
would. The Flax module around `dropout` is `layers.Dropout`.
"""

from collections.abc import Sequence

import jax
from jax import lax
import jax.numpy as jnp
import numpy as np


def _mix(x: jax.Array) -> jax.Array:
  """A bijective 32-bit finaliser with full avalanche (C. Wellons'
  `lowbias32`: bias 0.107, measured by its author)."""
  x = x ^ (x >> 16)
  x = x * jnp.uint32(0x21F0AAAD)
  x = x ^ (x >> 15)
  x = x * jnp.uint32(0xD35A2D97)
  return x ^ (x >> 15)


def _key_words(key: jax.Array) -> tuple:
  """Two uint32 scalars from a typed key or raw uint32 key data."""
  if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
    key = jax.random.key_data(key)
  data = key.reshape(-1).astype(jnp.uint32)
  return data[0], data[-1] ^ jnp.uint32(0x9E3779B9)


def random_bits(
  key: jax.Array,
  shape: Sequence[int],
  offsets: Sequence = (),
  full_shape: Sequence[int] = (),
) -> jax.Array:
  """uint32 `shape`: the hash of each element's flat index and the key.

  Args:
    key: a typed key (any implementation) or its uint32 key data.
    shape: the shape of the bits.
    offsets: the position of this block in a larger array of `full_shape`
      (ints or int scalars, one per dimension); empty: the block is the
      whole array.
    full_shape: the shape of that larger array (default `shape`).

  Returns:
    uint32 array of `shape`; element at index j of a block equals the
    element at index offsets + j of the whole array.

  Raises:
    ValueError: the whole array has 2**32 elements or more (the flat index
      would wrap).
  """
  shape = tuple(int(d) for d in shape)
  full_shape = tuple(int(d) for d in full_shape) or shape
  if len(full_shape) != len(shape):
    raise ValueError(
      f"block shape {shape} and full shape {full_shape} have different ranks"
    )
  if int(np.prod(full_shape, dtype=np.float64)) >= 2**32:
    raise ValueError(
      f"dropout over {full_shape} ({np.prod(full_shape):.3g} "
      "elements): the 32-bit hash index would wrap"
    )
  offsets = tuple(offsets) or (0,) * len(shape)
  strides = np.cumprod((1,) + full_shape[:0:-1])[::-1]
  index = jnp.zeros(shape, jnp.uint32)
  for axis, (stride, offset) in enumerate(zip(strides, offsets, strict=True)):
    position = lax.broadcasted_iota(jnp.uint32, shape, axis)
    position = position + jnp.asarray(offset).astype(jnp.uint32)
    index = index + position * jnp.uint32(stride)
  k0, k1 = _key_words(key)
  return _mix(_mix(_mix(index) ^ k0) ^ k1)


def keep_threshold(rate: float) -> np.uint32:
  """bits < threshold keeps a value with probability 1 - rate (to 2**-32)."""
  return np.uint32(min(round((1.0 - rate) * 2.0**32), 2**32 - 1))


def keep_mask(
  key: jax.Array,
  rate: float,
  shape: Sequence[int],
  offsets: Sequence = (),
  full_shape: Sequence[int] = (),
) -> jax.Array:
  """bool `shape`, True with probability 1 - rate (see `random_bits`)."""
  bits = random_bits(key, shape, offsets, full_shape)
  return bits < keep_threshold(rate)


def dropout(x: jax.Array, rate: float, key: jax.Array) -> jax.Array:
  """Inverted dropout of x: kept values scaled by 1 / (1 - rate)."""
  if rate <= 0.0:
    return x
  if rate >= 1.0:
    return jnp.zeros_like(x)
  keep = keep_mask(key, rate, x.shape)
  return jnp.where(
    keep, x / jnp.asarray(1.0 - rate, x.dtype), jnp.zeros_like(x)
  )
