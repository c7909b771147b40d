import os

import pytest
import torch

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


@pytest.fixture(scope="session")
def shared_data():
    """Path to ../shared/data; tests that need a file skip with the reason when it is absent."""
    from pathlib import Path

    return Path(__file__).resolve().parents[2] / "shared" / "data"
