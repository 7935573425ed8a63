"""Every config key the trainer reads, attention presets, config strings.

A run config is built in three layers (vit_jax style composition):

  1. `get_base_config()`: every key, with its one-line documentation below.
     This is the only place keys are defined; the config is locked, so a
     misspelt override (`--config.model.emb_dm=64`) fails at flag parsing.
  2. `configs/<task>.py:get_config(arg)`: task facts and the LRA repo's base
     hyperparameters for that task (preset `lra`), or the Macformer authors'
     small model (preset `macformer`, `apply_macformer_preset`).
  3. The config-string argument picks the attention (`ATTENTION_PRESETS`),
     the size preset and the offline `smoke` setting (`parse_arg`).

Config strings (`--config=configs/<task>.py:<arg>`):

  <attention>[,preset=lra|macformer][,smoke]

  attention: softmax, macformer_exp, macformer_inverse, macformer_log,
    macformer_trigh, macformer_sqrt, performer, rfa, linear
    (default: macformer_exp), and every Spectraformer grid cell
    spectra_<component>_<weights> (`SPECTRA_PRESETS`, e.g.
    spectra_oprf_fastfoodl, spectra_posrf_orf, spectra_rmf_rademacher).
  preset=lra (default): the original LRA repo's base config for the task
    (docs/METHOD.md §8.3), so results compare with the LRA paper's Table 1.
  preset=macformer: the Macformer authors' model (docs/METHOD.md §8.3):
    2 layers, 2x32 heads, emb 64, MLP 128, 128 features, AdamW + one-cycle,
    value clipping 1.
  smoke: a run that finishes in minutes on a laptop CPU: small model, small
    offline data for every task (see `apply_smoke`), 1000 steps. Its numbers
    are a sanity check, not an LRA result.

When `data.data_dir` is unset and `data.offline` is set, the trainer writes
the task's offline data under `<workdir>/data` with
`lra_tasks.get_task(task).generate(dir, seed=seed, **data.offline)`: ListOps
from LRA's generator (always, LRA-sized without `smoke`), and with `smoke`
synthetic Text, Retrieval, Image and Pathfinder data in the real formats
(results.json says which). Otherwise Text and Image read TFDS's default data
dir, and Retrieval and Pathfinder need `data.data_dir`.

Every key is defined, with a one-line meaning, in `get_base_config()`; a test
(tests/configs_test.py) checks that the code reads each of them.
"""

import dataclasses
import difflib
from typing import Any

from ml_collections import config_dict

from macformer_jax import layers
from macformer_jax import spectral

