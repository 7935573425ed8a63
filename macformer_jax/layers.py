"""Attention cores as thin Flax modules, one registry, and multi-head attention.

Every core has one contract, so the encoder can take any of them:

  core(q, k, v, *, mask=None, deterministic=True) -> out
  q, k [B, L, H, Dh], v [B, L, H, Dv], mask bool [B, L] (True = real token),
  out [B, L, H, Dv] float32.

Cores are registered by name in `ATTENTIONS`; `attention_class(name, **options)`
turns a config entry into a class (a `functools.partial`) with a clear error
for an unknown name or option. Random features live in the non-trainable
`random_features` collection: `init` needs an rng named `features`, `apply`
does not; they are checkpointed with the rest of the variables and redrawn
by `draw_random_features` with a new key. Each layer draws its own features
(Flax folds the module path into the key); within a layer, RMFA's heads share
one feature map by default (the authors' choice, `share_heads`), Performer's
and RFA's always do.

The attention core runs in float32 whatever the model's compute dtype.
"""

from collections.abc import Callable
import dataclasses
import functools
import math
from typing import Any
import zlib

import flax.linen as nn
import jax
import jax.numpy as jnp

from macformer_jax import attention
from macformer_jax import dropout as dropout_lib
from macformer_jax import exact_attention
from macformer_jax import features
from macformer_jax import kernels
from macformer_jax import normalization
from macformer_jax import spectral
from macformer_jax.registry import Registry

ATTENTIONS = Registry("attention")
FEATURES = "random_features"  # the variable collection of random features


def attention_class(name: str, **options) -> Callable[..., nn.Module]:
  """The core registered as `name`, with `options` bound as its fields.

  Raises:
    ValueError: unknown name (lists the known ones) or an option the core
      does not have (lists its options).
  """
  cls = ATTENTIONS.get(name)
  fields = {
    f.name
    for f in dataclasses.fields(cls)
    if f.init and f.name not in ("parent", "name")
  }
  unknown = sorted(set(options) - fields)
  if unknown:
    raise ValueError(
      f"attention {name!r} has no option(s) {unknown}; its "
      f"options: {', '.join(sorted(fields))}"
    )
  return functools.partial(cls, **options)


def draw_random_features(
  model: nn.Module, key: jax.Array, *args, **kwargs
) -> dict:
  """Draws a fresh `random_features` collection for `model` from `key`.

  Runs `model.init` (cheap under `jax.jit`: the unused parameter
  initialisation is dead code); `args`/`kwargs` are the init inputs.
  Returns {} for a model without random features.
  """
  variables = model.init(
    {"params": key, "features": key, "dropout": key}, *args, **kwargs
  )
  return variables.get(FEATURES, {})


def _feature_variable(module: nn.Module, name: str, draw: Callable, *args):
  """A `random_features` variable drawn from the module's `features` rng."""
  return module.variable(
    FEATURES, name, lambda: draw(module.make_rng("features"), *args)
  ).value


