"""The notebooks only read results/ and run in seconds: each is executed here, and each must show the values
it exists for (read back from the same results files), not just any output."""
from pathlib import Path

import nbformat
import pandas as pd
import pytest
from nbclient import NotebookClient

NB_DIR = Path(__file__).resolve().parent.parent / "notebooks"
RESULTS = NB_DIR.parent / "results"


def _expected(name: str) -> list[str]:
    """Strings the executed notebook's outputs must contain, taken from the committed results."""
    if name.startswith("01"):
        pvo = pd.read_csv(RESULTS / "paper_vs_ours.csv")
        s4 = pvo[(pvo.model == "awsrn-s") & (pvo.scale == 4) & (pvo.dataset == "Set5")].iloc[0]
        return ["397482", f"{s4.psnr:.2f}", "image/png"]            # complexity, our S x4 Set5, the figures
    if name.startswith("02"):
        aw = pd.read_csv(RESULTS / "awms_weights.csv")
        return [aw.checkpoint.iloc[0], "significant at 95%"]          # lambda table, the significance verdicts
    if name.startswith("03"):
        cpu = pd.read_csv(RESULTS / "latency_cpu.csv")
        l4 = cpu[(cpu.model == "awsrn-l") & (cpu.scale == 4) & cpu.deploy].iloc[0]
        return ["deploy", f"{round(l4.latency_ms, 2):.2f}"]           # the CPU latency pivot, AWSRN-L x4 deploy
    return []


@pytest.mark.parametrize("path", sorted(NB_DIR.glob("*.ipynb")), ids=lambda p: p.name)
def test_notebook_executes_and_shows_its_results(path):
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(NB_DIR)}}).execute()
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.get("outputs") for c in code[1:]), "a cell after the imports printed nothing"
    text = "\n".join(str(o.get("data", o.get("text", ""))) for c in code for o in c.get("outputs", []))
    for expected in _expected(path.name):
        assert expected in text, f"{path.name}: {expected!r} not in the outputs"
