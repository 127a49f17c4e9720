import pytest
import torch

torch.set_num_threads(1)  # the suite runs on 2 shared cores; keep it predictable


@pytest.fixture
def roller():
    from descent.data.synthetic import roller_coaster

    return roller_coaster(42)
