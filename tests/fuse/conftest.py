"""Single torch thread: these small models gain nothing from threads, and on the shared
2-core CI machine oversubscribed threads make wall times erratic."""
import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
