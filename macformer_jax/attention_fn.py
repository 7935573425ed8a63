"""Drop-in `attention_fn`s for Flax's multi-head attention modules.

`make_attention_fn(key, head_dim)` returns a function that
`flax.linen.MultiHeadDotProductAttention(attention_fn=...)` and
`flax.nnx.MultiHeadAttention(attention_fn=...)` accept unchanged, in place
of their softmax `dot_product_attention`, as Performer's JAX code does with
`make_fast_softmax_attention` (Choromanski et al. 2021):

  fn = make_attention_fn(jax.random.key(0), head_dim=32)
  nnx.MultiHeadAttention(num_heads, in_features, attention_fn=fn, rngs=...)

What it computes: Macformer attention (Guo et al. 2024) in one call,
`attention.macformer_attention`: PreSBN on queries and keys, the scale
`qk_scale` (default Dh^-1/4), random Maclaurin features (Kar & Karnick 2012)
and linear attention, O(L) in time and memory. PostSBN, the learned
per-channel output scale of `layers.RMFAttention`, is left out: right before
the module's output projection W it is absorbed by it
(W (gamma * x) = (W diag(gamma)) x). The baselines, for comparisons in the
same model: `make_performer_attention_fn` (Performer FAVOR+, the
`layers.PerformerAttention` core) and `make_spectral_attention_fn` (one
Spectraformer cell, the `layers.SpectralAttention` core). All three wrap the
library's functions and modules; none re-implements them.

**Masks.** A linear-time attention sums keys once for all queries
(phi(K)^T V), so it can drop a key for every query (key padding) or take
prefixes (causal); an arbitrary [Lq, Lk] pattern needs the L x L weights it
avoids. The Flax mask (bool, broadcastable to [B, H, Lq, Lk], True =
attend) is read as query validity q_i = any_j M_ij, key validity
k_j = any_i M_ij and, if needed, causality. It is honoured exactly when
M = q k^T (key padding; `nn.make_attention_mask(valid, valid)`, or a
[B, 1, 1, L] key mask) or M = q k^T & tril (causal: `nn.make_causal_mask`,
nnx's `is_causal=True`, or the factory's `causal=True`, each combined with
padding by AND): keys with k_j False get no weight, and a query that sees
no key (a padded query) gets 0, as `attention.kernelized_attention` gives
for that mask. Any other mask (e.g. per-head masks, block or sliding-window
patterns) is *not representable*:

* `check_mask=True` (default), concrete mask (eager call, e.g. the first,
  un-jitted `init`): ValueError.
* `check_mask=True`, traced mask (under `jax.jit` / `nnx.jit` the mask's
  values are unknown when the function is traced, so nothing can be raised):
  the check runs inside the computation and sets the outputs of every
  example whose mask is not representable to NaN, so the loss turns NaN
  (`check_mask_structure(mask)` on a concrete mask outside jit gives the
  ValueError with its reason). Causality of a traced mask is detected at
  run time (`jax.lax.cond`, both branches compiled; under `vmap` both run).
* `check_mask=False`: no check; the attention is computed with the key
  padding and query validity above (causal if the mask is exactly a causal
  padding mask), i.e. with the smallest padding mask that contains M: keys
  that M hides from some queries but not all are seen by all of them.

The check costs O(B H Lq Lk) boolean operations, as building the mask did;
a [B, 1, 1, L] key mask keeps it O(L) (non-causal calls).

**Random features** are drawn once, when the factory is called, from its
`key` (Performer's `redraw_features=False`); they are constants of the
compiled model, not Flax variables, so no gradient reaches them and
`model.init` does not draw them. `fn.params` is their pytree
(`features.RMFParams` or a dict of arrays). To redraw, build a new function
from a new key, `fn.redraw(key)`, and put it into the module (nnx:
`model.attn.attention_fn = fn.redraw(key)`, which recompiles; linen: build
the module with it). To checkpoint, store the key (the features are a pure
function of the key and the factory's arguments) or `fn.params` (e.g. with
`flax.serialization.to_state_dict`) and restore with
`fn.with_params(params)`. With `allocation='sampled'` the degree counts (a
static part of `fn.params`) come from the key's data (or
`allocation_seed`): restore from the key, or build the template from the
same key.

**Dropout** arguments (`dropout_rate`, `dropout_rng`, `broadcast_dropout`,
`deterministic`) are accepted and ignored: dropout acts on the attention
weights, which linear attention never materialises (a warning says so when
dropout is requested). `precision` is ignored (the library's matmuls run at
the default precision, in float32); `dtype` is the output dtype (default:
the inputs' promoted dtype). `bias` (additive logits) and `module`
(`sow_weights`) need the weights and raise ValueError.

Shapes: query, key, value [batch..., L, H, Dh] (any number of leading batch
dims); key/value may have fewer heads (nnx's grouped-query attention,
`num_kv_heads`): they are repeated. Self-attention lengths only (Lq = Lk):
`attention.macformer_attention` takes q and k of one shape, so
cross-attention and the autoregressive `decode` cache raise ValueError.
"""

