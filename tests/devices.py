"""The mark for tests that need CUDA. The suite hides CUDA unless CARDLOOP_TEST_CUDA=1 (tests/conftest.py)."""

import pytest
import torch

needs_cuda = pytest.mark.skipif(
    not torch.cuda.is_available(),
    reason="needs a CUDA device (on a GPU machine: bash tests/gpu_check.sh, since the suite hides CUDA otherwise)")
