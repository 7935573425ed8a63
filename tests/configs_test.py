"""Tests of configs/: every task x attention x preset loads, no dead keys."""

import glob
import importlib
import inspect
import io
import json
import os
import re
import tokenize
import warnings

from absl import flags
from ml_collections import config_dict
from ml_collections import config_flags
import pytest

from configs import common
import lra_tasks
from macformer_jax import attention
from macformer_jax import layers
from macformer_jax.training import validation

# ml_collections' config_flags loads config files with the deprecated
# `load_module`; not ours to fix.
pytestmark = pytest.mark.filterwarnings(
  "ignore:the load_module:DeprecationWarning"
)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TASKS = ("listops", "text", "retrieval", "image", "pathfinder")
VARIANTS = (
  "softmax",
  "macformer_exp",
  "macformer_inverse",
  "macformer_log",
  "macformer_trigh",
  "macformer_sqrt",
  "performer",
  "rfa",
  "linear",
)
VARIANTS += (
  "macformer_exp_tuned",
  "macformer_inverse_tuned",
  "macformer_log_tuned",
  "macformer_sqrt_tuned",
)
VARIANTS += ("macformer_exp_exact", "macformer_exp_exact_tuned")
# Every Spectraformer grid cell (tests/spectral_test.py checks the table).
VARIANTS += tuple(common.SPECTRA_PRESETS)
# The code that reads configs (the trainer, the model, the optimizer, the CLI).
TRAINER = tuple(
  sorted(
    os.path.relpath(p, ROOT)
    for p in glob.glob(os.path.join(ROOT, "macformer_jax", "training", "*.py"))
  )
)
READERS = TRAINER + (
  "macformer_jax/encoder.py",
  "macformer_jax/optim.py",
  "run_lra.py",
)
# Sub-dicts passed on whole (as keyword arguments) and checked separately.
WHOLE = ("attention.options", "data.options", "data.offline")


def _get(task, arg):
  return importlib.import_module(f"configs.{task}").get_config(arg)


def _leaves(config, prefix=""):
  for key, value in config.items():
    path = f"{prefix}{key}"
    if isinstance(value, config_dict.ConfigDict):
      if path in WHOLE:
        yield path, value
      else:
        yield from _leaves(value, path + ".")
    else:
      yield path, value


def _parameters(fn):
  return set(inspect.signature(fn).parameters)


def test_presets_cover_the_issue_and_registered_cores():
  assert set(common.ATTENTION_PRESETS) == set(VARIANTS)
  for core, _ in common.ATTENTION_PRESETS.values():
    assert core in layers.ATTENTIONS


@pytest.mark.parametrize("task", TASKS)
def test_every_config_loads(task):
  """Every task x attention x preset (x smoke) builds a locked config whose
  attention options, load options and generator arguments are accepted."""
  load = importlib.import_module(f"lra_tasks.{task}").TASK.load
  generate = importlib.import_module(f"lra_tasks.{task}").TASK.generate
  for variant in VARIANTS:
    for preset in common.PRESETS:
      for smoke in ("", ",smoke"):
        config = _get(task, f"{variant},preset={preset}{smoke}")
        assert config.is_locked
        assert config.task == task and config.preset == preset
        assert config.smoke == bool(smoke)
        assert config.attention.variant == variant
        core, options = common.ATTENTION_PRESETS[variant]
        assert config.attention.name == core
        for key, value in options.items():  # smoke changes num_features
          assert key == "num_features" or config.attention.options[key] == value
        layers.attention_class(core, **config.attention.options)
        assert set(config.data.options) <= _parameters(load)
        if config.data.offline:
          assert set(config.data.offline) | {"seed"} <= _parameters(generate)
        if smoke:  # offline for every task (data_dir unset)
          assert config.data.offline and config.data.data_dir is None
        assert config.model.qkv_dim % config.model.num_heads == 0
        assert config.data.batch_size % 2 == 0  # splits over 2 devices
        warmup = config.optimizer.warmup_steps
        validation.check_config(config)  # every value in range
        assert config.optimizer.warmup_steps == warmup  # fits as set
  assert _get(task, None).attention.variant == common.DEFAULT_ATTENTION


def test_lra_and_macformer_values():
  lra = _get("listops", "softmax")
  m, o = lra.model, lra.optimizer
  assert (m.emb_dim, m.num_heads, m.num_layers, m.mlp_dim) == (512, 8, 4, 1024)
  assert (lra.data.batch_size, o.learning_rate, o.warmup_steps) == (
    32,
    0.05,
    1000,
  )
  assert o.factors == "constant * linear_warmup * rsqrt_decay"
  assert (o.b1, o.b2, o.eps, o.weight_decay) == (0.9, 0.98, 1e-9, 0.1)
  assert lra.train.num_train_steps == 5000
  mac = _get("listops", "macformer_exp,preset=macformer")
  m, o = mac.model, mac.optimizer
  assert (m.emb_dim, m.num_heads, m.qkv_dim, m.mlp_dim, m.num_layers) == (
    64,
    2,
    64,
    128,
    2,
  )
  assert mac.attention.options.num_features == 128
  assert (o.schedule, o.grad_clip_value, o.b1, o.b1_min) == (
    "one_cycle",
    1.0,
    0.95,
    0.85,
  )
  assert _get("retrieval", "softmax").model.head_hidden_layers == 2
  mac_retrieval = _get("retrieval", "softmax,preset=macformer")
  assert mac_retrieval.model.head_hidden_layers == 1
  # Cosine cycles follow the number of steps.
  image = _get("image", "softmax")
  assert image.optimizer.steps_per_cycle == image.train.num_train_steps
  smoke = _get("listops", "macformer_exp,smoke")
  assert smoke.data.max_len == 256 and smoke.data.offline.max_length == 250


