"""The layout's contracts: layers that import one way, names defined once, and a
`descent explain` that shows the events where the loop fires them."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from descent import Batches, Callback, Learner
from descent.core.events import EVENTS
from descent.core.losses import LOSS_FUNCTIONS
from descent.core.metrics import METRIC_CLASSES
from descent.core.optim import OPTIMIZER_CLASSES
from descent.data.synthetic import quadratic, roller_coaster
from descent.models.function import FunctionModel
from descent.options import LOSSES, METRICS, OPTIMIZERS
from descent.report.explain import explain, loop_events

ROOT = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _lint_imports(tree: Path) -> subprocess.CompletedProcess:
    env = {"PYTHONPATH": str(tree / "src"), "PATH": "/usr/bin:/bin"}
    return subprocess.run(
        [str(LINT_IMPORTS), "--config", str(tree / "pyproject.toml"), "--no-cache"],
        cwd=tree, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


@pytest.mark.skipif(not LINT_IMPORTS.exists(), reason="import-linter is a test dependency")
def test_import_contracts_hold_and_catch_a_violation(tmp_path):
    tree = tmp_path / "copy"
    shutil.copytree(ROOT / "src", tree / "src", ignore=shutil.ignore_patterns("*.egg-info"))
    shutil.copy(ROOT / "pyproject.toml", tree / "pyproject.toml")
    clean = _lint_imports(tree)
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert "2 kept, 0 broken" in clean.stdout
    # core importing io is an upward import, and io already imports core: both break
    learner = tree / "src" / "descent" / "core" / "learner.py"
    text = learner.read_text()
    marker = "from descent.core.state import LearnerState\n"
    learner.write_text(text.replace(marker, marker + "from descent.io.files import write_json\n"))
    broken = _lint_imports(tree)
    assert broken.returncode != 0
    assert "descent.core is not allowed to import descent.io" in broken.stdout
    assert "No import cycle anywhere in descent BROKEN" in broken.stdout


def test_choice_lists_are_the_library_names():
    assert tuple(LOSS_FUNCTIONS) == LOSSES
    assert tuple(METRIC_CLASSES) == METRICS
    assert tuple(OPTIMIZER_CLASSES) == OPTIMIZERS


class Recorder(Callback):
    """Records every event in the order the loop fires it."""

    def __init__(self):
        self.fired = []


for _event in EVENTS:
    setattr(Recorder, _event, lambda self, e=_event: self.fired.append(e))


def test_explain_shows_the_events_in_the_order_the_loop_fires_them():
    t, speed = roller_coaster(0)
    rec = Recorder()
    learner = Learner(
        FunctionModel(quadratic, "abc", [0.0, 0.0, 0.0]),
        Batches(t[:15], speed[:15]),  # one training batch
        Batches(t[15:], speed[15:]),  # one validation batch
        lr=1e-5,
        callbacks=[rec],
        progress=False,
    )
    learner.fit(1)
    assert rec.fired == loop_events()
    text = explain(learner)
    lines = [line.strip() for line in text.splitlines()]
    shown = [line.split(":")[0] for line in lines if line.split(":")[0] in EVENTS]
    assert shown == loop_events()  # every event shown, Recorder being on each
    assert text.index("before_train") < text.index("for xb, yb in Batches(n=15")
    assert text.index("after_train") > text.index("after_batch")