@ATTENTIONS.register("softmax")
class SoftmaxAttention(nn.Module):
  """Exact softmax attention.

  Attributes:
    dropout_rate: dropout on the attention weights (einsum path only).
    causal: prefix attention.
    implementation: 'einsum' (default: fastest on CPU, supports dropout), or
      'xla' / 'cudnn' for `jax.nn.dot_product_attention` ('cudnn' runs in
      bfloat16 on SM80+ GPUs and assumes right-padded masks).
    block_size, batch_block: 'einsum' only: compute the weights
      `block_size` queries of `batch_block` examples at a time, with
      `exact_attention`'s own VJP (equal to the einsum to float32 round-off,
      the same dropout masks); 0, 0: one einsum, autodiff. block_size
      'auto': blocks of 64 queries of one example on CPU when the
      [B, H, L, L] weights exceed 16 MiB (faster there: the blocks stay in
      cache), one einsum otherwise and on accelerators.
  """

  dropout_rate: float = 0.0
  causal: bool = False
  implementation: str = "einsum"
  block_size: int | str = "auto"
  batch_block: int = 1

  def _blocks(self, q) -> tuple:
    """(block_size, batch_block) for `exact_attention.softmax_attention`."""
    if self.block_size != "auto":
      return int(self.block_size), self.batch_block
    b, length, h, _ = q.shape
    if jax.default_backend() == "cpu" and b * h * length * length >= 2**22:
      return 64, self.batch_block
    return 0, 0

  @nn.compact
  def __call__(self, q, k, v, *, mask=None, deterministic=True):
    if self.implementation == "einsum":
      rng = None
      if not deterministic and self.dropout_rate > 0.0:
        rng = self.make_rng("dropout")
      block_size, batch_block = self._blocks(q)
      return exact_attention.softmax_attention(
        q,
        k,
        v,
        mask,
        self.causal,
        dropout_rate=self.dropout_rate,
        dropout_key=rng,
        block_size=block_size,
        batch_block=batch_block,
      )
    if self.implementation not in ("xla", "cudnn"):
      raise ValueError(
        f"unknown softmax implementation "
        f"{self.implementation!r}; known: einsum, xla, cudnn"
      )
    if self.dropout_rate > 0.0 and not deterministic:
      raise ValueError(
        f"implementation={self.implementation!r} has no "
        "attention dropout; set dropout_rate=0 or use 'einsum'"
      )
    dtype = jnp.bfloat16 if self.implementation == "cudnn" else jnp.float32
    q, k, v = (x.astype(dtype) for x in (q, k, v))
    if self.implementation == "cudnn":
      lengths = None if mask is None else jnp.sum(mask, -1).astype(jnp.int32)
      out = jax.nn.dot_product_attention(
        q,
        k,
        v,
        is_causal=self.causal,
        key_value_seq_lengths=lengths,
        implementation="cudnn",
      )
    else:
      m = None if mask is None else mask.astype(bool)[:, None, None, :]
      out = jax.nn.dot_product_attention(
        q, k, v, mask=m, is_causal=self.causal, implementation="xla"
      )
    return out.astype(jnp.float32)


class PostSBN(nn.Module):
  """Learned per-channel output scale: out = gamma * x, gamma [Dh] init 1.

  One gamma per head-dim channel, shared by the heads (the authors' last
  trainable version, 547e87a; docs/METHOD.md §5.2). `power=True` adds the
  authors' optional exponent beta [Dh] (init 1) in a sign-preserving form,
  gamma * sign(x) |x|^beta, which has no NaN for negative x (their
  `torch.pow(x, beta)` does).

  Attributes:
    power: use the sign-preserving power form.
    eps: keeps |x|^beta differentiable at 0 (power form only).
  """

  power: bool = False
  eps: float = 1e-6

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    """x: [..., H, Dh] attention output per head. Returns the same shape."""
    dh = x.shape[-1]
    gamma = self.param("gamma", nn.initializers.ones, (dh,), jnp.float32)
    if self.power:
      beta = self.param("beta", nn.initializers.ones, (dh,), jnp.float32)
      x = jnp.sign(x) * jnp.power(jnp.abs(x) + self.eps, beta)
    return x * gamma


