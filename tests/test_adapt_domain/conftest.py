"""Shared settings for the domain-adversarial tests."""

import pytest
import torch


@pytest.fixture(autouse=True, scope="module")
def one_intra_op_thread():
    """These tests run many tiny ops; on 2 shared cores, intra-op thread hand-offs make each op
    ~50x slower than running it on one thread. Restored after each test module."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
