"""LevenbergMarquardt offers torch.optim's interface without being a torch.optim
Optimizer: its state_dict has torch.optim's layout (checkpoints written when it was
one still load), it refuses a state that is not its own, and a fit with it imports
neither torch._dynamo nor sympy."""

import subprocess
import sys

import pytest
import torch

from descent.fitting.levenberg import LevenbergMarquardt, Residuals


def _quadratic_lm(**kw):
    x = torch.arange(20, dtype=torch.float64)
    y = 0.75 * (x - 9.5) ** 2 + 1 + torch.sin(3 * x)
    b = torch.ones(3, dtype=torch.float64, requires_grad=True)
    res = Residuals(lambda x, b: b[0] * x**2 + b[1] * x + b[2], x, y)
    return b, LevenbergMarquardt([b], res, **kw)


def test_state_dict_has_torch_optims_layout():
    b, opt = _quadratic_lm(tau=0.1)
    assert opt.state_dict() == {
        "state": {},
        "param_groups": [
            {"lr": 1.0, "tol": 1e-6, "tau": 0.1, "shrink": 1 / 30, "max_trials": 12, "params": [0]}
        ],
    }
    opt.step()
    sd = opt.state_dict()
    assert set(sd["state"]) == {0} and set(sd["state"][0]) == {"D", "lam", "nu", "stalls"}
    assert sd["state"][0]["D"].dtype == torch.float64 and sd["state"][0]["D"].shape == (3,)
    sd["state"][0]["D"].zero_()  # a copy: the optimizer's own state is untouched
    assert opt.state[b]["D"].abs().min() > 0


def test_load_state_dict_continues_bit_for_bit():
    b, opt = _quadratic_lm()
    for _ in range(2):
        opt.step()
    saved_b, saved = b.detach().clone(), opt.state_dict()
    for _ in range(3):
        opt.step()
    b2, opt2 = _quadratic_lm()
    with torch.no_grad():
        b2.copy_(saved_b)
    opt2.load_state_dict(saved)
    for _ in range(3):
        opt2.step()
    assert torch.equal(b, b2) and opt2.state[b2]["lam"] == opt.state[b]["lam"]


def test_load_state_dict_refuses_another_optimizers_state():
    b, opt = _quadratic_lm()
    sgd = torch.optim.SGD([torch.zeros(3), torch.zeros(2)], lr=0.1)
    with pytest.raises(ValueError, match="not one of LevenbergMarquardt's"):
        opt.load_state_dict(sgd.state_dict())
    with pytest.raises(ValueError, match="one parameter vector"):
        LevenbergMarquardt([b, b.detach()], opt.residuals)


def test_a_small_fit_imports_neither_dynamo_nor_sympy(tmp_path):
    """Constructing a torch.optim.Optimizer imports torch._dynamo, and autograd.grad
    given grad_outputs imports sympy: ~2 s together, more than a small fit takes;
    pyarrow's conversions of Python or numpy objects import pandas (~0.1 s)."""
    csv = tmp_path / "d.csv"
    csv.write_text("t,y\n" + "".join(f"{t},{0.75 * (t - 9.5) ** 2 + t % 3}\n" for t in range(20)))
    code = (
        "import sys; from descent.cli import main; "
        f"assert main(['fit', {str(csv)!r}, '--model', 'a*t**2 + b*t + c', '--y', 'y', "
        f"'--no-plots', '-q', '--out', {str(tmp_path / 'run')!r}]) == 0; "
        "heavy = sorted({'torch._dynamo', 'sympy', 'matplotlib', 'pandas'} & set(sys.modules)); "
        "assert not heavy, heavy"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
