"""Tests of configs/: every task x attention x preset loads, no dead keys."""

import glob
import importlib
import inspect
import io
import json
import os
import re
import sys
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

# ml_collections' config_flags loads config files with the deprecated
# `load_module`; not ours to fix.
pytestmark = pytest.mark.filterwarnings(
    "ignore:the load_module:DeprecationWarning")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TASKS = ("listops", "text", "retrieval", "image", "pathfinder")
VARIANTS = ("softmax", "macformer_exp", "macformer_inverse", "macformer_log",
            "macformer_trigh", "macformer_sqrt", "performer", "rfa", "linear")
VARIANTS += ("macformer_exp_tuned", "macformer_inverse_tuned",
             "macformer_log_tuned", "macformer_sqrt_tuned")
VARIANTS += ("macformer_exp_exact", "macformer_exp_exact_tuned")
# Every Spectraformer grid cell (tests/spectral_test.py checks the table).
VARIANTS += tuple(common.SPECTRA_PRESETS)
# The code that reads configs (the trainer, the model, the optimizer, the CLI).
TRAINER = tuple(sorted(
    os.path.relpath(p, ROOT) for p in glob.glob(
        os.path.join(ROOT, "macformer_jax", "training", "*.py"))))
READERS = TRAINER + ("macformer_jax/encoder.py", "macformer_jax/optim.py",
                     "run_lra.py")
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
  assert _get(task, None).attention.variant == common.DEFAULT_ATTENTION


def test_lra_and_macformer_values():
  lra = _get("listops", "softmax")
  m, o = lra.model, lra.optimizer
  assert (m.emb_dim, m.num_heads, m.num_layers, m.mlp_dim) == (512, 8, 4, 1024)
  assert (lra.data.batch_size, o.learning_rate, o.warmup_steps) == (32, .05,
                                                                   1000)
  assert o.factors == "constant * linear_warmup * rsqrt_decay"
  assert (o.b1, o.b2, o.eps, o.weight_decay) == (0.9, 0.98, 1e-9, 0.1)
  assert lra.train.num_train_steps == 5000
  mac = _get("listops", "macformer_exp,preset=macformer")
  m, o = mac.model, mac.optimizer
  assert (m.emb_dim, m.num_heads, m.qkv_dim, m.mlp_dim, m.num_layers) == (
      64, 2, 64, 128, 2)
  assert mac.attention.options.num_features == 128
  assert (o.schedule, o.grad_clip_value, o.b1, o.b1_min) == ("one_cycle", 1.0,
                                                             0.95, 0.85)
  assert _get("retrieval", "softmax").model.head_hidden_layers == 2
  mac_retrieval = _get("retrieval", "softmax,preset=macformer")
  assert mac_retrieval.model.head_hidden_layers == 1
  # Cosine cycles follow the number of steps.
  image = _get("image", "softmax")
  assert image.optimizer.steps_per_cycle == image.train.num_train_steps
  smoke = _get("listops", "macformer_exp,smoke")
  assert smoke.data.max_len == 256 and smoke.data.offline.max_length == 250


@pytest.mark.parametrize("arg,match", [
    ("softmx", "unknown config argument 'softmx'"),
    ("softmax,preset=big", "unknown preset 'big'"),
    ("softmax,size=2", "unknown config argument 'size'"),
    ("softmax,smoke=maybe", "smoke takes true/false"),
])
def test_parse_arg_rejects_unknown(arg, match):
  with pytest.raises(ValueError, match=match):
    common.parse_task_arg(arg)


def test_parse_arg_values():
  args = common.parse_task_arg(" performer , preset=macformer,smoke ")
  assert (args.attention, args.preset, args.smoke) == ("performer",
                                                       "macformer", True)
  args = common.parse_task_arg("attention=rfa,smoke=false")
  assert (args.attention, args.smoke) == ("rfa", False)


def _parse_flags(*argv):
  fv = flags.FlagValues()
  argv = ["run_lra.py", *argv]
  holder = config_flags.DEFINE_config_file(
      "config", None, "config", flag_values=fv, lock_config=True,
      sys_argv=argv)
  fv(argv)
  return holder.value


def test_command_line_overrides():
  path = os.path.join(ROOT, "configs", "listops.py")
  config = _parse_flags(f"--config={path}:softmax,smoke",
                        "--config.train.num_train_steps=200",
                        "--config.attention.options.implementation=xla",
                        "--config.data.data_dir=/tmp/x")
  assert config.train.num_train_steps == 200
  assert config.attention.options.implementation == "xla"
  assert config.data.data_dir == "/tmp/x"
  config = _parse_flags(f"--config={path}:macformer_exp",
                        "--config.attention.options.qk_scale=0.5")
  assert config.attention.options.qk_scale == 0.5


@pytest.mark.parametrize("override", [
    "--config.train.num_train_stepz=200",
    "--config.model.emb_dm=64",
    "--config.attention.options.num_featurs=64",
    "--config.train.num_train_steps=abc",
])
def test_unknown_or_bad_override_fails(override):
  path = os.path.join(ROOT, "configs", "listops.py")
  with pytest.raises((flags.Error, AttributeError, KeyError, TypeError,
                      ValueError)):
    _parse_flags(f"--config={path}:macformer_exp", override)


def _sources():
  text = {}
  for reader in READERS:
    with open(os.path.join(ROOT, reader)) as f:
      text[reader] = f.read()
  return text


def test_every_key_is_read_somewhere():
  """A key that no code reads is a bug (STYLE §13): each leaf key of every
  config appears as `.key` or as a quoted "key" in the reading code; the
  whole-passed sub-dicts appear by name."""
  source = "\n".join(_sources().values())
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
  return " ".join(tok.string for tok in tokens
                  if tok.type not in (tokenize.STRING, tokenize.COMMENT))


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
              config_dict.ConfigDict, name):
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
  recommends: the study's rule applied to its committed summary."""
  sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
  import temperature_study  # pylint: disable=g-import-not-at-top
  with open(os.path.join(ROOT, "docs", "temperature.json")) as f:
    summary = json.load(f)["summary"]
  recommended = {k: round(r["scale"], 4) for k, r in
                 temperature_study.recommendation(summary).items()}
  assert recommended == common.TUNED_QK_SCALE
  for kernel, scale in common.TUNED_QK_SCALE.items():
    config = _get("listops", f"macformer_{kernel}_tuned")
    assert config.attention.options.qk_scale == scale
    assert config.attention.options.kernel == kernel
    assert _get("listops", f"macformer_{kernel}").attention.options.qk_scale \
        is None  # the authors' Dh^-1/4
    with warnings.catch_warnings():
      warnings.simplefilter("error")  # inside the well-behaved range
      attention.check_qk_scale(scale, kernel)