@pytest.mark.parametrize(
  "arg,match",
  [
    ("softmx", "unknown config argument 'softmx'"),
    ("softmax,preset=big", "unknown preset 'big'"),
    ("softmax,size=2", "unknown config argument 'size'"),
    ("softmax,smoke=maybe", "smoke takes true/false"),
  ],
)
def test_parse_arg_rejects_unknown(arg, match):
  with pytest.raises(ValueError, match=match):
    common.parse_task_arg(arg)


def test_parse_arg_values():
  args = common.parse_task_arg(" performer , preset=macformer,smoke ")
  assert (args.attention, args.preset, args.smoke) == (
    "performer",
    "macformer",
    True,
  )
  args = common.parse_task_arg("attention=rfa,smoke=false")
  assert (args.attention, args.smoke) == ("rfa", False)


def _parse_flags(*argv):
  fv = flags.FlagValues()
  argv = ["run_lra.py", *argv]
  holder = config_flags.DEFINE_config_file(
    "config", None, "config", flag_values=fv, lock_config=True, sys_argv=argv
  )
  fv(argv)
  return holder.value


def test_command_line_overrides():
  path = os.path.join(ROOT, "configs", "listops.py")
  config = _parse_flags(
    f"--config={path}:softmax,smoke",
    "--config.train.num_train_steps=200",
    "--config.attention.options.implementation=xla",
    "--config.data.data_dir=/tmp/x",
  )
  assert config.train.num_train_steps == 200
  assert config.attention.options.implementation == "xla"
  assert config.data.data_dir == "/tmp/x"
  config = _parse_flags(
    f"--config={path}:macformer_exp", "--config.attention.options.qk_scale=0.5"
  )
  assert config.attention.options.qk_scale == 0.5


def test_path_x_trains_on_every_pixel():
  """data.max_len follows data.options.resolution: Path-X (128) has 16384
  positions, in both presets, unless max_len itself is overridden."""
  path = os.path.join(ROOT, "configs", "pathfinder.py")
  for arg in ("softmax", "softmax,preset=macformer", "softmax,smoke"):
    assert _parse_flags(f"--config={path}:{arg}").data.max_len == 1024
    config = _parse_flags(
      f"--config={path}:{arg}", "--config.data.options.resolution=128"
    )
    assert config.data.max_len == 16384 == 128 * 128
  config = _parse_flags(
    f"--config={path}:softmax",
    "--config.data.options.resolution=64",
    "--config.data.max_len=100",
  )
  assert config.data.max_len == 100


def test_a_warmup_longer_than_the_run_is_shortened(caplog):
  """A short try-out of preset=macformer (one-cycle, warmup 1000) runs: the
  warmup is cut to a tenth of the steps (>= 2), with a warning."""
  config = _get("listops", "macformer_exp,preset=macformer")
  config.train.num_train_steps = 20
  validation.check_config(config)
  assert config.optimizer.warmup_steps == 2
  assert (
    "warmup_steps=1000 does not fit train.num_train_steps=20" in caplog.text
  )
  config.train.num_train_steps = 2
  with pytest.raises(
    validation.ConfigError,
    match=r"train.num_train_steps=2: .* needs >= 3 steps",
  ):
    validation.check_config(config)


@pytest.mark.parametrize(
  "key, value, match",
  [
    ("train.num_train_steps", 0, "train.num_train_steps=0: must be >= 1"),
    ("data.batch_size", -1, "data.batch_size=-1: must be >= 1"),
    ("data.max_len", 0, "data.max_len=0: must be >= 1"),
    ("model.dropout_rate", 1.0, r"model.dropout_rate=1.0: must be in \[0, 1\)"),
    (
      "model.qkv_dim",
      30,
      "model.qkv_dim=30: must be a multiple of model.num_heads=8",
    ),
    ("optimizer.learning_rate", 0.0, "optimizer.learning_rate=0.0: must be"),
    (
      "attention.options.qk_scale",
      1.5,
      "attention.options.qk_scale=1.5: .*"
      "radius of convergence 1 of the 'log' kernel.*macformer_log_tuned",
    ),
  ],
)
def test_out_of_range_values_name_the_key(key, value, match):
  config = _get("listops", "macformer_log")
  section, name = key.rsplit(".", 1)
  node = config
  for part in section.split("."):
    node = node[part]
  node[name] = value
  with pytest.raises(validation.ConfigError, match=match) as error:
    validation.check_config(config)
  assert error.value.key == key