@ATTENTIONS.register("rmfa")
class RMFAttention(nn.Module):
  """Macformer attention: PreSBN -> scale -> RMF -> RMFA -> PostSBN
  (docs/METHOD.md §4-5).

  Attributes:
    kernel: dot-product kernel name (`kernels.get`).
    num_features: M, feature width including the constant feature.
    allocation: 'stratified' (default, lower variance) or 'sampled' (paper).
    projection: 'chained' (default, ~M-1 wide) or 'independent' (K&K).
    max_degree: degree truncation (authors: 20).
    share_heads: one feature map for all heads of the layer (authors), or
      one per head.
    causal: prefix attention (the authors' code; non-causal by default).
    pre_sbn: apply PreSBN to q and k (off = the authors' "transformer"
      ablation without ppSBN).
    post_sbn: apply PostSBN to the output.
    post_sbn_power: PostSBN's optional sign-preserving power form.
    qk_scale: scale of q and k after PreSBN; None = Dh^-1/4 (authors).
    learn_qk_scale: learn the scale as s_max * sigmoid(logit), initialised
      at `qk_scale`, so that |q.k| <= s_max^2 stays inside the kernel's
      radius of convergence (`attention.max_qk_scale`; needs `pre_sbn`).
      A fixed `qk_scale` outside the radius raises ValueError, one where the
      variance grows fast warns (`attention.check_qk_scale`).
    eps, eps_per_key: RMFA's denominator floor (`attention.rmfa`).
    chunk_size: causal chunk length.
    block_size: non-causal: positions whose features are computed at a time
      and recomputed in the backward pass (`attention.macformer_attention`);
      None materialises the features of all positions; 'auto': blocks on
      CPU, materialised on accelerators.
    allocation_seed: numpy seed of 'sampled' degree counts (mixed with the
      module path, so layers differ); the counts are static shapes.
    exact_linear: the constant and linear terms exact, the random features
      all of degree >= 2 (H0/1, `features.sample_rmf`, docs/METHOD.md
      §3.3); needs num_features >= Dh + 2. Off by default.
  """

  kernel: str = "exp"
  num_features: int = 128
  allocation: str = "stratified"
  projection: str = "chained"
  max_degree: int = 20
  share_heads: bool = True
  causal: bool = False
  pre_sbn: bool = True
  post_sbn: bool = True
  post_sbn_power: bool = False
  qk_scale: float | None = None
  learn_qk_scale: bool = False
  eps: float = attention.RMFA_DENOMINATOR_EPS
  eps_per_key: bool = True
  chunk_size: int = 64
  block_size: int | None | str = "auto"
  allocation_seed: int = 0
  exact_linear: bool = False

  def _learned_scale(self, head_dim: int) -> jax.Array:
    """s_max * sigmoid(logit), the logit a parameter (learn_qk_scale)."""
    scale = head_dim**-0.25 if self.qk_scale is None else self.qk_scale
    if not self.pre_sbn:
      raise ValueError(
        "learn_qk_scale bounds |q.k| only on PreSBN'd inputs; set pre_sbn=True"
      )
    s_max = attention.max_qk_scale(self.kernel)
    ratio = min(scale / s_max, 0.9)
    logit = self.param(
      "qk_scale_logit",
      nn.initializers.constant(math.log(ratio / (1.0 - ratio))),
      (),
      jnp.float32,
    )
    return s_max * jax.nn.sigmoid(logit)

  @nn.compact
  def __call__(self, q, k, v, *, mask=None, deterministic=True):
    _, _, h, dh = q.shape
    path_seed = zlib.crc32("/".join(self.scope.path).encode())
    options = dict(
      num_features=self.num_features,
      kernel=self.kernel,
      allocation=self.allocation,
      max_degree=self.max_degree,
      projection=self.projection,
      allocation_seed=(self.allocation_seed + path_seed) % 2**32,
      exact_linear=self.exact_linear,
    )
    # Drawn by `features.sample_rmf`; only its projections are a variable,
    # the static plan and scales are rebuilt from the same options.
    projections = _feature_variable(
      self,
      "projections",
      lambda key: (
        features.sample_rmf(
          key, dh, num_heads=None if self.share_heads else h, **options
        ).projections
      ),
    )
    plan, scales = features.make_plan(**options, in_dim=dh)
    params = features.RMFParams(projections, jnp.asarray(scales), plan)
    # One implementation: the pure one-call function (its fast heads-first
    # path); a fixed qk_scale is checked against the kernel's radius there.
    scale = self._learned_scale(dh) if self.learn_qk_scale else self.qk_scale
    out = attention.macformer_attention(
      params,
      q,
      k,
      v,
      mask,
      self.causal,
      scale,
      pre_sbn=self.pre_sbn,
      eps=self.eps,
      eps_per_key=self.eps_per_key,
      chunk_size=self.chunk_size,
      block_size=self.block_size,
    )
    if self.post_sbn:
      out = PostSBN(power=self.post_sbn_power, name="post_sbn")(out)
    return out


