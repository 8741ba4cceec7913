"""notebooks/eda.ipynb runs top to bottom on the real Telco data, and is committed clean.

Executed with nbclient in a kernel of THIS interpreter (the project's venv): a
kernelspec written to a temporary JUPYTER_PATH, so whatever `python3` kernel a
developer has registered elsewhere is never used. The notebook's own `assert` lines
(row count, churn by contract, leakage checks) fail the test if a finding stops
holding; a cell error fails it with the cell and traceback.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from churn.settings import PROJECT_ROOT

NOTEBOOK = PROJECT_ROOT / "notebooks" / "eda.ipynb"
KERNEL = "churn-venv"


def _read(path: Path) -> nbformat.NotebookNode:
    nb: nbformat.NotebookNode = nbformat.read(path, as_version=4)  # type: ignore[no-untyped-call]
    return nb


@pytest.fixture(scope="module")
def executed(
    tmp_path_factory: pytest.TempPathFactory, real_telco_csv: Path
) -> nbformat.NotebookNode:
    """The notebook after a full run in the venv's kernel on the real file.

Real data only: the notebook's findings (and its own asserts) are about the
published dataset, so synthetic customers would fail them by design."""
    jupyter = tmp_path_factory.mktemp("jupyter")
    spec = jupyter / "kernels" / KERNEL
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(
        json.dumps(
            {
                "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                "display_name": "churn-mlops venv",
                "language": "python",
            }
        )
    )
    workdir = tmp_path_factory.mktemp("notebook_cwd")  # the notebook must not need the CWD
    nb = _read(NOTEBOOK)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("JUPYTER_PATH", str(jupyter))
        mp.setenv("CHURN_TELCO_CSV", str(real_telco_csv))
        # Figures as inline PNGs, whatever an earlier import (e.g. streamlit) set.
        mp.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
        mp.setenv(
            "PYTHONPATH", os.pathsep.join([str(PROJECT_ROOT), os.environ.get("PYTHONPATH", "")])
        )
        client = NotebookClient(
            nb,
            kernel_name=KERNEL,
            timeout=180,
            resources={"metadata": {"path": str(workdir)}},
        )
        client.execute()
    return nb


def _code_cells(nb: nbformat.NotebookNode) -> list[nbformat.NotebookNode]:
    return [c for c in nb.cells if c.cell_type == "code"]


def test_committed_notebook_is_valid_and_has_no_outputs() -> None:
    nb = _read(NOTEBOOK)
    nbformat.validate(nb)
    for cell in _code_cells(nb):
        assert cell.outputs == [] and cell.execution_count is None, cell.source[:80]


def test_data_comes_through_the_project_loader() -> None:
    source = "\n".join(c.source for c in _code_cells(_read(NOTEBOOK)))
    assert "from churn.data.telco import load_telco" in source and "load_telco()" in source
    assert "read_csv" not in source and ".csv" not in source  # no path of its own


def test_notebook_runs_top_to_bottom_on_the_real_data(executed: nbformat.NotebookNode) -> None:
    cells = _code_cells(executed)
    assert all(c.execution_count is not None for c in cells)
    outputs = [o for c in cells for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert "7043 customers, 1869 churners (26.5%)" in text
    assert "total / (tenure x monthly): median 1.000" in text
    figures = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(figures) >= 5  # distributions, counts, segments, correlations, single-feature AUC