@pytest.mark.parametrize(
  "arg, expected",
  [
    ("macformr_exp", "did you mean 'macformer_exp'"),
    ("softmax,preset=macformr", "did you mean 'macformer'"),
    ("softmax,smok", "did you mean 'smoke'"),
    ("softmax,prest=lra", "did you mean 'preset'"),
  ],
)
def test_config_string_mistakes_suggest_the_closest_names(arg, expected):
  with pytest.raises(ValueError, match=expected) as error:
    common.parse_task_arg(arg)
  assert "\n" not in str(error.value)


@pytest.mark.parametrize(
  "override",
  [
    "--config.train.num_train_stepz=200",
    "--config.model.emb_dm=64",
    "--config.attention.options.num_featurs=64",
    "--config.train.num_train_steps=abc",
  ],
)
def test_unknown_or_bad_override_fails(override):
  path = os.path.join(ROOT, "configs", "listops.py")
  with pytest.raises(
    (flags.Error, AttributeError, KeyError, TypeError, ValueError)
  ):
    _parse_flags(f"--config={path}:macformer_exp", override)


def _sources():
  text = {}
  for reader in READERS:
    with open(os.path.join(ROOT, reader)) as f:
      text[reader] = f.read()
  return text


def test_every_key_is_read_somewhere():
  """A key that no code reads is a bug: each leaf key of every
  config appears as `.key` or as a quoted "key" in the reading code; the
  whole-passed sub-dicts appear by name."""
  # validation.py names (nearly) every key to check its range: not a read.
  source = "\n".join(
    text
    for reader, text in _sources().items()
    if not reader.endswith("validation.py")
  )
  keys = set()
  for task in TASKS:
    for preset in common.PRESETS:
      config = _get(task, f"softmax,preset={preset}")
      keys |= {path for path, _ in _leaves(config)}
  dead = []
  for path in sorted(keys):
    name = path.split(".")[-1]
    if path in WHOLE:  # e.g. `attention_config.options`
      pattern = rf"\.{name}\b"
    else:
      pattern = rf"\.{name}\b|[\"']{name}[\"']"
    if not re.search(pattern, source):
      dead.append(path)
  assert not dead, f"config keys that no code reads: {dead}"


# Variables that hold a config section in the reading code.
ALIASES = {
  **{reader: {"config": "", "t": "train"} for reader in TRAINER},
  "macformer_jax/encoder.py": {"config": "", "model_config": "model"},
  "macformer_jax/optim.py": {"o": "optimizer"},
  "run_lra.py": {"config": ""},
}


def _code_only(text):
  """`text` with strings and comments blanked (Python tokens)."""
  tokens = tokenize.generate_tokens(io.StringIO(text).readline)
  return " ".join(
    tok.string
    for tok in tokens
    if tok.type not in (tokenize.STRING, tokenize.COMMENT)
  )


def test_every_key_the_code_reads_exists():
  """Every `config.a.b` (and aliased section) attribute chain in the code
  resolves in the base config, so the trainer never reads a missing key."""
  base = common.get_base_config()
  missing = []
  for reader, text in _sources().items():
    text = _code_only(text).replace(" . ", ".")
    for alias, section in ALIASES[reader].items():
      for match in re.finditer(rf"\b{alias}((?:\.[a-z_]\w*)+)", text):
        node = base[section] if section else base
        for name in match.group(1).strip(".").split("."):
          if isinstance(node, config_dict.ConfigDict) and name in node:
            node = node[name]
          elif isinstance(node, config_dict.ConfigDict) and hasattr(
            config_dict.ConfigDict, name
          ):
            break  # a ConfigDict method such as .to_json_best_effort
          elif not isinstance(node, config_dict.ConfigDict):
            break  # an attribute of a value (e.g. a string method)
          else:
            missing.append(f"{reader}: {alias}{match.group(1)}")
            break
  assert not missing, f"keys read but not defined: {missing}"


def test_task_registry_has_a_config_per_task():
  assert set(lra_tasks.TASKS) == set(TASKS)
  for task in TASKS:
    assert os.path.exists(os.path.join(ROOT, "configs", f"{task}.py"))


def test_tuned_presets_follow_the_temperature_study():
  """`macformer_<kernel>_tuned` uses the scale docs/TEMPERATURE.md
  recommends: the study's rule, applied to its runs, is recorded in the
  committed docs/temperature.json (`recommendation`)."""
  with open(os.path.join(ROOT, "docs", "temperature.json")) as f:
    recommended = json.load(f)["recommendation"]
  assert recommended == common.TUNED_QK_SCALE
  for kernel, scale in common.TUNED_QK_SCALE.items():
    config = _get("listops", f"macformer_{kernel}_tuned")
    assert config.attention.options.qk_scale == scale
    assert config.attention.options.kernel == kernel
    assert (
      _get("listops", f"macformer_{kernel}").attention.options.qk_scale is None
    )  # the authors' Dh^-1/4
    with warnings.catch_warnings():
      warnings.simplefilter("error")  # inside the well-behaved range
      attention.check_qk_scale(scale, kernel)
