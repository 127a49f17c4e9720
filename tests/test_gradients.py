"""grad(): autograd against central differences, the book's examples, and the loop's step 4."""

from __future__ import annotations

import random

import pytest
import torch

from descent.core.events import Callback
from descent.core.gradients import grad
from descent.core.learner import Learner
from descent.data.batches import Batches
from descent.data.synthetic import roller_coaster
from descent.errors import ConfigError, DataError, FormulaError
from descent.models.formula import FormulaModel
from descent.report.gradients import plot_gradient


def test_the_books_scalar_example():
    g = grad("x**2", x=3)
    assert g.value == 9 and g.grad == {"x": 6.0}
    assert g.numeric["x"] == pytest.approx(6, rel=1e-9)
    assert "d/dx" in str(g) and g.expression == "x**2"


def test_the_books_rank_1_example():
    g = grad("x**2", x=[3, 4, 10], sum=True)  # (x**2).sum()
    assert g.value == 125 and g.grad == {"x": [6.0, 8.0, 20.0]}
    assert g.expression == "(x**2).sum()"
    each = grad("x**2", x=[3, 4, 10])  # without sum: the values element by element
    assert each.value == [9.0, 16.0, 100.0] and each.grad == g.grad


def test_a_python_function_and_several_variables():
    g = grad(lambda x, y: x * y + torch.sin(x), x=2.0, y=3.0)
    assert g.grad["x"] == pytest.approx(3 + torch.cos(torch.tensor(2.0)).item())
    assert g.grad["y"] == pytest.approx(2.0)
    assert g.error() < 1e-8
    assert grad("x*y", {"y": 3}, x=2).grad == {"x": 3.0, "y": 2.0}  # a mapping works too


def _random_formula(rng: random.Random, depth: int) -> str:
    """A random formula over x, y, z that stays finite and smooth on [-1.5, 1.5]."""
    if depth == 0 or rng.random() < 0.25:
        return rng.choice(["x", "y", "z", f"{rng.uniform(-2, 2):.3f}"])
    a = _random_formula(rng, depth - 1)
    b = _random_formula(rng, depth - 1)
    return rng.choice(
        [
            f"({a} + {b})",
            f"({a} - {b})",
            f"({a} * {b})",
            f"({a} / (1 + ({b})**2))",
            f"({a})**2",
            f"({a})**3",
            f"sin({a})",
            f"cos({a})",
            f"tanh({a})",
            f"atan({a})",
            f"exp(tanh({a}))",
            f"log(1 + ({a})**2)",
            f"sqrt(1 + ({a})**2)",
            f"atan2({a}, 2 + ({b})**2)",
        ]
    )


def test_twenty_random_formulas_against_central_differences():
    rng = random.Random(17)
    for _ in range(20):
        text = f"x*y*z*0 + {_random_formula(rng, 4)}"  # every variable appears
        point = {k: rng.uniform(-1.5, 1.5) for k in "xyz"}
        g = grad(text, **point)
        for k in "xyz":
            assert g.grad[k] == pytest.approx(g.numeric[k], rel=1e-6, abs=1e-7), (text, point)
        assert g.error() < 1e-6


def test_gradient_of_the_mse_is_the_loops_step_4(tmp_path):
    time, speed = roller_coaster(dtype=torch.float64)
    path = tmp_path / "coaster.csv"
    rows = "".join(f"{t!r},{s!r}\n" for t, s in zip(time.tolist(), speed.tolist(), strict=True))
    path.write_text("t,speed\n" + rows)
    g = grad("a*t**2+b*t+c", data=path, a=1, b=2, c=3)  # the target: the column left over
    assert g.expression.startswith("mse(a*t**2+b*t+c, speed) over 20 rows")

    class Grab(Callback):
        def after_backward(self):
            self.grad = self.learner.model.params.grad.clone()

    grab = Grab()
    model = FormulaModel("a*t**2+b*t+c", {"a": 1, "b": 2, "c": 3})
    learn = Learner(
        model,
        Batches(time, speed, batch_size=len(time)),  # one batch: the whole data set
        loss="mse",
        optimizer="sgd",
        lr=1e-5,
        callbacks=[grab],
        progress=False,
    )
    result = learn.fit(1)
    torch.testing.assert_close(
        torch.tensor([g.grad[k] for k in "abc"], dtype=torch.float64), grab.grad
    )
    assert g.value == pytest.approx(result.history.rows[0]["train_loss"], rel=1e-12)
    assert g.error() < 1e-8


def test_data_as_a_mapping_and_the_target_by_name():
    t = torch.arange(5.0)
    data = {"t": t, "y": 2 * t + 1, "other": t}
    g = grad("a*t + b", data=data, target="y", a=2, b=1)  # exact fit: zero gradient
    assert g.value == 0 and g.grad == {"a": 0.0, "b": 0.0}
    with pytest.raises(DataError, match="which column is the target"):
        grad("a*t + b", data=data, a=2, b=1)


@pytest.mark.parametrize(
    "hostile",
    [
        "__import__('os').system('true')",
        "x.__class__",
        "(lambda: x)()",
        "[x for x in 'a']",
        "open('/etc/passwd')",
        "9**9**9**9",
        "x if x else x",
        "eval('x')",
    ],
)
def test_hostile_formulas_are_refused_as_in_fit(hostile):
    with pytest.raises(FormulaError):
        grad(hostile, x=1)


def test_bad_points_say_what_is_wrong():
    with pytest.raises(ConfigError, match="no value for y"):
        grad("x*y", x=1)
    with pytest.raises(ConfigError, match="z not in it"):
        grad("x**2", x=1, z=2)
    with pytest.raises(ConfigError, match="finite"):
        grad("x**2", x=float("nan"))
    with pytest.raises(ConfigError, match="do not broadcast"):
        grad("x*y", x=[1, 2], y=[1, 2, 3])
    with pytest.raises(DataError, match="not finite"):
        grad("log(x)", x=-1)


def test_plot_draws_the_tangent_with_the_gradient_as_slope():
    fig = plot_gradient(grad("x**2", x=3))
    ax = fig.axes[0]
    curve, tangent = ax.get_lines()
    xs, ys = tangent.get_data()
    assert (ys[-1] - ys[0]) / (xs[-1] - xs[0]) == pytest.approx(6)
    assert curve.get_ydata()[len(xs) // 2] == pytest.approx(9)
    assert len(plot_gradient(grad("x**2", x=[3, 4, 10], sum=True)).axes) == 3
    with pytest.raises(ConfigError, match="no variable"):
        plot_gradient(grad("x**2", x=3), var="y")
