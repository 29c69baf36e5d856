import os
from pathlib import Path

import pytest
import torch

# one worker per core (pytest-xdist): each worker's torch uses its share of the cores, never more than 2
_workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
torch.set_num_threads(max(1, min(2, (os.cpu_count() or 1) // _workers)))


@pytest.fixture(scope="session")
def data_root() -> Path:
    """The benchmark data root (AWSRN_DATA); tests that need it skip with the reason when it is unset."""
    root = os.environ.get("AWSRN_DATA")
    if not root:
        pytest.skip("AWSRN_DATA is not set: no benchmark data root (CI sets it to ../shared/data)")
    path = Path(root)
    if not (path / "benchmark").is_dir():
        pytest.skip(f"AWSRN_DATA={root} has no benchmark/ folder")
    return path


@pytest.fixture(autouse=True)
def _seeded():
    """Every test draws the same random inputs on every run and machine order, so a tolerance that
    passes once passes again (tests that need their own stream pass a Generator)."""
    torch.manual_seed(0)


def pytest_collection_modifyitems(config, items):
    """The tests marked slow run first (in their file order), so that pytest-xdist's workers, which take the
    queue in this order, do not end with one long test on one core while the other waits."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)