# name -> (registered attention core, options). Options not listed keep the
# core's defaults (macformer_jax/layers.py), and every option of the core is
# a config key under `attention.options`, so it can be overridden.
ATTENTION_PRESETS: dict[str, tuple[str, dict[str, Any]]] = {
  "softmax": ("softmax", {}),
  "macformer_exp": ("rmfa", {"kernel": "exp", "num_features": 128}),
  "macformer_inverse": ("rmfa", {"kernel": "inverse", "num_features": 128}),
  "macformer_log": ("rmfa", {"kernel": "log", "num_features": 128}),
  "macformer_trigh": ("rmfa", {"kernel": "trigh", "num_features": 128}),
  "macformer_sqrt": ("rmfa", {"kernel": "sqrt", "num_features": 128}),
  "performer": ("performer", {"num_features": 128}),
  "rfa": ("rfa", {"num_features": 128}),
  "linear": ("linear", {}),
}
# The q/k scale docs/TEMPERATURE.md recommends per kernel. Provenance: the
# `recommendation` of docs/temperature.json (the study's rule applied to its
# 57 runs; tests/configs_test.py checks that these equal it, without importing
# benchmarks). `macformer_<kernel>` keeps the authors' Dh^-1/4;
# `macformer_<kernel>_tuned` uses this fixed scale.
TUNED_QK_SCALE = {"exp": 0.7, "inverse": 0.6, "log": 0.6, "sqrt": 0.6}
ATTENTION_PRESETS.update(
  {
    f"macformer_{kernel}_tuned": (
      "rmfa",
      {"kernel": kernel, "num_features": 128, "qk_scale": scale},
    )
    for kernel, scale in TUNED_QK_SCALE.items()
  }
)
# The exact exp kernel RMFA estimates, no random features (the diagnostic of
# docs/DIAGNOSTIC.md), at the authors' and the tuned scale.
ATTENTION_PRESETS.update(
  {
    "macformer_exp_exact": ("exact_kernel", {"kernel": "exp"}),
    "macformer_exp_exact_tuned": (
      "exact_kernel",
      {"kernel": "exp", "qk_scale": TUNED_QK_SCALE["exp"]},
    ),
  }
)
# The Spectraformer grid (docs/METHOD.md §7): one preset per (component,
# weights) cell of the `spectral` core, named as the peer's rows (OPRF-FastFoodL
# -> spectra_oprf_fastfoodl; gaus = iid Gaussian).
SPECTRA_WEIGHT_NAMES = {"gaussian": "gaus", "fastfood_learnable": "fastfoodl"}
SPECTRA_PRESETS: dict[str, tuple[str, dict[str, Any]]] = {
  f"spectra_{c}_{SPECTRA_WEIGHT_NAMES.get(w, w)}": (
    "spectral",
    {"component": c, "weights": w, "num_features": 128},
  )
  for c, w in spectral.grid()
}
ATTENTION_PRESETS.update(SPECTRA_PRESETS)
DEFAULT_ATTENTION = "macformer_exp"
PRESETS = ("lra", "macformer")
DEFAULT_PRESET = "lra"

# Core options that are not config keys of `attention.options`:
# `dropout_rate` comes from `model.attention_dropout_rate`.
_OPTIONS_FROM_MODEL = ("dropout_rate",)


