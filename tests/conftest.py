"""Shared test set-up: offline, isolated caches, small thread counts, determinism."""
import os
import sys
import tempfile

# Test-support modules next to the tests import by their bare names.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

# Never reach the network from tests; keep caches out of the user's home.
os.environ.setdefault('HF_HUB_OFFLINE', '1')
os.environ.setdefault('TRANSFORMERS_OFFLINE', '1')
os.environ.setdefault('VITAMIN_DENSE_HOME', tempfile.mkdtemp(prefix='vitamin-dense-test-home-'))

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    yield


@pytest.fixture(scope='session')
def tiny_model_name() -> str:
    """The tiny ViTamin (64 px window, 2 blocks): real code path, random weights."""
    return 'ViTamin-Tiny'


@pytest.fixture
def one_thread():
    """Short training runs of tiny models: their tensors are too small to gain from threads
    (mmcv's CPU RoIAlign / NMS are single-threaded anyway), and two OpenMP threads per
    process are several times slower than one when other processes share the cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