def _feature_cell(
  module: nn.Module,
  component: str,
  weights: str,
  num_features: int,
  q: jax.Array,
  k: jax.Array,
  v: jax.Array,
  mask: jax.Array | None,
  *,
  causal: bool,
  eps: float | None,
  chunk_size: int,
  favor: bool = False,
  block_size: int | None | str = "auto",
) -> jax.Array:
  """The body of every random-feature baseline: one Spectraformer grid cell.

  Draws W [Dh, W] with `spectral.sample_weights` into the module's
  `random_features` collection as `projections` (fastfood_learnable: S, G,
  B in `params` as `fastfood`, Pi as `permutation`), forms the features
  with `spectral.feature_pair` (gerf: A per head in `params` as
  `gerf_logit`) and runs `attention.linear_attention`.

  Args:
    module: the calling module (its variables and rngs).
    component, weights: the cell (`spectral.check_cell`).
    num_features: M.
    q, k: [B, H, L, Dh] heads-first, already scaled.
    v: [B, L, H, Dv]; mask: bool [B, L] or None.
    causal, chunk_size: prefix attention and its chunk length.
    eps: denominator floor; None: 1e-6 (positive components; 1e-30
      causal) or `attention.RMFA_DENOMINATOR_EPS` per visible key (signed).
    favor: FAVOR+'s stabiliser (posrf only, `features.favor_positive`):
      one key max per example over all heads, eps 1e-6 in the features.
    block_size: non-causal posrf (FAVOR+ included): the features of at
      most `block_size` positions at a time, recomputed in the backward
      pass (`attention.positive_linear_attention`: the same values and
      gradients, no [B, H, L, M] array). None: materialise the features.
      'auto': the core's 'auto' (blocks of ~1 MiB of features) on CPU, None
      on accelerators (unmeasured there).

  Returns:
    float32 [B, L, H, Dv].
  """
  spectral.check_cell(component, weights)
  h, dh = q.shape[1], q.shape[-1]
  width = spectral.projection_width(component, num_features)
  if weights == "fastfood_learnable":
    factors = module.param(
      "fastfood",
      lambda key: dict(
        zip("sgb", spectral.sample_fastfood(key, dh, width)[:3], strict=True)
      ),
    )
    perm = _feature_variable(
      module,
      "permutation",
      lambda key: spectral.sample_fastfood(key, dh, width)[3],
    )
    w = spectral.fastfood_matrix(
      factors["s"], factors["g"], factors["b"], perm, dh, width
    )
  else:
    w = _feature_variable(
      module, "projections", spectral.sample_weights, weights, dh, width
    )
  if favor and component != "posrf":
    raise ValueError(f"FAVOR+'s stabiliser is for posrf, not {component!r}")
  if block_size == "auto" and jax.default_backend() != "cpu":
    block_size = None
  if component == "posrf" and not causal and block_size is not None:
    return attention.positive_linear_attention(
      w,
      q,
      k,
      v,
      mask,
      key_max="example" if favor else "head",
      feature_eps=1e-6 if favor else 0.0,
      eps=1e-6 if eps is None else eps,
      block_size=block_size,
    )
  if favor:
    phi_q = features.favor_positive(w, q, is_query=True, causal=causal)
    phi_k = features.favor_positive(
      w,
      k,
      is_query=False,
      causal=causal,
      key_mask=None if mask is None else mask[:, None, :],
    )
  else:
    logit = None
    if component == "gerf":
      logit = module.param(
        "gerf_logit", nn.initializers.zeros, (h,), jnp.float32
      )[:, None, None]
    phi_q, phi_k = spectral.feature_pair(
      component,
      w,
      q,
      k,
      num_features=num_features,
      gerf_logit=logit,
      mask=mask,
      causal=causal,
    )
  signed = component in spectral.SIGNED
  if eps is None:
    eps = (
      attention.RMFA_DENOMINATOR_EPS if signed else 1e-30 if causal else 1e-6
    )
  return attention.linear_attention(
    phi_q,
    phi_k,
    v,
    mask,
    causal,
    eps=eps,
    eps_per_key=signed,
    chunk_size=chunk_size,
    heads_first=True,
    constant=1.0 if component == "rmf" else 0.0,
  )


def _heads_first(x: jax.Array, scale: float) -> jax.Array:
  """[B, L, H, D] -> [B, H, L, D] times `scale`, in the input dtype."""
  return jnp.swapaxes(x, 1, 2) * scale


