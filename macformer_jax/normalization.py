"""ppSBN: pre-post scaling batch normalization (docs/METHOD.md §5).

PreSBN (pure) puts every query and key head vector on the unit sphere after
centring, so that after the Dk^-1/4 scale |q . k| <= Dk^-1/2: inside the
radius of convergence of every kernel, with bounded RMF variance (docs/METHOD.md
§2.2). PostSBN gives the attention output back a learned per-channel scale;
it has a parameter, so it is a Flax module, `layers.PostSBN` (this module
imports no Flax). Despite the name there are no batch statistics.
"""

import jax
import jax.numpy as jnp


def pre_sbn(x: jax.Array, eps: float = 1e-6) -> jax.Array:
  """Centres x over its last axis and scales it to unit L2 norm.

  PreSBN(x) = (x - mean(x)) / sqrt(|x - mean(x)|^2 + eps). The authors also
  divide by the standard deviation first, which the L2 normalisation undoes
  (docs/METHOD.md §5.1); they have no eps in the L2 division, so a constant head
  vector gives NaN. Here a constant vector maps to 0 (and so to a_0 = 1 under
  every kernel: uniform attention), with finite gradients.

  Args:
    x: [..., Dh] (queries or keys after the head split).
    eps: added under the square root.

  Returns:
    [..., Dh], same dtype, zero mean and unit norm (up to eps).
  """
  x32 = x.astype(jnp.float32)
  centred = x32 - jnp.mean(x32, axis=-1, keepdims=True)
  norm_sq = jnp.sum(centred * centred, axis=-1, keepdims=True)
  return (centred * jax.lax.rsqrt(norm_sq + eps)).astype(x.dtype)
