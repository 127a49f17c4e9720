import pytest
import torch

torch.set_num_threads(1)  # the suite runs on 2 shared cores; keep it predictable


@pytest.fixture
def roller():
    from descent.data.synthetic import roller_coaster

    return roller_coaster(42)


def pytest_collection_modifyitems(config, items):
    """Tests marked `cuda` are skipped where torch sees no CUDA GPU."""
    import pytest
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU (make test-gpu on a machine with one)")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)