def get_base_config() -> config_dict.ConfigDict:
  """Every key of a run config, with the LRA ListOps values as defaults.

  Returns:
    A locked ConfigDict; task configs set values, never add keys.
  """
  c = config_dict.ConfigDict()
  c.seed = 0  # the one seed: init/feature/dropout/redraw keys, data order
  c.task = config_dict.placeholder(str)  # lra_tasks name (listops, text, ...)
  c.preset = DEFAULT_PRESET  # size preset, 'lra' or 'macformer' (reported)
  c.smoke = False  # True for the offline smoke setting (reported)

  c.model = config_dict.ConfigDict()
  c.model.emb_dim = 512  # E, token embedding width
  c.model.num_heads = 8  # H
  c.model.num_layers = 4  # number of (untied) encoder blocks
  c.model.qkv_dim = 512  # total q/k/v width over heads; Dh = qkv_dim / H
  c.model.mlp_dim = 1024  # MLP hidden width; also the head's hidden width
  c.model.dropout_rate = 0.1  # embeddings, after attention, in the MLP
  c.model.attention_dropout_rate = 0.1  # attention weights (softmax only)
  c.model.pos_emb = "sinusoidal"  # 'sinusoidal' | 'learned' | 'none'
  c.model.embed_init_std = 1.0  # token embedding init std (LRA 1, authors .02)
  c.model.pooling = "CLS"  # 'CLS' (learned token) | 'MEAN' (real tokens)
  c.model.qkv_bias = False  # biases on q/k/v/out projections (authors: True)
  c.model.head_hidden_layers = 1  # head Dense+ReLU layers: mlp_dim, /2, ...
  c.model.dtype = "float32"  # compute dtype: 'float32' | 'bfloat16'

  c.attention = config_dict.ConfigDict()
  c.attention.variant = DEFAULT_ATTENTION  # preset name (reported)
  c.attention.name = "rmfa"  # registered core (macformer_jax.layers)
  c.attention.options = config_dict.ConfigDict()  # core fields (layers.py)
  c.attention.redraw_every = 0  # redraw random features every N steps; 0 never

  c.data = config_dict.ConfigDict()
  c.data.data_dir = config_dict.placeholder(str)  # None: generate / TFDS dir
  c.data.max_len = 2000  # L: inputs are truncated / padded to this length
  c.data.batch_size = 32  # global batch size (split over devices)
  c.data.options = config_dict.ConfigDict()  # lra_tasks.<task>.load options
  # With data_dir unset and `offline` set, the trainer generates the data
  # with `lra_tasks.get_task(task).generate(dir, seed=seed, **offline)`;
  # task configs fill both sub-dicts.
  c.data.offline = config_dict.ConfigDict()  # the task's generate() args

  c.optimizer = config_dict.ConfigDict()
  c.optimizer.schedule = "lra"  # 'lra' (factor product) | 'one_cycle'
  c.optimizer.learning_rate = 0.05  # lra: the 'constant'; one_cycle: peak lr
  c.optimizer.factors = "constant * linear_warmup * rsqrt_decay"  # lra only
  c.optimizer.warmup_steps = 1000  # lra warmup / one_cycle rising phase
  c.optimizer.steps_per_cycle = 100000  # lra 'cosine_decay' cycle length
  c.optimizer.decay_factor = 0.5  # lra 'decay_every' factor
  c.optimizer.steps_per_decay = 20000  # lra 'decay_every' period
  c.optimizer.div_factor = 25.0  # one_cycle: initial lr = peak / div_factor
  c.optimizer.final_div_factor = 1e4  # one_cycle: final = initial / this
  c.optimizer.b1 = 0.9  # Adam beta1 (one_cycle: its maximum, 0.95)
  c.optimizer.b1_min = 0.85  # one_cycle: beta1 at the lr peak (cycled)
  c.optimizer.b2 = 0.98  # Adam beta2
  c.optimizer.eps = 1e-9  # Adam epsilon
  c.optimizer.weight_decay = 0.1  # decoupled decay, scaled by lr (AdamW)
  c.optimizer.grad_clip_value = 0.0  # clip each gradient entry; 0 = off
  c.optimizer.grad_clip_norm = 0.0  # clip the global gradient norm; 0 = off

  c.train = config_dict.ConfigDict()
  c.train.num_train_steps = 5000  # optimizer updates
  c.train.eval_frequency = 50  # evaluate on the val split every N steps
  c.train.num_eval_batches = -1  # val batches per evaluation; -1 = all
  c.train.checkpoint_every = 1000  # checkpoint every N steps (and at the end)
  c.train.keep_checkpoints = 2  # latest checkpoints kept (+ the best-eval one)
  c.train.log_every = 50  # train-metric logging interval (and NaN check)
  c.train.num_devices = 0  # devices used per host; 0 = all of them
  c.train.parallelism = "sharding"  # 'sharding' (jit over a Mesh) | 'pmap'
  # XLA:CPU's YNNPACK fusions in the jitted steps ('sharding' on CPU only):
  # 'auto' = off for the linear-time attentions, on for softmax/exact_kernel
  # (faster each way on CPU, docs/RMFA_CORE.md); 'on' | 'off' force it.
  c.train.cpu_ynnpack = "auto"
  c.lock()
  return c


def core_options(core: str) -> dict[str, Any]:
  """Default options (dataclass fields) of a registered attention core."""
  cls = layers.ATTENTIONS.get(core)
  return {
    f.name: f.default
    for f in dataclasses.fields(cls)
    if f.init
    and f.name not in ("parent", "name")
    and f.name not in _OPTIONS_FROM_MODEL
    and f.default is not dataclasses.MISSING
  }