from collections.abc import Callable
from typing import Any
import warnings

import jax
import jax.numpy as jnp
import numpy as np

from macformer_jax import attention
from macformer_jax import features
from macformer_jax import layers
from macformer_jax import spectral

# Core: (params, q, k, v, key_mask [B, L] or None, causal) -> [B, L, H, Dv].
Core = Callable[..., jax.Array]


class MaskError(ValueError):
  """A mask that a linear-time attention cannot honour (see module doc)."""


def _is_concrete(x) -> bool:
  return not isinstance(x, jax.core.Tracer)


def _mask_4d(mask, batch_shape, lq: int, lk: int, xp=jnp):
  """[batch..., H|1, Lq|1, Lk|1] bool -> [B|1, H|1, Lq|1, Lk|1].

  `xp` is numpy for a concrete mask (no device work, no compilation) and
  jax.numpy for a traced one.
  """
  mask = xp.asarray(mask).astype(bool)
  ndim = len(batch_shape) + 3
  if mask.ndim > ndim:
    raise ValueError(
      f"mask of shape {mask.shape} has more dims than "
      f"[batch..., heads, {lq}, {lk}]"
    )
  mask = mask.reshape((1,) * (ndim - mask.ndim) + mask.shape)
  lead = mask.shape[:-3]
  if all(d == 1 for d in lead):
    mask = mask.reshape((1,) + mask.shape[-3:])
  else:
    mask = xp.broadcast_to(mask, tuple(batch_shape) + mask.shape[-3:])
    mask = mask.reshape((-1,) + mask.shape[-3:])
  if mask.shape[-2] not in (1, lq) or mask.shape[-1] not in (1, lk):
    raise ValueError(
      f"mask of shape {mask.shape} does not broadcast to "
      f"[batch..., heads, {lq}, {lk}]"
    )
  return mask


def _structure(mask, length: int, causal: bool, xp=jnp):
  """Reads a [b, h, lq, lk] mask as padding (and causal).

  Returns:
    (query_valid [b, lq], key_valid [b, lk], use_causal, ok [b]):
    use_causal a (possibly traced) bool scalar, or the Python bool `causal`
    when causality is fixed; ok: the mask equals its padding (causal)
    reading for that example.
  """
  tril = xp.tril(xp.ones((length, length), bool))
  if causal:
    mask = mask & tril
  query_valid = xp.any(mask, axis=(1, 3))
  key_valid = xp.any(mask, axis=(1, 2))
  padding = query_valid[:, None, :, None] & key_valid[:, None, None, :]
  if causal:
    padding = padding & tril
  padding_ok = xp.all(mask == padding, axis=(1, 2, 3))
  square = mask.shape[-2] == mask.shape[-1] == length
  if causal or not square or length == 1:
    return query_valid, key_valid, causal, padding_ok
  causal_ok = xp.all(mask == (padding & tril), axis=(1, 2, 3))
  use_causal = xp.all(causal_ok) & ~xp.all(padding_ok)
  ok = xp.where(use_causal, causal_ok, padding_ok)
  return query_valid, key_valid, use_causal, ok


