"""--tensorboard DIR: event files that TensorBoard itself reads back (EventAccumulator)."""

import pytest
import torch
from tests.test_watch import pixel_learner

from descent.callbacks.tensorboard import TensorBoard, bwr

pytest.importorskip("tensorboard")


def accumulate(folder):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(folder), size_guidance={"images": 0, "scalars": 0})
    acc.Reload()
    return acc


def test_a_run_writes_scalars_lr_weight_images_and_histograms(tmp_path):
    learn = pixel_learner()
    board = TensorBoard(tmp_path, labels=["yes vs no"])
    learn.fit(3, callbacks=[board])
    board.close()
    tags = accumulate(tmp_path).Tags()
    assert {"train_loss", "valid_loss", "valid_accuracy", "lr"} <= set(tags["scalars"])
    acc = accumulate(tmp_path)
    losses = [e.value for e in acc.Scalars("train_loss")]
    assert [e.step for e in acc.Scalars("train_loss")] == [1, 2, 3]
    assert losses == pytest.approx(learn.history.column("train_loss"), rel=1e-6)
    assert [e.value for e in acc.Scalars("lr")] == pytest.approx([0.5] * 3)
    assert tags["images"] == ["weights/yes vs no"]
    image = acc.Images("weights/yes vs no")[-1]
    assert (image.width, image.height, image.step) == (8, 8, 3)
    assert "hist/weights" in tags["histograms"]


def test_a_curve_fit_writes_its_parameters(tmp_path, roller):
    from descent.core.learner import Learner
    from descent.data.batches import Batches
    from descent.data.synthetic import quadratic
    from descent.models.function import FunctionModel

    t, speed = roller
    model = FunctionModel(quadratic, "abc", [0.1, 0.2, 0.3])
    board = TensorBoard(tmp_path, histograms=False)
    Learner(model, Batches(t, speed), lr=1e-5, progress=False).fit(2, callbacks=[board])
    board.close()
    acc = accumulate(tmp_path)
    assert {"param/a", "param/b", "param/c"} <= set(acc.Tags()["scalars"])
    assert acc.Scalars("param/a")[-1].value == pytest.approx(model.values()["a"], rel=1e-6)


def test_bwr_is_red_for_white_at_zero_blue_against():
    rgb = bwr(torch.tensor([[1.0, 0.0, -1.0, 0.5]]), (2, 2))  # (1, 2, 2, 3)
    assert rgb[0, 0, 0].tolist() == [1, 0, 0] and rgb[0, 0, 1].tolist() == [1, 1, 1]
    assert rgb[0, 1, 0].tolist() == [0, 0, 1] and rgb[0, 1, 1].tolist() == [1, 0.5, 0.5]


def test_without_the_package_the_message_says_what_to_install(monkeypatch, tmp_path):
    import sys

    from descent.errors import ConfigError

    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # import fails
    with pytest.raises(ConfigError, match=r"pip install 'descent\[tensorboard\]'"):
        TensorBoard(tmp_path)