def with_attention(
  config: config_dict.ConfigDict, variant: str
) -> config_dict.ConfigDict:
  """Sets `config.attention` from `ATTENTION_PRESETS[variant]`.

  Every option of the core becomes a key of `attention.options` (None-valued
  options become float placeholders), so `--config.attention.options.X=...`
  can override any of them.

  Raises:
    ValueError: unknown variant (lists the known ones).
  """
  if variant not in ATTENTION_PRESETS:
    raise ValueError(
      f"unknown attention {variant!r}; known: {', '.join(ATTENTION_PRESETS)}"
    )
  core, preset_options = ATTENTION_PRESETS[variant]
  options = core_options(core)
  options.update(preset_options)
  option_dict = config_dict.ConfigDict()
  for key, value in options.items():
    option_dict[key] = (
      config_dict.placeholder(float) if value is None else value
    )
  with config.unlocked():
    config.attention.variant = variant
    config.attention.name = core
    config.attention.options = option_dict
  config.attention.options.lock()
  return config


def apply_macformer_preset(
  config: config_dict.ConfigDict,
  *,
  max_len: int,
  batch_size: int,
  learning_rate: float,
  warmup_steps: int,
  num_train_steps: int,
  eval_frequency: int,
  num_eval_batches: int,
) -> config_dict.ConfigDict:
  """The Macformer authors' small model and optimiser (docs/METHOD.md §8.3).

  2 layers, 2 heads x 32, emb 64, MLP 128, learned positions N(0, .02), token
  embedding N(0, .02), biases in the attention projections, MEAN pooling,
  head Dense(128) -> ReLU -> Dense(C) (also for Retrieval), dropout 0.1,
  AdamW(b2 .999, eps 1e-6, no decay) with PyTorch's OneCycleLR (linear,
  beta1 cycled .95 -> .85 -> .95), gradient value clipping 1.0. Only the
  per-task values are arguments.

  Differences from the authors' PyTorch code: float32 (they use fp16
  autocast), LayerNorm eps 1e-6 (PyTorch 1e-5), mask-aware MEAN pooling
  (they divide by L with padded positions zeroed), evaluation on the whole
  val split unless `num_eval_batches` limits it, and the whole test split
  (they drop the last partial batch).
  """
  config.preset = "macformer"
  m = config.model
  m.emb_dim, m.num_heads, m.qkv_dim, m.mlp_dim, m.num_layers = 64, 2, 64, 128, 2
  m.dropout_rate = 0.1
  m.attention_dropout_rate = 0.1
  m.pos_emb = "learned"
  m.embed_init_std = 0.02
  m.pooling = "MEAN"
  m.qkv_bias = True
  m.head_hidden_layers = 1
  if "num_features" in config.attention.options:
    config.attention.options.num_features = 128
  config.data.max_len = max_len
  config.data.batch_size = batch_size
  o = config.optimizer
  o.schedule = "one_cycle"
  o.learning_rate = learning_rate
  o.warmup_steps = warmup_steps
  o.div_factor, o.final_div_factor = 25.0, 1e4
  o.b1, o.b1_min, o.b2, o.eps = 0.95, 0.85, 0.999, 1e-6
  o.weight_decay = 0.0
  o.grad_clip_value = 1.0
  o.grad_clip_norm = 0.0
  t = config.train
  t.num_train_steps = num_train_steps
  t.eval_frequency = eval_frequency
  t.num_eval_batches = num_eval_batches
  t.checkpoint_every = eval_frequency
  t.log_every = min(t.log_every, eval_frequency)
  return config


def apply_smoke(
  config: config_dict.ConfigDict, max_len: int | None = None
) -> config_dict.ConfigDict:
  """Shrinks a config to a few CPU minutes.

  The model keeps the preset's architecture choices but is small (emb 64,
  2 layers, 2 heads, MLP 128, 64 random features), batch 32, 1000 steps,
  warmup 100, eval and checkpoint every 200 steps. The task config shrinks
  its generated data (`data.offline`).

  Args:
    config: the task config.
    max_len: the new `data.max_len` (None keeps it, e.g. for images).
  """
  config.smoke = True
  m = config.model
  m.emb_dim, m.num_heads, m.qkv_dim, m.mlp_dim, m.num_layers = 64, 2, 64, 128, 2
  if "num_features" in config.attention.options:
    config.attention.options.num_features = 64
  if max_len is not None:
    config.data.max_len = max_len
  config.data.batch_size = 32
  o = config.optimizer
  if o.schedule == "lra":
    o.learning_rate = 0.05
    o.factors = "constant * linear_warmup * rsqrt_decay"
  o.warmup_steps = 100
  t = config.train
  t.num_train_steps = 1000
  t.eval_frequency = 200
  t.num_eval_batches = -1
  t.checkpoint_every = 200
  t.log_every = 50
  return config