def _mask_error(bad: np.ndarray) -> MaskError:
  examples = np.flatnonzero(bad)[:8].tolist()
  return MaskError(
    f"attention mask of example(s) {examples} is neither key padding nor "
    "causal (nor their AND): linear-time attention sums the keys once for "
    "all queries, so it can only drop a key for every query or take "
    "prefixes; pass a padding ([B, 1, 1, L] or make_attention_mask(valid, "
    "valid)) and/or causal mask, or check_mask=False to attend with the "
    "smallest padding mask that contains it"
  )


def check_mask_structure(mask: jax.Array, causal: bool = False) -> bool:
  """Checks a concrete Flax mask eagerly (outside jit).

  Args:
    mask: bool [batch..., H|1, L|1, L|1] (broadcastable), True = attend.
    causal: the attention is causal anyway (`is_causal` / `causal=True`):
      the mask is read after an AND with the causal mask.

  Returns:
    True if the mask is read as causal, False if as key padding only.

  Raises:
    MaskError (a ValueError): the mask is neither (message says why).
  """
  mask = np.asarray(mask)
  if mask.ndim < 2:
    raise ValueError(f"a mask needs [..., Lq, Lk] dims, got {mask.shape}")
  lq, lk = mask.shape[-2:]
  length = max(lq, lk)
  m = _mask_4d(mask, mask.shape[:-3] or (1,), length, length, np)
  _, _, use_causal, ok = _structure(m, length, causal, np)
  if not ok.all():
    raise _mask_error(~ok)
  return bool(use_causal)


