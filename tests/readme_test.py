"""The README's Python example runs as written, and its set-up commands are
the ones CI runs."""

import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _readme():
  with open(os.path.join(ROOT, "README.md")) as f:
    return f.read()


def test_readme_python_example_runs():
  blocks = re.findall(r"```python\n(.*?)```", _readme(), re.S)
  assert blocks, "README has no python example"
  result = subprocess.run(
    [sys.executable, "-c", blocks[0]],
    cwd=ROOT,
    capture_output=True,
    text=True,
    timeout=300,
    env={**os.environ, "PYTHONPATH": ROOT},
  )
  assert result.returncode == 0, result.stderr
  shape, error = result.stdout.split(") ")
  assert shape == "(2, 1024, 4, 32"
  assert float(error) < 0.05  # falls as D^-1/2 (docs/BENCHMARKS.md)


def test_ci_runs_the_readme_test_command():
  setup = re.search(r"```bash\n(.*?)```", _readme(), re.S).group(1)
  test_command = setup.strip().splitlines()[-1]
  with open(os.path.join(ROOT, ".ci", "run")) as f:
    assert test_command in f.read()
