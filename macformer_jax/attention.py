"""Attention as pure functions (no Flax modules): exact references, linear
attention, and Macformer attention in one call.

Layout everywhere: q, k [B, L, H, Dk], v [B, L, H, Dv], feature maps
phi [B, L, H, M], outputs [B, L, H, Dv] (the layout of Flax and of
`jax.nn.dot_product_attention`). `mask` is [B, L], True (or 1) for real
tokens; masked keys get no weight, masked queries still get an output (the
encoder zeroes or ignores it).

* `kernelized_attention`: the exact, quadratic reference
  out_i = sum_j f(q_i . k_j) v_j / sum_j f(q_i . k_j) (docs/METHOD.md §4.1); q
  and k are used as given, so pass them already scaled (Macformer: PreSBN then
  Dk^-1/4).
* `softmax_attention`: exact softmax attention (einsum, with dropout), an
  alias of `exact_attention.softmax_attention`.
* `linear_attention`: phi(Q) (phi(K)^T V) / phi(Q) (phi(K)^T 1), non-causal or
  causal (chunked, O(L) memory).
* `rmfa`: `linear_attention` with the denominator guard that signed random
  Maclaurin features need.
* `macformer_attention`: the one call, q, k, v [B, L, H, Dh] in, output out:
  PreSBN -> scale -> random Maclaurin features -> `rmfa`, on the fast path
  (heads-first features, the constant feature added analytically).
  `layers.RMFAttention` is this function plus PostSBN and its feature state.
"""

import functools
import math
import warnings

import chex
import jax
import jax.numpy as jnp
import numpy as np

from macformer_jax import exact_attention
from macformer_jax import features
from macformer_jax import kernels
from macformer_jax import normalization

# Default lower bound of the RMFA denominator, per visible real key (see rmfa).
RMFA_DENOMINATOR_EPS = 1e-2
# Most positions per block of the non-causal RMFA core on CPU ('auto'): the
# fastest of 512-4096 at L = 2K-16K, B*H = 4 and 64, on the 2-core machine,
# and the least hurt when XLA:CPU's small parallel ops slow down (measured
# in one process, interleaved; docs/RMFA_CORE.md "The two speeds").
DEFAULT_BLOCK_SIZE = 2048
# Feature entries per block of the positive-feature core ('auto'): a
# [B, H, C, M] float32 block of 1 MiB, i.e. C = 512 at B H = 4, M = 128 and
# C = 32 at the training batch B H = 64 (fwd+bwd on the 2-core CPU: C =
# 256-512 best at B H = 4, 16-64 at B H = 64, where 512 was 1.2x slower).
POSITIVE_BLOCK_FEATURES = 2**18


def _as_bool_mask(mask: jax.Array | None, batch: int, length: int):
  if mask is None:
    return None
  chex.assert_shape(mask, (batch, length))
  return mask.astype(bool)


def _visible_keys(
  mask: jax.Array | None, length: int, causal: bool
) -> jax.Array:
  """Which keys each query sees: bool [B or 1, 1, L, L] (query, key)."""
  visible = jnp.ones((1, 1, length, length), bool)
  if mask is not None:
    visible = visible & mask[:, None, None, :]
  if causal:
    visible = visible & jnp.tril(jnp.ones((length, length), bool))
  return visible


def kernelized_attention(
  q: jax.Array,
  k: jax.Array,
  v: jax.Array,
  kernel: str | kernels.Kernel,
  mask: jax.Array | None = None,
  causal: bool = False,
) -> jax.Array:
  """Exact dot-product-kernel attention (the reference RMFA approximates).

  Args:
    q, k: [B, L, H, Dk], already scaled (no 1/sqrt(Dk) is applied here).
    v: [B, L, H, Dv].
    kernel: name or `kernels.Kernel`; f is its exact closed form.
    mask: [B, L] real-token mask; masked keys get weight 0.
    causal: if True, query i sees keys j <= i only.

  Returns:
    [B, L, H, Dv] in the promoted dtype of q and v (float64 stays float64).
    A query with no visible key gets 0.
  """
  chex.assert_rank([q, k, v], 4)
  b, l = q.shape[:2]
  mask = _as_bool_mask(mask, b, l)
  f = kernels.get(kernel).exact
  weights = f(jnp.einsum("bqhd,bkhd->bhqk", q, k))
  visible = _visible_keys(mask, l, causal)
  weights = jnp.where(visible, weights, 0)
  norm = jnp.sum(weights, axis=-1, keepdims=True)
  weights = weights / jnp.where(norm == 0, 1, norm)
  return jnp.einsum("bhqk,bkhd->bqhd", weights, v)


def softmax_attention(
  q: jax.Array,
  k: jax.Array,
  v: jax.Array,
  mask: jax.Array | None = None,
  causal: bool = False,
  *,
  dropout_rate: float = 0.0,
  dropout_rng: jax.Array | None = None,
) -> jax.Array:
  """Exact softmax attention softmax(q k^T / sqrt(Dk)) v: an alias.

  `exact_attention.softmax_attention` (the one implementation, also what
  `layers.SoftmaxAttention` runs) on its one-einsum path, differentiated
  by autodiff; `dropout_rng` is its `dropout_key`. Padded keys get a -1e10
  logit; computed in float32.

  Args:
    q, k: [B, L, H, Dk]; v: [B, L, H, Dv].
    mask: [B, L] real-token mask (keys).
    causal: query i sees keys j <= i only.
    dropout_rate, dropout_rng: dropout on the attention weights (LRA: 0.1,
      an independent mask per weight, `dropout.keep_mask` of the whole
      [B, H, L, L] weights; before, `jax.random.bernoulli`, a different
      stream); no dropout when the rng is None.

  Returns:
    float32 [B, L, H, Dv]; a query with no visible key averages all values.
  """
  return exact_attention.softmax_attention(
    q,
    k,
    v,
    mask,
    causal,
    dropout_rate=dropout_rate,
    dropout_key=dropout_rng,
  )