@ATTENTIONS.register("performer")
class PerformerAttention(nn.Module):
  """Performer FAVOR+: positive (orthogonal) random features of softmax.

  The Spectraformer cell posrf x orf (`orthogonal=False`: posrf x gaussian)
  under its own name and options: the same draw, feature function and
  variables as `SpectralAttention`, with FAVOR+'s stabiliser (one key max
  per example over all heads, eps 1e-6 inside the features;
  `features.favor_positive`). Unlike Performer's JAX code, padded keys are
  masked (after the feature map) and redraws come from an explicit key, not
  from sum(q) (docs/METHOD.md §6).

  Attributes:
    num_features: M.
    orthogonal: orthogonal blocks (FAVOR+) or i.i.d. Gaussian projections.
    causal: prefix attention (chunked).
    chunk_size: causal chunk length.
    block_size: non-causal: positions per block of the blocked core
      (`attention.positive_linear_attention`, the features never stored
      over L); None materialises them; 'auto': blocks on CPU only.
  """

  num_features: int = 128
  orthogonal: bool = True
  causal: bool = False
  chunk_size: int = 64
  block_size: int | None | str = "auto"

  @nn.compact
  def __call__(self, q, k, v, *, mask=None, deterministic=True):
    scale = q.shape[-1] ** -0.25  # exp(q.k / sqrt(Dh)) = exp(q' . k')
    # Positive features: the floor only guards an exact 0. Causal keys are
    # not max-normalised (see favor_positive), so it must be tiny there.
    return _feature_cell(
      self,
      "posrf",
      "orf" if self.orthogonal else "gaussian",
      self.num_features,
      _heads_first(q, scale),
      _heads_first(k, scale),
      v,
      mask,
      causal=self.causal,
      eps=None,
      chunk_size=self.chunk_size,
      favor=True,
      block_size=self.block_size,
    )


@ATTENTIONS.register("rfa")
class RFAAttention(nn.Module):
  """RFA: random Fourier (sin/cos) features of softmax (Peng et al. 2021).

  The Spectraformer cell trigrf x gaussian under its own name (the same
  draw, features and variables as `SpectralAttention`). Signed features, so
  the denominator gets RMFA's per-key floor.

  Attributes:
    num_features: M (M/2 frequencies, each giving a sin and a cos).
    causal: prefix attention (chunked).
    eps: denominator floor per visible key.
    chunk_size: causal chunk length.
  """

  num_features: int = 128
  causal: bool = False
  eps: float = attention.RMFA_DENOMINATOR_EPS
  chunk_size: int = 64

  @nn.compact
  def __call__(self, q, k, v, *, mask=None, deterministic=True):
    scale = q.shape[-1] ** -0.25
    return _feature_cell(
      self,
      "trigrf",
      "gaussian",
      self.num_features,
      _heads_first(q, scale),
      _heads_first(k, scale),
      v,
      mask,
      causal=self.causal,
      eps=self.eps,
      chunk_size=self.chunk_size,
    )


@ATTENTIONS.register("linear")
class LinearAttention(nn.Module):
  """Linear attention with phi = elu + 1 (Katharopoulos et al. 2020)."""

  causal: bool = False
  chunk_size: int = 64

  @nn.compact
  def __call__(self, q, k, v, *, mask=None, deterministic=True):
    phi_q, phi_k = (
      features.elu_plus_one(jnp.swapaxes(x, 1, 2)) for x in (q, k)
    )
    return attention.linear_attention(
      phi_q,
      phi_k,
      v,
      mask,
      self.causal,
      chunk_size=self.chunk_size,
      heads_first=True,
    )


@ATTENTIONS.register("spectral")
class SpectralAttention(nn.Module):
  """One cell of the Spectraformer grid: a component function x weights.

  `spectral.feature_pair(component, W, q, k)` on q, k scaled by Dh^-1/4,
  then `attention.linear_attention`, heads-first, with padded keys masked
  after the feature map (the peer leaves them in the normaliser). One
  projection W per layer, shared by the heads (as Performer's). W lives in
  `random_features` (checkpointed, redrawable); fastfood_learnable keeps its
  S, G, B in `params` (Pi in `random_features`) and gerf its A per head.
  `performer` (posrf x orf) and `rfa` (trigrf x gaussian) are cells of this
  grid under their own names and options.

  Attributes:
    component: trigrf, posrf, oprf, gerf, saderf or rmf (`spectral`).
    weights: gaussian, orf, sorf, qmc, mm, fastfood, fastfood_learnable, or
      rademacher (rmf only).
    num_features: M, the feature width (trigrf: M/2 frequencies; rmf: the
      constant feature included, added analytically).
    causal: prefix attention (chunked); not for oprf and saderf, whose
      parameters are fitted to the whole sequence.
    eps: denominator floor; None: 1e-6 (positive components; 1e-30 causal)
      or `attention.RMFA_DENOMINATOR_EPS` per visible key (signed: trigrf,
      rmf).
    chunk_size: causal chunk length.
    block_size: non-causal posrf: positions per block of the blocked core
      (`attention.positive_linear_attention`); None materialises the
      features; 'auto': blocks on CPU only. Other components ignore it.
  """

  component: str = "posrf"
  weights: str = "orf"
  num_features: int = 128
  causal: bool = False
  eps: float | None = None
  chunk_size: int = 64
  block_size: int | None | str = "auto"

  @nn.compact
  def __call__(self, q, k, v, *, mask=None, deterministic=True):
    scale = q.shape[-1] ** -0.25  # exp(q.k / sqrt(Dh)) = exp(q' . k')
    q, k = (_heads_first(x.astype(jnp.float32), scale) for x in (q, k))
    return _feature_cell(
      self,
      self.component,
      self.weights,
      self.num_features,
      q,
      k,
      v,
      mask,
      causal=self.causal,
      eps=self.eps,
      chunk_size=self.chunk_size,
      block_size=self.block_size,
    )