def parse_arg(arg: str | None, **defaults: Any) -> config_dict.ConfigDict:
  """Parses a config-string argument such as 'softmax,preset=macformer,smoke'.

  Args:
    arg: comma-separated items: a bare name that is a known attention
      variant sets `attention`; a bare name that is a boolean default sets it
      to True; `key=value` sets `key` (converted to the default's type).
    **defaults: every accepted key and its default value.

  Returns:
    A ConfigDict of the defaults, updated from `arg`.

  Raises:
    ValueError: an unknown key, variant or value, naming the accepted ones.
  """
  result = dict(defaults)
  for item in (arg or "").split(","):
    item = item.strip()
    if not item:
      continue
    key, sep, value = item.partition("=")
    if not sep:
      if key in ATTENTION_PRESETS and "attention" in defaults:
        result["attention"] = key
        continue
      if isinstance(defaults.get(key), bool):
        result[key] = True
        continue
      flag_names = [k for k, v in defaults.items() if isinstance(v, bool)]
      names = (
        list(ATTENTION_PRESETS) if "attention" in defaults else []
      ) + flag_names
      raise ValueError(
        f"unknown config argument {item!r}"
        f"{_did_you_mean(item, names)}: not an attention or "
        f"a flag; {_where_listed(flag_names, defaults)}"
      )
    if key not in defaults:
      raise ValueError(
        f"unknown config argument {key!r}"
        f"{_did_you_mean(key, defaults)}; the arguments are "
        f"{', '.join(defaults)}"
      )
    default = defaults[key]
    if isinstance(default, bool):
      if value.lower() not in ("true", "false", "1", "0"):
        raise ValueError(f"{key} takes true/false, got {value!r}")
      result[key] = value.lower() in ("true", "1")
    elif default is None:
      result[key] = value
    else:
      try:
        result[key] = type(default)(value)
      except ValueError:
        raise ValueError(
          f"{key} takes a {type(default).__name__}, got {value!r}"
        ) from None
  if "attention" in result and result["attention"] not in ATTENTION_PRESETS:
    raise ValueError(
      f"unknown attention {result['attention']!r}"
      f"{_did_you_mean(result['attention'], ATTENTION_PRESETS)}"
      "; the attentions are the keys of ATTENTION_PRESETS in "
      "configs/common.py"
    )
  if "preset" in result and result["preset"] not in PRESETS:
    raise ValueError(
      f"unknown preset {result['preset']!r}"
      f"{_did_you_mean(result['preset'], PRESETS)}; the "
      f"presets are {', '.join(PRESETS)} (PRESETS in "
      "configs/common.py)"
    )
  return config_dict.ConfigDict(result)


def _did_you_mean(name: str, known) -> str:
  """' (did you mean 'a', 'b'?)' for the closest known names, or ''."""
  close = difflib.get_close_matches(name, list(known), n=3, cutoff=0.6)
  return f" (did you mean {', '.join(map(repr, close))}?)" if close else ""


def _where_listed(flag_names, defaults) -> str:
  """Where a config string's bare names are listed, for an error message."""
  where = []
  if "attention" in defaults:
    where.append(
      "the attentions are the keys of ATTENTION_PRESETS in configs/common.py"
    )
  if flag_names:
    where.append(f"the flags are {', '.join(flag_names)}")
  return "; ".join(where) or f"the arguments are {', '.join(defaults)}"


def parse_task_arg(arg: str | None) -> config_dict.ConfigDict:
  """`parse_arg` with the arguments every task config accepts."""
  return parse_arg(
    arg, attention=DEFAULT_ATTENTION, preset=DEFAULT_PRESET, smoke=False
  )