class AttentionFn:
  """A Flax `attention_fn` with fixed random features (see module doc).

  Call it as Flax's `dot_product_attention`: `fn(query, key, value,
  mask=None, ...)` with [batch..., L, H, Dh] arrays; returns
  [batch..., L, H, Dv].

  Attributes:
    name: 'macformer', 'performer' or 'spectral'.
    params: the random features, a pytree (checkpoint it or the key).
    head_dim: Dh the features were drawn for.
    causal: prefix attention always (else only when the call asks).
    check_mask: verify masks (module doc).
    options: the factory arguments (what `redraw` reuses).
  """

  def __init__(
    self,
    name: str,
    params: Any,
    core: Core,
    draw: Callable[[jax.Array], Any],
    head_dim: int,
    *,
    causal: bool,
    check_mask: bool,
    options: dict,
  ):
    self.name = name
    self.params = params
    self.head_dim = head_dim
    self.causal = causal
    self.check_mask = check_mask
    self.options = dict(options)
    self._core = core
    self._draw = draw
    # One compiled program per call signature, also when called eagerly
    # (e.g. inside an un-jitted `init`); inlined under an outer jit.
    self._attend = jax.jit(self._attend_impl, static_argnames="causal")

  def _attend_impl(self, params, q, k, v, key_mask, query_valid, *, causal):
    out = self._core(params, q, k, v, key_mask, causal)
    if query_valid is not None:
      # A query that sees no key gets 0 (kernelized_attention's convention).
      out = jnp.where(query_valid[:, :, None, None], out, 0.0)
    return out

  def __repr__(self):
    opts = ", ".join(f"{k}={v!r}" for k, v in self.options.items())
    return (
      f"AttentionFn({self.name}, head_dim={self.head_dim}, "
      f"causal={self.causal}, check_mask={self.check_mask}, {opts})"
    )

  def with_params(self, params: Any) -> "AttentionFn":
    """The same function with other features (a restored checkpoint)."""
    return AttentionFn(
      self.name,
      params,
      self._core,
      self._draw,
      self.head_dim,
      causal=self.causal,
      check_mask=self.check_mask,
      options=self.options,
    )

  def redraw(self, key: jax.Array) -> "AttentionFn":
    """The same function with features drawn afresh from `key`."""
    return self.with_params(self._draw(key))

  def __call__(
    self,
    query: jax.Array,
    key: jax.Array,
    value: jax.Array,
    bias: jax.Array | None = None,
    mask: jax.Array | None = None,
    broadcast_dropout: bool = True,
    dropout_rng: jax.Array | None = None,
    dropout_rate: float = 0.0,
    deterministic: bool = False,
    dtype: Any = None,
    precision: Any = None,
    module: Any = None,
    is_causal: bool = False,
  ) -> jax.Array:
    """Flax's `dot_product_attention` contract (module doc).

    Args:
      query, key, value: [batch..., L, H, Dh]; key and value may have
        fewer heads (grouped-query attention).
      bias: must be None (an additive bias needs the logits).
      mask: bool, broadcastable to [batch..., H, L, L], True = attend: key
        padding and/or causal (module doc).
      broadcast_dropout, dropout_rng, dropout_rate, deterministic: ignored
        (no attention weights to drop; warns when dropout is requested).
      dtype: output dtype; default the promoted input dtype.
      precision: ignored.
      module: must be None (`sow_weights`: there are no weights to sow).
      is_causal: prefix attention for this call (nnx passes it).

    Returns:
      [batch..., L, H, Dv].
    """
    del broadcast_dropout, dropout_rng, precision
    if bias is not None:
      raise ValueError(
        "attention_fn: an additive `bias` needs the L x L "
        "logits, which linear attention never forms"
      )
    if module is not None:
      raise ValueError(
        "attention_fn: sow_weights needs the attention "
        "weights, which linear attention never forms"
      )
    if dropout_rate > 0.0 and not deterministic:
      warnings.warn(
        f"{self.name} attention_fn ignores dropout_rate={dropout_rate}: "
        "attention dropout acts on the attention weights, which linear "
        "attention never forms",
        stacklevel=2,
      )
    *batch, l, h, dh = query.shape
    if key.shape[-3] != l or value.shape[-3] != l:
      raise ValueError(
        f"attention_fn: query length {l} != key/value length "
        f"{key.shape[-3]}/{value.shape[-3]}: macformer_attention is "
        "self-attention only (no cross-attention, no decode cache)"
      )
    if dh != self.head_dim:
      raise ValueError(
        f"attention_fn: head dim {dh} != head_dim "
        f"{self.head_dim} the features were drawn for"
      )
    out_dtype = dtype or jnp.result_type(query, key, value)
    q, k, v = (x.reshape((-1,) + x.shape[-3:]) for x in (query, key, value))
    if k.shape[-2] != h or v.shape[-2] != h:  # grouped-query attention
      if h % k.shape[-2] or h % v.shape[-2]:
        raise ValueError(
          f"attention_fn: {h} query heads are not a multiple "
          f"of {k.shape[-2]} key / {v.shape[-2]} value heads"
        )
      k = jnp.repeat(k, h // k.shape[-2], axis=-2)
      v = jnp.repeat(v, h // v.shape[-2], axis=-2)
    b = q.shape[0]
    causal = bool(self.causal or is_causal)
    if mask is None:
      out = self._attend(self.params, q, k, v, None, None, causal=causal)
    else:
      concrete = _is_concrete(mask)
      xp = np if concrete else jnp
      m = _mask_4d(mask, batch or [1], l, l, xp)
      query_valid, key_valid, use_causal, ok = _structure(m, l, causal, xp)
      if concrete and self.check_mask and not np.all(ok):
        raise _mask_error(~ok)
      key_mask = xp.broadcast_to(key_valid, (b, l))
      query_valid = xp.broadcast_to(query_valid, (b, l))
      attend = lambda c: self._attend(
        self.params, q, k, v, key_mask, query_valid, causal=c
      )
      if concrete or isinstance(use_causal, bool):
        out = attend(bool(use_causal))
      else:  # traced: decided at run time, both branches compiled
        out = jax.lax.cond(
          use_causal, lambda: attend(True), lambda: attend(False)
        )
      if self.check_mask and not concrete:
        ok = jnp.broadcast_to(ok, (b,))
        out = jnp.where(ok[:, None, None, None], out, jnp.nan)
    return out.reshape(tuple(batch) + out.shape[1:]).astype(out_dtype)


def make_attention_fn(
  key: jax.Array,
  head_dim: int,
  *,
  kernel: str = "exp",
  num_features: int = 128,
  qk_scale: float | None = None,
  causal: bool = False,
  allocation: str = "stratified",
  projection: str = "chained",
  max_degree: int = 20,
  num_heads: int | None = None,
  allocation_seed: int | None = None,
  exact_linear: bool = False,
  pre_sbn: bool = True,
  eps: float = attention.RMFA_DENOMINATOR_EPS,
  eps_per_key: bool = True,
  chunk_size: int = 64,
  check_mask: bool = True,
) -> AttentionFn:
  """Macformer attention (RMFA) as a Flax `attention_fn` (module doc).

  Args:
    key: PRNG key of the random Maclaurin features (drawn now, once).
    head_dim: Dh of the module's heads (qkv_features / num_heads).
    kernel: dot-product kernel (`kernels.get`): exp, inverse, log, sqrt, ...
    num_features: M, the constant feature included.
    qk_scale: scale of q and k after PreSBN; None = Dh^-1/4 (Guo et al.
      2024). Checked against the kernel's radius of convergence now.
    causal: always prefix attention (else per call: `is_causal` or a
      causal mask).
    allocation, projection, max_degree, num_heads, allocation_seed: the
      feature map (`features.sample_rmf`; `num_heads` = one map per head).
    exact_linear: the constant and linear terms exact, the M - 1 - Dh random
      features on degrees >= 2 (docs/METHOD.md §3.3; needs M >= Dh + 2).
    pre_sbn: PreSBN on q and k (off: nothing bounds |q.k|).
    eps, eps_per_key, chunk_size: `attention.rmfa`'s denominator floor and
      causal chunk length.
    check_mask: verify masks (module doc).

  Returns:
    An `AttentionFn` computing `attention.macformer_attention(fn.params, q,
    k, v, key_mask, causal, qk_scale, ...)`.
  """
  if qk_scale is not None and pre_sbn:
    attention.check_qk_scale(qk_scale, kernel)
  options = dict(
    kernel=kernel,
    num_features=num_features,
    qk_scale=qk_scale,
    allocation=allocation,
    projection=projection,
    max_degree=max_degree,
    num_heads=num_heads,
    allocation_seed=allocation_seed,
    exact_linear=exact_linear,
    pre_sbn=pre_sbn,
    eps=eps,
    eps_per_key=eps_per_key,
    chunk_size=chunk_size,
  )

  def draw(k):
    return features.sample_rmf(
      k,
      head_dim,
      num_features,
      kernel,
      allocation,
      max_degree,
      projection=projection,
      num_heads=num_heads,
      allocation_seed=allocation_seed,
      exact_linear=exact_linear,
    )

  def core(params, q, k, v, key_mask, c):
    with warnings.catch_warnings():  # the scale was checked (warned) above
      warnings.simplefilter("ignore", UserWarning)
      return attention.macformer_attention(
        params,
        q,
        k,
        v,
        key_mask,
        c,
        qk_scale,
        pre_sbn=pre_sbn,
        eps=eps,
        eps_per_key=eps_per_key,
        chunk_size=chunk_size,
      )

  return AttentionFn(
    "macformer",
    draw(key),
    core,
    draw,
    head_dim,
    causal=causal,
    check_mask=check_mask,
    options=options,
  )


def _linen_core(cls, **fields) -> Core:
  """A core that applies a `layers` attention module to given features."""

  def core(params, q, k, v, key_mask, c):
    module = cls(causal=c, parent=None, **fields)
    return module.apply({layers.FEATURES: params}, q, k, v, mask=key_mask)

  return core


def make_performer_attention_fn(
  key: jax.Array,
  head_dim: int,
  *,
  num_features: int = 128,
  orthogonal: bool = True,
  causal: bool = False,
  chunk_size: int = 64,
  check_mask: bool = True,
) -> AttentionFn:
  """Performer FAVOR+ (Choromanski et al. 2021) as a Flax `attention_fn`.

  The `layers.PerformerAttention` core on q, k scaled by Dh^-1/4: positive
  (orthogonal) random features of exp(q.k / sqrt(Dh)), padded keys masked
  after the feature map. Same masks, features and dropout rules as
  `make_attention_fn`; `fn.params = {'projections': [Dh, M]}`.
  """
  options = dict(
    num_features=num_features, orthogonal=orthogonal, chunk_size=chunk_size
  )

  def draw(k):  # the draw of `layers.PerformerAttention`: posrf x orf
    weights = "orf" if orthogonal else "gaussian"
    return {
      "projections": spectral.sample_weights(k, weights, head_dim, num_features)
    }

  core = _linen_core(
    layers.PerformerAttention,
    num_features=num_features,
    orthogonal=orthogonal,
    chunk_size=chunk_size,
  )
  return AttentionFn(
    "performer",
    draw(key),
    core,
    draw,
    head_dim,
    causal=causal,
    check_mask=check_mask,
    options=options,
  )


def make_spectral_attention_fn(
  key: jax.Array,
  head_dim: int,
  *,
  component: str = "posrf",
  weights: str = "orf",
  num_features: int = 128,
  causal: bool = False,
  eps: float | None = None,
  chunk_size: int = 64,
  check_mask: bool = True,
) -> AttentionFn:
  """One Spectraformer cell (Nguyen et al. 2024) as a Flax `attention_fn`.

  The `layers.SpectralAttention` core: component function x weight matrix
  (`spectral`), e.g. ('oprf', 'qmc') or ('trigrf', 'sorf'). The cells with
  trainable parameters (component 'gerf', weights 'fastfood_learnable')
  need a module (`layers.SpectralAttention`), not a fixed function; gerf at
  its initialisation is posrf. oprf and saderf have no causal mode.
  `fn.params = {'projections': W [Dh, W]}`.
  """
  spectral.check_cell(component, weights)
  if component == "gerf" or weights == "fastfood_learnable":
    raise ValueError(
      f"the cell ({component!r}, {weights!r}) has trainable "
      "parameters: use layers.SpectralAttention (a module), "
      "or posrf / fastfood for the fixed cell"
    )
  width = spectral.projection_width(component, num_features)
  options = dict(
    component=component,
    weights=weights,
    num_features=num_features,
    eps=eps,
    chunk_size=chunk_size,
  )

  def draw(k):
    return {"projections": spectral.sample_weights(k, weights, head_dim, width)}

  core = _linen_core(
    layers.SpectralAttention,
    component=component,
    weights=weights,
    num_features=num_features,
    eps=eps,
    chunk_size=chunk_size,
  )
  if causal and component in spectral.NOT_CAUSAL:
    raise ValueError(f"component {component!r} has no causal mode")
  return AttentionFn(
    "spectral",
    draw(key),
    core,
    draw,
    head_dim,
    causal=causal,
    check_mask=check_mask,
    options=options,
  )


__all__ = [
  "AttentionFn",
  "MaskError",
  "check_mask_structure",
  "make_attention_fn",
  "make_performer_attention_fn",
  "make_spectral_attention_fn",
]