def _values_with_ones(v: jax.Array, mask: jax.Array | None) -> jax.Array:
  """[B, L, H, Dv] -> [B, H, L, Dv+1]: v with a ones column, masked keys 0.

  The ones column turns the normaliser phi(K)^T 1 into one more output column
  of the same matmuls (one pass instead of two), and masking V' instead of
  phi(K) masks numerator and normaliser at once, after the feature map.
  The transpose to heads-first is on the narrow V, never on the wide phi.
  """
  ones = jnp.ones(v.shape[:-1] + (1,), v.dtype)
  v1 = jnp.concatenate([v, ones], axis=-1)
  if mask is not None:
    v1 = v1 * mask[:, :, None, None].astype(v1.dtype)
  return jnp.swapaxes(v1, 1, 2)


def _linear_noncausal(phi_q, phi_k, v1, constant):
  """Heads-first: phi [B, H, L, M], v1 [B, H, L, E] -> [B, H, L, E]."""
  kv = jnp.einsum("bhlm,bhle->bhme", phi_k, v1)
  out = jnp.einsum("bhlm,bhme->bhle", phi_q, kv)
  if constant:  # an implicit constant feature sqrt(c): adds c * sum_j v1_j.
    out = out + constant * jnp.sum(v1, axis=2, keepdims=True)
  return out


def _exclusive_cumsum(x: jax.Array, axis: int) -> jax.Array:
  """Sum of the entries strictly before each index along `axis`.

  Shift-then-cumsum, not cumsum minus x: the subtraction would leak round-off
  of the current chunk (hence of future positions) into the past.
  """
  widths = [(0, 0)] * x.ndim
  widths[axis] = (1, 0)
  shifted = jax.lax.slice_in_dim(
    jnp.pad(x, widths), 0, x.shape[axis], axis=axis
  )
  return jnp.cumsum(shifted, axis=axis)


def _linear_causal(phi_q, phi_k, v1, constant, chunk_size):
  """Chunked causal linear attention: O(L) memory, no [L, M, Dv] cumsum.

  Within a chunk of C positions the masked quadratic form is used; across
  chunks, the exclusive prefix sum of the per-chunk states phi(K)^T V'
  ([B, H, L/C, M, Dv+1]). Heads-first layout as `_linear_noncausal`.
  """
  b, h, l, m = phi_q.shape
  e = v1.shape[-1]
  c = min(chunk_size, l)
  pad = (-l) % c
  if pad:  # padded tail positions: zero keys, discarded queries.
    widths = ((0, 0), (0, 0), (0, pad), (0, 0))
    phi_q, phi_k, v1 = (jnp.pad(x, widths) for x in (phi_q, phi_k, v1))
  n = (l + pad) // c
  phi_q = phi_q.reshape(b, h, n, c, m)
  phi_k = phi_k.reshape(b, h, n, c, m)
  v1 = v1.reshape(b, h, n, c, e)
  chunk_states = jnp.einsum("bhncm,bhnce->bhnme", phi_k, v1)
  states = _exclusive_cumsum(chunk_states, axis=2)
  out = jnp.einsum("bhncm,bhnme->bhnce", phi_q, states)
  scores = jnp.einsum("bhncm,bhnsm->bhncs", phi_q, phi_k)
  if constant:
    scores = scores + constant
  causal = jnp.tril(jnp.ones((c, c), bool))
  out = out + jnp.einsum(
    "bhncs,bhnse->bhnce", jnp.where(causal, scores, 0.0), v1
  )
  if constant:  # the constant feature's share of the earlier chunks.
    earlier = _exclusive_cumsum(jnp.sum(v1, axis=3), axis=2)
    out = out + constant * earlier[:, :, :, None, :]
  return out.reshape(b, h, n * c, e)[:, :, :l]


def linear_attention(
  phi_q: jax.Array,
  phi_k: jax.Array,
  v: jax.Array,
  mask: jax.Array | None = None,
  causal: bool = False,
  *,
  eps: float = 1e-6,
  eps_per_key: bool = False,
  chunk_size: int = 64,
  heads_first: bool = False,
  constant: float = 0.0,
) -> jax.Array:
  """Linear attention out_i = phi(q_i) S / max(phi(q_i) z, floor).

  S = sum_j phi(k_j) v_j^T and z = sum_j phi(k_j) over the visible real keys
  (all of them, or j <= i when causal).

  Args:
    phi_q, phi_k: [B, L, H, M] feature maps of queries and keys, or
      [B, H, L, M] with `heads_first` (what the feature maps emit when asked:
      the layout of the batched matmuls, so the wide phi is never transposed).
    v: [B, L, H, Dv].
    mask: [B, L] real-token mask. Keys are masked *after* the feature map,
      in numerator and normaliser (phi(0) != 0 for most maps, so zeroing the
      inputs, as LRA's baselines do, would not remove padded keys).
    causal: prefix attention, computed in chunks of `chunk_size` positions
      with O(L M Dv / chunk_size) memory.
    eps: the denominator floor: `eps` itself, or, with `eps_per_key`,
      eps times the number of visible real keys of the query (a scale-aware
      floor for maps that estimate a kernel, see `rmfa`).
    eps_per_key: see `eps`.
    chunk_size: chunk length of the causal computation.
    heads_first: layout of phi_q and phi_k (see above).
    constant: c >= 0, an implicit extra feature sqrt(c) in both maps (RMF's
      exact degree-0 term a_0), computed analytically instead of as a
      column of phi.

  Returns:
    float32 [B, L, H, Dv].
  """
  chex.assert_rank([phi_q, phi_k, v], 4)
  chex.assert_equal_shape([phi_q, phi_k])
  b, l = v.shape[:2]
  chex.assert_axis_dimension(phi_q, 2 if heads_first else 1, l)
  mask = _as_bool_mask(mask, b, l)
  phi_q, phi_k, v = (x.astype(jnp.float32) for x in (phi_q, phi_k, v))
  if not heads_first:
    phi_q, phi_k = jnp.swapaxes(phi_q, 1, 2), jnp.swapaxes(phi_k, 1, 2)
  v1 = _values_with_ones(v, mask)
  if causal:
    out = _linear_causal(phi_q, phi_k, v1, constant, chunk_size)
  else:
    out = _linear_noncausal(phi_q, phi_k, v1, constant)
  return _normalise(out, mask, causal, eps, eps_per_key)


