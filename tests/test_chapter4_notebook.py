"""examples/chapter4.ipynb runs end to end in a fresh kernel of this environment: no cell
fails, every figure cell shows a PNG with no %matplotlib line anywhere, and each cell
that trains shows its epoch table as one output updated in place."""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOK = Path(__file__).resolve().parents[1] / "examples" / "chapter4.ipynb"


def tagged(nb, tag: str) -> list:
    return [c for c in nb.cells if tag in c.get("metadata", {}).get("tags", [])]


def test_the_notebook_is_committed_clean():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and all(not c.outputs and c.execution_count is None for c in code)
    assert not any("%matplotlib" in c.source for c in nb.cells)
    assert len(tagged(nb, "figure")) >= 6 and len(tagged(nb, "epoch-table")) >= 3


@pytest.fixture(scope="module")
def executed(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setenv("OMP_NUM_THREADS", "1")  # the kernel shares 2 busy cores with the test run
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nb.cells.insert(0, nbformat.v4.new_code_cell("import sys; print(sys.executable)"))
    path = tmp_path_factory.mktemp("notebook")
    try:
        NotebookClient(
            nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(path)}}
        ).execute()  # raises CellExecutionError on any error
    finally:
        mp.undo()
    return nb


def test_it_runs_in_a_kernel_of_this_environment(executed):
    printed = "".join(o.get("text", "") for o in executed.cells[0].outputs)
    assert printed.strip() == sys.executable
    errors = [o for c in executed.cells if c.cell_type == "code" for o in c.outputs
              if o.output_type == "error"]  # fmt: skip
    assert not errors


def test_every_figure_cell_shows_a_png(executed):
    for cell in tagged(executed, "figure"):
        pngs = [o for o in cell.outputs if "image/png" in o.get("data", {})]
        assert len(pngs) == 1 and pngs[0]["data"]["image/png"], cell.source


def test_the_epoch_table_is_one_output_updated_in_place(executed):
    for cell in tagged(executed, "epoch-table"):
        tables = [o for o in cell.outputs if o.output_type == "display_data"]
        assert len(tables) == 1, [o.output_type for o in cell.outputs]
        assert not [o for o in cell.outputs if o.get("name") == "stderr"]
        table = tables[0]["data"]["text/html"]
        assert table.count("<tr>") > 2 and "stopped: " in table  # rows, then the end
        assert "stopped: " in tables[0]["data"]["text/plain"]
        # everything else the cell printed is its own print() lines, not table rows
        streams = "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream")
        assert "train_loss" not in streams and "stopped:" not in streams


def test_the_chapters_numbers(executed):
    text = "".join(
        o.get("text", "") for c in executed.cells if c.cell_type == "code" for o in c.outputs
    )
    assert "125.0 [6.0, 8.0, 20.0]" in text
    assert "same as the hand-written loop: True" in text
    assert "nearest mean image: 0.9319" in text  # the book: ~0.95 on its own split
