import pytest
import torch

# One torch thread for the whole suite: the models are small, and on a 2-core (or shared) machine
# torch's thread pool only adds contention.
torch.set_num_threads(1)


@pytest.fixture
def double():
    """Run a test with float64 as torch's default dtype, restoring the previous default after."""
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)