@ATTENTIONS.register("exact_kernel")
class ExactKernelAttention(nn.Module):
  """What RMFA estimates, computed exactly: PreSBN -> scale -> f -> PostSBN.

  The same pipeline as `RMFAttention` (PreSBN on q and k, the q/k scale s,
  default Dh^-1/4, PostSBN on the output) with the random Maclaurin
  features replaced by the kernel's closed form: weights f(s^2 q.k),
  normalised over the visible keys (`attention.kernelized_attention`,
  O(L^2)). RMFAttention with many features converges to it; it separates
  what the kernel and scale do from what the feature noise does.

  Attributes:
    kernel: dot-product kernel name (`kernels.get`).
    qk_scale: scale of q and k after PreSBN; None = Dh^-1/4 (authors). With
      PreSBN, s^2 must stay under a finite radius of convergence (where the
      closed form is singular).
    pre_sbn: apply PreSBN to q and k.
    post_sbn: apply PostSBN to the output.
    post_sbn_power: PostSBN's optional sign-preserving power form.
    causal: prefix attention.
  """

  kernel: str = "exp"
  qk_scale: float | None = None
  pre_sbn: bool = True
  post_sbn: bool = True
  post_sbn_power: bool = False
  causal: bool = False

  @nn.compact
  def __call__(self, q, k, v, *, mask=None, deterministic=True):
    dh = q.shape[-1]
    scale = dh**-0.25 if self.qk_scale is None else self.qk_scale
    radius = kernels.get(self.kernel).radius
    if self.pre_sbn and scale * scale >= radius:
      raise ValueError(
        f"qk_scale={scale:g} lets |q.k| reach {scale**2:.3g}, "
        f"outside the {self.kernel!r} kernel's radius "
        f"{radius:g}"
      )
    q, k = (x.astype(jnp.float32) for x in (q, k))
    if self.pre_sbn:
      q, k = normalization.pre_sbn(q), normalization.pre_sbn(k)
    out = attention.kernelized_attention(
      q * scale,
      k * scale,
      v.astype(jnp.float32),
      self.kernel,
      mask,
      self.causal,
    )
    if self.post_sbn:
      out = PostSBN(power=self.post_sbn_power, name="post_sbn")(out)
    return out


class Dropout(nn.Module):
  """`nn.Dropout` (its rate and call) with `dropout.keep_mask`'s hashed masks.

  Draws its key from the 'dropout' rng stream, as `nn.Dropout` does.

  Attributes:
    rate: the probability of dropping a value.
  """

  rate: float

  @nn.compact
  def __call__(self, x: jax.Array, deterministic: bool = True) -> jax.Array:
    if deterministic or self.rate <= 0.0:
      return x
    return dropout_lib.dropout(x, self.rate, self.make_rng("dropout"))


def _weight_grad(x: jax.Array, g: jax.Array, n: int) -> jax.Array:
  """dW [*in, *out] = sum over the leading dims of x [..., *in] g [..., *out].

  The products over B*L rows want their contraction in the inner dimension
  of both operands, so XLA's CPU backend copies one operand transposed. JAX
  transposes the output cotangent g: for q, k and v that is three
  [B*L, H*Dh] copies, fused with whatever produced g (the attention core's
  backward pass and its heads-first layout: the slowest ops of the linear
  attentions' step); here x, the input the three projections share, is
  the transposed operand when it is not wider than g (one copy, which XLA
  reuses), g otherwise.
  """
  batch = x.ndim - n
  rows = tuple(range(batch))
  if math.prod(x.shape[batch:]) <= math.prod(g.shape[batch:]):
    return jax.lax.dot_general(x, g, ((rows, rows), ((), ())))
  dw = jax.lax.dot_general(g, x, ((rows, rows), ((), ())))
  out = g.ndim - batch
  return jnp.moveaxis(dw, tuple(range(out)), tuple(range(n, n + out)))


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def _dense(x: jax.Array, w: jax.Array, n: int) -> jax.Array:
  """x [..., *in] . w [*in, *out] over the n `in` dims -> [..., *out]."""
  contract = (tuple(range(x.ndim - n, x.ndim)), tuple(range(n)))
  return jax.lax.dot_general(x, w, (contract, ((), ())))


