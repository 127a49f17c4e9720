"""rng_state / set_rng_state put every generator back; numpy's global one is left out
(None) while numpy.random has not been imported, as nothing can have drawn from it."""

import random
import subprocess
import sys

import numpy as np
import torch

from descent.core.rng import rng_state, set_rng_state


def test_every_generator_draws_the_same_numbers_again():
    np.random.seed(0)  # imports numpy.random: its generator is in play
    saved = rng_state()
    first = (torch.rand(3), np.random.rand(3), random.random())
    set_rng_state(saved)
    again = (torch.rand(3), np.random.rand(3), random.random())
    assert torch.equal(first[0], again[0]) and (first[1] == again[1]).all()
    assert first[2] == again[2]


def test_numpy_is_left_out_until_numpy_random_is_imported():
    code = (
        "import sys; from descent.core.rng import rng_state, set_rng_state\n"
        "s = rng_state(); assert s['numpy'] is None and 'numpy.random' not in sys.modules\n"
        "set_rng_state(s)\n"
        "import numpy as np; np.random.seed(3); assert rng_state()['numpy']['pos'] == 624\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
