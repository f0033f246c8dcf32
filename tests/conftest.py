import sys
from pathlib import Path

import pytest
import torch

# the entry points' helpers (scripts/app.py, runs.py, train.py) import each other by module name
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