def _dense_fwd(x, w, n):
  return _dense(x, w, n), (x, w)


def _dense_bwd(n, residuals, g):
  x, w = residuals
  out = tuple(range(x.ndim - n, g.ndim))
  dx = jax.lax.dot_general(g, w, ((out, tuple(range(n, w.ndim))), ((), ())))
  return dx.astype(x.dtype), _weight_grad(x, g, n).astype(w.dtype)


_dense.defvjp(_dense_fwd, _dense_bwd)


def dense_dot_general(
  lhs: jax.Array,
  rhs: jax.Array,
  dimension_numbers: tuple,
  precision: Any = None,
  preferred_element_type: Any = None,
) -> jax.Array:
  """`jax.lax.dot_general` for Flax's Dense layers, with a cheaper VJP.

  The same values and gradients (to float32 round-off); the weight
  gradient transposes the smaller operand (`_weight_grad`). Only a dense
  layer's contraction (the trailing dims of lhs with the leading dims of
  rhs, no batch dims, default precision) takes this path; any other goes
  to `jax.lax.dot_general`.
  """
  (lhs_c, rhs_c), (lhs_b, rhs_b) = dimension_numbers
  n = len(lhs_c)
  if (
    lhs_b
    or rhs_b
    or precision is not None
    or preferred_element_type is not None
    or tuple(lhs_c) != tuple(range(lhs.ndim - n, lhs.ndim))
    or tuple(rhs_c) != tuple(range(n))
  ):
    return jax.lax.dot_general(
      lhs,
      rhs,
      dimension_numbers,
      precision=precision,
      preferred_element_type=preferred_element_type,
    )
  return _dense(lhs, rhs, n)


class MultiHeadSelfAttention(nn.Module):
  """Multi-head self-attention around any registered core.

  q, k, v and output projections are `DenseGeneral` without bias and with
  Xavier-uniform init, as in LRA (docs/METHOD.md §8.2); their weight
  gradients go through `dense_dot_general`.

  Attributes:
    num_heads: H.
    attention_cls: a core class or `functools.partial` (`attention_class`).
    qkv_dim: total q/k/v width over heads (H * Dh); default: input width.
    out_dim: output width; default: input width.
    use_bias: biases on the projections (LRA: False).
    dtype: compute dtype of the projections (the core runs in float32).
  """

  num_heads: int
  attention_cls: Callable[..., nn.Module]
  qkv_dim: int | None = None
  out_dim: int | None = None
  use_bias: bool = False
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(
    self,
    x: jax.Array,
    mask: jax.Array | None = None,
    deterministic: bool = True,
  ) -> jax.Array:
    """x: [B, L, E], mask: [B, L] (True = real token). Returns [B, L, out]."""
    qkv_dim = self.qkv_dim or x.shape[-1]
    if qkv_dim % self.num_heads:
      raise ValueError(
        f"qkv_dim={qkv_dim} is not divisible by num_heads={self.num_heads}"
      )
    dense = functools.partial(
      nn.DenseGeneral,
      features=(self.num_heads, qkv_dim // self.num_heads),
      use_bias=self.use_bias,
      dtype=self.dtype,
      kernel_init=nn.initializers.xavier_uniform(),
      dot_general=dense_dot_general,
    )
    q = dense(name="query")(x)
    k = dense(name="key")(x)
    v = dense(name="value")(x)
    out = self.attention_cls(name="attention")(
      q, k, v, mask=mask, deterministic=deterministic
    )
    return nn.DenseGeneral(
      features=self.out_dim or x.shape[-1],
      axis=(-2, -1),
      use_bias=self.use_bias,
      dtype=self.dtype,
      kernel_init=nn.initializers.xavier_uniform(),
      dot_general=dense_dot_general,
      name="out",
    )(out.astype(self.dtype))