def _normalise(out, mask, causal, eps, eps_per_key):
  """[B, H, L, Dv+1] numerator | denominator -> [B, L, H, Dv], floored."""
  b, _, l, _ = out.shape
  numerator, denominator = out[..., :-1], out[..., -1:]
  floor = eps
  if eps_per_key:
    keys = (
      jnp.ones((b, l), jnp.float32)
      if mask is None
      else mask.astype(jnp.float32)
    )
    visible = (
      jnp.cumsum(keys, axis=1)
      if causal
      else jnp.sum(keys, axis=1, keepdims=True)
    )
    floor = eps * jnp.maximum(visible, 1.0)[:, None, :, None]
  return jnp.swapaxes(numerator / jnp.maximum(denominator, floor), 1, 2)


# ----------------------------------------------------------------------------
# The blocked RMF attention core: features never materialised over L.
# ----------------------------------------------------------------------------
def _blocks(x: jax.Array, size: int, transpose: bool = False) -> jax.Array:
  """[B, H, n*C, D] -> [n, B, H, C, D] (or [n, B, H, D, C]): narrow arrays."""
  b, h, l, d = x.shape
  x = x.reshape(b, h, l // size, size, d)
  return jnp.transpose(x, (2, 0, 1, 4, 3) if transpose else (2, 0, 1, 3, 4))


def _unblock(x: jax.Array) -> jax.Array:
  """[n, B, H, C, D] -> [B, H, n*C, D]."""
  n, b, h, c, d = x.shape
  return jnp.transpose(x, (1, 2, 0, 3, 4)).reshape(b, h, n * c, d)


# Each scan/map over blocks of a non-causal core runs as this many
# independent scans over contiguous runs of blocks (their carries summed);
# for the positive-feature core 2 was a little faster than 1 on CPU.
PARALLEL_CHAINS = 2
# The RMF core's blocks (at most 2048 positions) are all independent up to
# 8 of them (L <= 16K): about as fast as 2 chains when both cores run
# freely, and far less slowed when XLA:CPU's small parallel ops slow down
# (docs/RMFA_CORE.md "Independent blocks").
RMF_PARALLEL_CHAINS = 8


def _chains_scan(f, init, xs, parts):
  """lax.scan of f over xs, as `parts` independent scans over contiguous
  runs of blocks (no data dependence between them, so XLA may run them
  concurrently); the carries are summed, the outputs concatenated. So f's
  carry must be additive (a sum over blocks): the first run starts from
  `init`, the others from zeros."""
  n = jax.tree.leaves(xs)[0].shape[0]
  parts = max(1, min(parts, n))
  if parts == 1:
    return jax.lax.scan(f, init, xs)
  bounds = np.linspace(0, n, parts + 1).astype(int)
  zeros = jax.tree.map(jnp.zeros_like, init)
  carry, outs = None, []
  for lo, hi in zip(bounds[:-1], bounds[1:], strict=True):
    part = jax.tree.map(lambda x, lo=lo, hi=hi: x[lo:hi], xs)
    c, o = jax.lax.scan(f, init if carry is None else zeros, part)
    carry = c if carry is None else jax.tree.map(jnp.add, carry, c)
    outs.append(o)
  if outs[0] is None:
    return carry, None
  return carry, jax.tree.map(lambda *o: jnp.concatenate(o), *outs)


def _chains_map(f, xs, parts):
  """lax.map of f over xs as `parts` independent maps (see `_chains_scan`)."""
  return _chains_scan(lambda c, x: (c, f(x)), (), xs, parts)[1]


def _rmf_block_features(plan, constant, x, projections):
  """[B, H, C, Dk] -> [B, H, C, F]: [1 (if a_0), x, unscaled products p(x)].

  The exact layout `_rmf_linear_blocked` reduces: the constant feature,
  the input itself (the degree-1 features as a bilinear form, see
  `rmf_linear_attention`) and the degree >= 2 products, in one array.
  """
  columns = [x]
  if constant:
    columns.insert(0, jnp.ones(x.shape[:-1] + (1,), x.dtype))
  if plan is not None:
    columns.append(
      features.rmf(
        features.RMFParams(projections, None, plan),
        x,
        constant=False,
        head_axis=1,
        scaled=False,
      )
    )
  return jnp.concatenate(columns, axis=-1)


def _weigh_state(constant, state, linear, weights):
  """S^T [B, H, E, F] over `_rmf_block_features` -> the state queries read.

  Columns: a_0 * (sum_j v1_j), (sum_j v1_j k_j^T) A (A symmetric), and
  s_i^2 * (sum_j v1_j p_i(k_j)): phi(q) . S splits into these three terms.
  """
  dk = linear.shape[-1]
  start = 1 if constant else 0
  head = "" if linear.ndim == 2 else "h"
  parts = [
    jnp.einsum(f"bhed,{head}df->bhef", state[..., start : start + dk], linear)
  ]
  if constant:
    parts.insert(0, constant * state[..., :1])
  if state.shape[-1] > start + dk:
    parts.append(state[..., start + dk :] * weights)
  return jnp.concatenate(parts, axis=-1)


@functools.partial(jax.custom_vjp, nondiff_argnums=(0, 1, 2))
def _rmf_linear_blocked(
  plan, size, constant, xq, xk, v1, projections, weights, linear
):
  """Non-causal RMF linear attention, block by block, recomputed backward.

  Heads-first xq, xk [B, H, L, Dk] (scaled; L a multiple of `size`), v1
  [B, H, L, E] (values, ones column, masked); `plan`, `projections` and
  `weights` (the squared scales s_i^2) the map of the degree >= 2 features
  (or None), `linear` [(H,) Dk, Dk] the degree-1 features' matrix A and
  `constant` a_0 (`features.split_linear`). Returns the unnormalised
  phi(q_i) . sum_j phi(k_j) v1_j^T, [B, H, L, E].

  The block features F = [1, x, p(x)] of `size` positions are computed,
  consumed by the matmuls while they are in cache, and dropped: no
  [B, H, L, M] array exists in the forward or the backward pass (the
  backward recomputes them, Performer-style cheap FLOPs for memory
  traffic), so the temp memory is O(L (Dk + E) + M E) instead of O(L M).
  The weights never touch the wide products: phi(q) . S = F(q) . T(S) with
  S^T = sum_j v1_j F(k_j)^T and T applying a_0, A and s^2 to the [E, F]
  state once (`_weigh_state`). The reductions over positions run as
  V'^T F ([E, C] @ [C, F]), the layout the matmul wants. `projections`,
  `weights` and `linear` are constants: their cotangents are zero
  (`rmf_linear_attention` stops their gradient, so that this is exact,
  not an omission).
  """
  return _rmf_linear_blocked_fwd(
    plan, size, constant, xq, xk, v1, projections, weights, linear
  )[0]


def _rmf_linear_blocked_fwd(
  plan, size, constant, xq, xk, v1, projections, weights, linear
):
  feats = functools.partial(
    _rmf_block_features, plan, constant, projections=projections
  )

  def add_keys(state, block):
    xk_c, v1t_c = block
    return state + jnp.einsum("bhec,bhcm->bhem", v1t_c, feats(xk_c)), None

  b, h, _, e = v1.shape
  width = (
    (1 if constant else 0)
    + xq.shape[-1]
    + (0 if plan is None else weights.shape[-1])
  )
  state = jnp.zeros((b, h, e, width), jnp.float32)
  parts = RMF_PARALLEL_CHAINS
  state, _ = _chains_scan(
    add_keys, state, (_blocks(xk, size), _blocks(v1, size, True)), parts
  )
  state = _weigh_state(constant, state, linear, weights)
  out = _chains_map(
    lambda xq_c: jnp.einsum("bhcm,bhem->bhce", feats(xq_c), state),
    _blocks(xq, size),
    parts,
  )
  return _unblock(out), (xq, xk, v1, projections, weights, linear, state)


def _rmf_linear_blocked_bwd(plan, size, constant, residuals, g):
  xq, xk, v1, projections, weights, linear, state = residuals

  def feats_vjp(x):  # the map's parameters are constants (see above)
    f, vjp = jax.vjp(
      lambda x: _rmf_block_features(plan, constant, x, projections), x
    )
    return f, lambda d: vjp(d)[0]

  def queries(d_state, block):  # dS^T += g^T F(q); dq via dF(q) = g T(S)
    xq_c, g_c, gt_c = block
    f_q, vjp = feats_vjp(xq_c)
    d_state = d_state + jnp.einsum("bhec,bhcm->bhem", gt_c, f_q)
    return d_state, vjp(jnp.einsum("bhce,bhem->bhcm", g_c, state))

  parts = RMF_PARALLEL_CHAINS
  d_state, dxq = _chains_scan(
    queries,
    jnp.zeros_like(state),
    (_blocks(xq, size), _blocks(g, size), _blocks(g, size, True)),
    parts,
  )
  d_state = _weigh_state(constant, d_state, linear, weights)  # T is linear

  def keys(block):  # dv1 = F(k) dS; dk via dF(k) = v1 dS^T
    xk_c, v1_c = block
    f_k, vjp = feats_vjp(xk_c)
    dv = jnp.einsum("bhcm,bhem->bhce", f_k, d_state)
    return vjp(jnp.einsum("bhce,bhem->bhcm", v1_c, d_state)), dv

  dxk, dv1 = _chains_map(keys, (_blocks(xk, size), _blocks(v1, size)), parts)
  zeros = lambda x: None if x is None else jnp.zeros_like(x)
  return (
    _unblock(dxq),
    _unblock(dxk),
    _unblock(dv1),
    zeros(projections),
    zeros(weights),
    jnp.zeros_like(linear),
  )


_rmf_linear_blocked.defvjp(_rmf_linear_blocked_fwd, _rmf_linear_blocked_bwd)


def auto_block_size(length: int, most: int = DEFAULT_BLOCK_SIZE) -> int:
  """Equal blocks of at most `most` positions covering `length`.

  One block when length <= most; else ceil(length / most) blocks of a
  multiple of 8 positions, so the zero padding stays below 8 per block
  (e.g. L = 3000 -> 2 blocks of 1504, not 2048 real positions then 952 real
  and 1096 padded ones).
  """
  n = -(-length // most)
  return min(most, length, 8 * -(-length // (8 * n)))


def rmf_linear_attention(
  params: features.RMFParams,
  q: jax.Array,
  k: jax.Array,
  v1: jax.Array,
  block_size: int = DEFAULT_BLOCK_SIZE,
) -> jax.Array:
  """Non-causal RMF attention numerator and denominator, blocked.

  phi(q_i) . sum_j phi(k_j) v1_j^T splits by degree (docs/METHOD.md §4.3):
  the constant a_0 sum_j v1_j, the degree-1 features as the bilinear form
  q_i^T A (sum_j k_j v1_j^T) with A [Dk, Dk] (`features.split_linear`: the
  same random estimate, through Dk columns instead of C_1 ~ (M-1)/2
  feature columns; A = a_1 I for a map with an exact linear term,
  docs/METHOD.md §3.3), and the features of degree >= 2; all three in one
  blocked pass (`_rmf_linear_blocked`).

  Args:
    params: from `features.sample_rmf`.
    q, k: heads-first [B, H, L, Dk], scaled.
    v1: [B, H, L, Dv+1], `_values_with_ones` (masked keys zero).
    block_size: positions per block (the last block is zero-padded).

  Returns:
    float32 [B, H, L, Dv+1]: equal to `_linear_noncausal` on
    `features.rmf(params, ., constant=False)` with constant a_0, to float32
    round-off, without materialising the features.
  """
  q, k, v1 = (x.astype(jnp.float32) for x in (q, k, v1))
  # The map's parameters are fixed random draws, constants here (so the
  # backward pass skips their gradients; block_size=None differentiates
  # them).
  linear, rest = features.split_linear(jax.lax.stop_gradient(params))
  plan, projections, weights = (
    (None, None, None)
    if rest is None
    else (rest.plan, rest.projections, rest.scales**2)
  )
  l = q.shape[2]
  size = min(block_size, l)
  pad = (-l) % size
  if pad:  # padded keys have v1 = 0; padded queries are dropped
    widths = ((0, 0), (0, 0), (0, pad), (0, 0))
    q, k, v1 = (jnp.pad(x, widths) for x in (q, k, v1))
  out = _rmf_linear_blocked(
    plan, size, params.plan.sqrt_a0**2, q, k, v1, projections, weights, linear
  )
  return out[:, :, :l]


# ----------------------------------------------------------------------------
# The blocked positive-feature core (FAVOR+ and the posrf cells): the same
# design as the RMF core above, for exp features with a data-dependent shift.
# ----------------------------------------------------------------------------
def _positive_logits(x: jax.Array, w: jax.Array) -> jax.Array:
  """[B, H, C, Dk] @ [Dk, M] -> u = w . x - |x|^2 / 2, [B, H, C, M].

  The exponent of the positive map at A = 0 (`features.gerf_features`,
  whose a |w|^2 and log-terms vanish there), in its order of operations.
  """
  return x @ w - 0.5 * jnp.sum(x * x, -1, keepdims=True)


def _query_exp(x: jax.Array, w: jax.Array) -> jax.Array:
  """exp(u - max_m u): the query features before eps and 1/sqrt(M)."""
  u = _positive_logits(x, w)
  return jnp.exp(u - jnp.max(u, -1, keepdims=True))


def _key_exp(x, w, keys, shift):
  """exp(u - c) for real keys, 0 for the others (`keys` False)."""
  return jnp.exp(jnp.where(keys, _positive_logits(x, w) - shift, -jnp.inf))


def _plus(f: jax.Array, eps: float) -> jax.Array:
  """f + eps, no op for eps = 0 (the posrf cells)."""
  return f + eps if eps else f


def _defined(c: jax.Array) -> jax.Array:
  """A running max over no key yet (-inf) reads as the shift 0."""
  return jnp.where(jnp.isfinite(c), c, 0.0)


def _rescaled(states):
  """Sums (c_i, S_i), each S_i relative to its own max c_i, relative to
  c = max_i c_i: S = sum_i exp(c_i - c) S_i (a part with no real key yet,
  c_i = -inf, has S_i = 0 and counts 0)."""
  c = functools.reduce(jnp.maximum, [c_i for c_i, _ in states])
  total = 0.0
  for c_i, s_i in states:
    total = total + s_i * jnp.where(jnp.isfinite(c), jnp.exp(c_i - c), 0.0)
  return c, total


@functools.partial(jax.custom_vjp, nondiff_argnums=(0, 1, 2))
def _positive_linear_blocked(size, per_head, eps, xq, xk, v1, keys, w):
  """Non-causal positive-feature linear attention, block by block.

  Heads-first xq, xk [B, H, L, Dk] (scaled), v1 [B, H, L, E] (values and
  ones column), keys bool [B, 1, L, 1] (real keys), w [Dk, M], in blocks of
  `size` positions and a shorter last one (`_over_blocks`). Returns the
  unnormalised phi(q_i) . sum_j keys_j phi(k_j) v1_j^T [B, H, L, E] for
  the stabilised positive features of `features.gerf_features` at A = 0
  (Choromanski et al. 2021, FAVOR+):

    phi(q) = (exp(u_q - max_m u_q) + eps) / sqrt(M),
    phi(k) = (exp(u_k - c) + eps) / sqrt(M),  u = w . x - |x|^2 / 2,

  c the max of u_k over the real keys of each example and head
  (`per_head`) or of each example, all heads together (FAVOR+'s), 0 if
  there is none. Both shifts are constants for the gradients (the stopped
  gradient of `gerf_features`).

  The keys are read once in the forward pass: one scan over key blocks
  carries the running max and the state relative to it, rescaling the state
  by exp(c_old - c_new) when a block raises the max (the online-softmax
  recurrence, Milakov & Gimelshein 2018), so c needs no pass of its own.
  The [B, H, C, M] features of a block are made and consumed while in
  cache and never stored: the backward pass recomputes them from the
  residuals q, k, v1, w, c and the [B, H, E, M] state, so the temp memory
  is O(L (Dk + E) + M E) instead of O(L M). The cotangent of w is computed
  only when w is differentiated (a learned projection, e.g. Fastfood's);
  that of `keys` is zero.
  """
  return _positive_linear_blocked_fwd(
    size, per_head, eps, *(_Primal(x) for x in (xq, xk, v1, keys, w))
  )[0]


class _Primal:
  """The undifferentiated call's stand-in for `CustomVJPPrimal`."""

  def __init__(self, value):
    self.value, self.perturbed = value, False


def _over_blocks(f, init, arrays, size):
  """f(carry, blocks) over the blocks of `size` positions of `arrays`
  ([B, H, L, D], sliced along L) without a blocked copy: each block is a
  dynamic slice read inside the loop. The full blocks run as
  `PARALLEL_CHAINS` scans over contiguous runs, each from `init`; the last,
  shorter block (L no multiple of `size`) as one more call. Returns the
  final carries (one per scan and the last block; the caller combines
  them) and f's outputs [B, H, L, D'] (or None)."""
  n, tail = divmod(arrays[0].shape[2], size)

  def blocks(start, width):
    return [jax.lax.dynamic_slice_in_dim(x, start, width, 2) for x in arrays]

  carries, outs = [], []
  bounds = np.linspace(0, n, max(1, min(PARALLEL_CHAINS, n)) + 1).astype(int)
  for lo, hi in zip(bounds[:-1], bounds[1:], strict=True):
    if hi > lo:
      carry, out = jax.lax.scan(
        lambda c, i: f(c, blocks(i * size, size)), init, jnp.arange(lo, hi)
      )
      carries.append(carry)
      outs.append(None if out is None else jax.tree.map(_unblock, out))
  if tail:
    carry, out = f(init, blocks(n * size, tail))
    carries.append(carry)
    outs.append(out)
  if outs[0] is None:
    return carries, None
  return carries, jax.tree.map(lambda *o: jnp.concatenate(o, 2), *outs)


def _summed(carries):
  return functools.reduce(lambda a, b: jax.tree.map(jnp.add, a, b), carries)


def _positive_linear_blocked_fwd(size, per_head, eps, xq, xk, v1, keys, w):
  grad_w = w.perturbed
  xq, xk, v1, keys, w = (x.value for x in (xq, xk, v1, keys, w))
  b, h, _, e = v1.shape
  m = w.shape[-1]
  axes = (2, 3) if per_head else (1, 2, 3)

  def add_keys(carry, block):  # (c, S^T) -> the same with one more block
    c, state = carry
    xk_c, v1_c, keys_c = block
    u = jnp.where(keys_c, _positive_logits(xk_c, w), -jnp.inf)
    c_new = jnp.maximum(c, jnp.max(u, axis=axes, keepdims=True))
    state = state * jnp.where(jnp.isfinite(c_new), jnp.exp(c - c_new), 1.0)
    f = jnp.exp(u - _defined(c_new))
    return (c_new, state + jnp.einsum("bhce,bhcm->bhem", v1_c, f)), None

  init = (
    jnp.full((b, h if per_head else 1, 1, 1), -jnp.inf, jnp.float32),
    jnp.zeros((b, h, e, m), jnp.float32),
  )
  carries, _ = _over_blocks(add_keys, init, (xk, v1, keys), size)
  c, state = _rescaled(carries)
  c = _defined(c)
  if eps:  # the eps of every real key's features: eps sum_j v1_j, all m
    real = jnp.sum(v1 * keys, axis=2)[..., None]
    state = state + eps * real
  state = state / m  # the two 1/sqrt(M)

  def read(carry, block):
    f = _plus(_query_exp(block[0], w), eps)
    return carry, jnp.einsum("bhcm,bhem->bhce", f, state)

  _, out = _over_blocks(read, (), (xq,), size)
  residuals = (xq, xk, v1, keys, w, c, state, ((),) if grad_w else ())
  return out, residuals


def _positive_linear_blocked_bwd(size, per_head, eps, residuals, g):
  xq, xk, v1, keys, w, c, state, grad_w = residuals
  if isinstance(g, jax.custom_derivatives.SymbolicZero):
    g = jnp.zeros_like(v1)
  dw0 = jnp.zeros_like(w) if grad_w else ()
  # du @ [w^T | 1] gives du w^T and sum_m du in one matmul (the column of
  # ones: measured 2x faster than the matmul and a separate row sum on CPU).
  dk = w.shape[0]
  w_ones = jnp.concatenate([w.T, jnp.ones((w.shape[1], 1), w.dtype)], 1)

  def through_logits(x, du, dw):  # d/du -> d/dx (and d/dw)
    r = du @ w_ones
    dx = r[..., :dk] - x * r[..., dk:]
    if grad_w:
      dw = dw + jnp.einsum("bhcd,bhcm->dm", x, du)
    return dx, dw

  def queries(carry, block):  # dS^T += g^T phi(q); dq via dphi(q) = g S
    d_state, dw = carry
    xq_c, g_c = block
    f = _query_exp(xq_c, w)
    d_state = d_state + jnp.einsum("bhce,bhcm->bhem", g_c, _plus(f, eps))
    du = jnp.einsum("bhce,bhem->bhcm", g_c, state) * f
    dx, dw = through_logits(xq_c, du, dw)
    return (d_state, dw), dx

  carries, dxq = _over_blocks(
    queries, (jnp.zeros_like(state), dw0), (xq, g), size
  )
  d_state, dw = _summed(carries)
  d_state = d_state / w.shape[-1]

  def keys_(dw, block):  # dv1 = keys phi(k) dS; dk via dphi(k) = v1 dS^T
    xk_c, v1_c, keys_c = block
    f = _key_exp(xk_c, w, keys_c, c)
    dv = jnp.einsum("bhcm,bhem->bhce", _plus(f, eps), d_state) * keys_c
    du = jnp.einsum("bhce,bhem->bhcm", v1_c, d_state) * f
    dx, dw = through_logits(xk_c, du, dw)
    return dw, (dx, dv)

  carries, (dxk, dv1) = _over_blocks(keys_, dw0, (xk, v1, keys), size)
  dw = jax.tree.map(jnp.add, dw, _summed(carries))
  return (dxq, dxk, dv1, None, dw if grad_w else None)


_positive_linear_blocked.defvjp(
  _positive_linear_blocked_fwd,
  _positive_linear_blocked_bwd,
  symbolic_zeros=True,
)


def positive_linear_attention(
  w: jax.Array,
  q: jax.Array,
  k: jax.Array,
  v: jax.Array,
  mask: jax.Array | None = None,
  *,
  key_max: str = "example",
  feature_eps: float = 0.0,
  eps: float = 1e-6,
  block_size: int | str = "auto",
) -> jax.Array:
  """Non-causal attention with stabilised positive random features, blocked.

  Equal, in values and in the gradients w.r.t. q, k, v and w (to float32
  round-off), to `linear_attention(phi_q, phi_k, v, mask, eps=eps,
  heads_first=True)` on the features phi_q = `features.gerf_features(w, q,
  0.0, stabilize='query', eps=feature_eps)` and phi_k =
  `features.gerf_features(w, k, 0.0, stabilize='key', key_mask=mask,
  key_max=key_max, eps=feature_eps)`: FAVOR+ (`features.favor_positive`,
  key_max='example', feature_eps=1e-6; Choromanski et al. 2021) and the
  Spectraformer posrf cells (key_max='head', feature_eps=0), without ever
  forming the [B, H, L, M] features (`_positive_linear_blocked`).

  Args:
    w: [Dk, M] projections (`spectral.sample_weights`).
    q, k: heads-first [B, H, L, Dk], already scaled (Dk^-1/4 for softmax).
    v: [B, L, H, Dv].
    mask: [B, L] real-token mask: padded keys get no weight and cannot set
      the key max.
    key_max: 'example' (one max over all heads) or 'head'.
    feature_eps: added to the stabilised exp features (FAVOR+: 1e-6).
    eps: the denominator floor (`linear_attention`).
    block_size: positions per block C (the last block is shorter if L
      is no multiple of C; no padding); 'auto': B H C M <=
      `POSITIVE_BLOCK_FEATURES`, 8 <= C <= `DEFAULT_BLOCK_SIZE`.

  Returns:
    float32 [B, L, H, Dv].
  """
  chex.assert_rank([w, q, k, v], [2, 4, 4, 4])
  chex.assert_equal_shape([q, k])
  if key_max not in ("head", "example"):
    raise ValueError(f"key_max must be 'head' or 'example', got {key_max!r}")
  b, l = v.shape[:2]
  chex.assert_axis_dimension(q, 2, l)
  mask = _as_bool_mask(mask, b, l)
  q, k, w = (x.astype(jnp.float32) for x in (q, k, w))
  v1 = _values_with_ones(v.astype(jnp.float32), mask)
  keys = jnp.ones((b, l), bool) if mask is None else mask
  keys = keys[:, None, :, None]
  if block_size == "auto":
    block_size = POSITIVE_BLOCK_FEATURES // (b * q.shape[1] * w.shape[1])
    block_size = min(max(block_size, 8), DEFAULT_BLOCK_SIZE)
  out = _positive_linear_blocked(
    min(block_size, l), key_max == "head", float(feature_eps), q, k, v1, keys, w
  )
  return _normalise(out, mask, False, eps, False)


def rmfa(
  phi_q: jax.Array,
  phi_k: jax.Array,
  v: jax.Array,
  mask: jax.Array | None = None,
  causal: bool = False,
  *,
  eps: float = RMFA_DENOMINATOR_EPS,
  eps_per_key: bool = True,
  chunk_size: int = 64,
  heads_first: bool = False,
  constant: float = 0.0,
) -> jax.Array:
  """Random Maclaurin feature attention (Macformer's RMFA, docs/METHOD.md §4).

  `linear_attention` on RMF features (`features.rmf`). Non-causal by default:
  the authors' code uses a causal prefix sum in an encoder, which docs/METHOD.md
  §4.1 records as a bug; `causal=True` reproduces it, with O(L) memory.

  The denominator phi(q_i) . sum_j phi(k_j) estimates sum_j f(q_i . k_j) > 0,
  but RMF features are signed (Rademacher products), so the estimate can be
  near zero or negative. We clamp it at `eps` times the number n_i of visible
  real keys (default 1e-2). On PreSBN'd, Dk^-1/4-scaled inputs the exact
  value is n_i times a mean kernel value of at least min_t f(t) over
  |t| <= Dk^-1/2 (0.83 for every kernel at Dk = 32, 0.77 at Dk = 16;
  docs/METHOD.md §1), so the floor never moves a sane estimate and is
  independent of L. The floor only bounds |out_i| by |numerator_i| / (eps n_i).
  That is about 1.2 / eps = 120x max |v| while the numerator estimate stays near
  sum_j f(q_i . k_j) v_j with f <= 1.22 (PreSBN on, Dk = 32). It is no bound in
  general: without PreSBN, f(q . k) and the RMF variance are unbounded (the
  inverse, log and sqrt series even diverge for |q . k| >= 1; docs/METHOD.md
  §2.2), and so is the output. The authors clamp at an absolute 1.0
  (`eps=1.0, eps_per_key=False`), which does nothing at long L and is too
  large for short ones.

  Args:
    phi_q, phi_k: [B, L, H, M] RMF features of the scaled queries and keys.
    v: [B, L, H, Dv].
    mask: [B, L] real-token mask (keys masked after the feature map).
    causal: prefix attention (chunked).
    eps, eps_per_key: the denominator floor (see above).
    chunk_size: causal chunk length.
    heads_first, constant: as in `linear_attention`; the fast path
      (`macformer_attention`) passes heads-first features from
      `features.rmf(..., constant=False, head_axis=1)` and constant=a_0.

  Returns:
    float32 [B, L, H, Dv].
  """
  return linear_attention(
    phi_q,
    phi_k,
    v,
    mask,
    causal,
    eps=eps,
    eps_per_key=eps_per_key,
    chunk_size=chunk_size,
    heads_first=heads_first,
    constant=constant,
  )


def max_qk_scale(kernel: str | kernels.Kernel) -> float:
  """Largest q/k scale s with a well-behaved RMF estimate (PreSBN'd inputs).

  After PreSBN |q| = |k| = 1, so the scaled inputs have |q . k| <= s^2.
  Finite radius r: s^2 <= 0.4 r keeps t inside the radius, the degree-20
  truncation tail (the `sampled` plan) below 1e-8 and the RMF second-moment
  series sum_n a_n^2 / P(n) Q^n, Q <= 3 s^4, P(n) ~ 2^-(n+1), convergent
  (docs/METHOD.md §2.2). The stratified plan truncates earlier (degree 7 at M =
  128), and its dropped tail sum_{n>7} a_n t^n at |t| = 0.4 is 1.1e-3 for the
  inverse kernel (1.3e-4 log, 1.3e-5 sqrt, 1.7e-8 exp). Entire kernels
  (exp, trigh, polynomial): s^2 <= 1, beyond which the variance grows fast.
  `layers.RMFAttention(learn_qk_scale=True)` learns s below this cap.
  """
  radius = kernels.get(kernel).radius
  return math.sqrt(0.4 * radius) if math.isfinite(radius) else 1.0


def check_qk_scale(qk_scale, kernel: str | kernels.Kernel) -> None:
  """Rejects a fixed scale whose |q . k| <= s^2 leaves the series' radius.

  For PreSBN'd inputs. A traced (learned) scale is not checked: the module
  keeps it below `max_qk_scale` by construction.

  Raises:
    ValueError: s^2 >= the kernel's finite radius of convergence (the series
      and its RMF estimate diverge), or s is not finite.

  Warns:
    UserWarning: s > `max_qk_scale(kernel)`: inside the radius, but the
      estimate's variance grows fast (for exp-type kernels, s^2 > 1).
  """
  try:
    s = float(qk_scale)
  except TypeError:  # a tracer (jax.errors.ConcretizationTypeError)
    return
  k = kernels.get(kernel)
  if not math.isfinite(s):
    raise ValueError(f"qk_scale must be finite, got {s}")
  if math.isfinite(k.radius) and s * s >= k.radius:
    raise ValueError(
      f"qk_scale={s:g} lets |q.k| reach s^2={s * s:.3g} on PreSBN'd "
      f"inputs: outside the radius of convergence {k.radius:g} of the "
      f"{k.name!r} kernel (or on it), where its Maclaurin series and the "
      f"random features' estimate diverge; use qk_scale < "
      f"{math.sqrt(k.radius):g} "
      f"(well-behaved up to {max_qk_scale(k):.3g}; default Dh^-1/4), or "
      "learn it (RMFAttention(learn_qk_scale=True))"
    )
  if s > max_qk_scale(k):
    warnings.warn(
      f"qk_scale={s:g} lets |q.k| reach {s * s:.3g} for the {k.name!r} "
      f"kernel: above s={max_qk_scale(k):.3g} the variance of the random "
      "Maclaurin estimate grows fast (see attention.max_qk_scale); expect "
      "noisy attention",
      stacklevel=3,
    )


def macformer_attention(
  params: features.RMFParams,
  q: jax.Array,
  k: jax.Array,
  v: jax.Array,
  mask: jax.Array | None = None,
  causal: bool = False,
  qk_scale=None,
  *,
  pre_sbn: bool = True,
  eps: float = RMFA_DENOMINATOR_EPS,
  eps_per_key: bool = True,
  chunk_size: int = 64,
  block_size: int | None | str = "auto",
) -> jax.Array:
  """Macformer attention in one call: PreSBN -> scale -> RMF -> RMFA.

  Equal to `rmfa(rmf(params, pre_sbn(q) * s), rmf(params, pre_sbn(k) * s),
  v, mask, causal)` (a test checks it), computed on the fast path: q and k
  go heads-first ([B, H, L, Dh], a transpose of the narrow inputs, never of
  the wide features), the features skip the constant column, and `rmfa`
  adds a_0 analytically. This is what `layers.RMFAttention` runs (the
  module adds PostSBN and keeps `params` as checkpointed state).

  Args:
    params: a feature map from `features.sample_rmf(key, Dh, M, kernel,
      ...)`, shared by the heads or per head (`num_heads=H`); its options
      travel with it, e.g. `exact_linear=True` (the constant and linear
      terms exact, docs/METHOD.md §3.3: the blocked core's matrix A is then
      a_1 I and its product columns all have degree >= 2).
    q, k: [B, L, H, Dh], any float dtype (computed in float32).
    v: [B, L, H, Dv].
    mask: [B, L] real-token mask (True = real); padded keys get no weight.
    causal: prefix attention (chunked, O(L) memory); default bidirectional.
    qk_scale: s, the scale of q and k after PreSBN (so |q . k| <= s^2);
      None = Dh^-1/4 (the authors'). A Python number is checked against
      the kernel's radius of convergence (`check_qk_scale`: ValueError
      outside it, a warning where the variance grows fast); a traced value
      (a learned scale) is used as is.
    pre_sbn: apply PreSBN to q and k (off: the authors' ablation without
      ppSBN; then nothing bounds |q . k|, see `rmfa`).
    eps, eps_per_key: the denominator floor (`rmfa`).
    chunk_size: causal chunk length.
    block_size: non-causal: the features of `block_size` positions at a
      time are computed and consumed while in cache, never stored for all
      L, and recomputed in the backward pass (`rmf_linear_attention`: a
      custom VJP; same values and q/k/v gradients, less time and temp
      memory at long L on CPU, docs/BENCHMARKS.md "Time against error").
      None: materialise the features of all positions and let autodiff
      keep them. 'auto' (default): on CPU `auto_block_size(L)` (equal
      blocks of at most `DEFAULT_BLOCK_SIZE` positions), None on
      accelerators (where the serial blocks are unmeasured so far).

  Returns:
    float32 [B, L, H, Dv].
  """
  chex.assert_rank([q, k, v], 4)
  chex.assert_equal_shape([q, k])
  dh = q.shape[-1]
  if qk_scale is None:
    qk_scale = dh**-0.25
  elif pre_sbn:
    check_qk_scale(qk_scale, params.plan.kernel)
  q, k = (jnp.swapaxes(x.astype(jnp.float32), 1, 2) for x in (q, k))
  if pre_sbn:
    q, k = normalization.pre_sbn(q), normalization.pre_sbn(k)
  q, k = q * qk_scale, k * qk_scale
  if block_size == "auto":
    block_size = (
      auto_block_size(q.shape[2]) if jax.default_backend() == "cpu" else None
    )
  if not causal and block_size is not None:
    b, l = v.shape[:2]
    mask = _as_bool_mask(mask, b, l)
    v1 = _values_with_ones(v.astype(jnp.float32), mask)
    out = rmf_linear_attention(params, q, k, v1, block_size)
    return _normalise(out, mask, False, eps, eps_per_key)
  phi_q, phi_k = (
    features.rmf(params, x, constant=False, head_axis=1) for x in (q, k)
  )
  return rmfa(
    phi_q,
    phi_k,
    v,
    mask,
    causal,
    eps=eps,
    eps_per_key=eps_per_key,
    chunk_size=chunk_size,
    heads_first=True,
    constant=params.plan.sqrt_a0**2,
  )
