"""Heavy load and fault tests: loopback only, every loop bounded."""
import resource

import pytest


def pytest_collection_modifyitems(items):
    for item in items:
        if "/stress/" in str(item.fspath):
            item.add_marker(pytest.mark.stress)


@pytest.fixture
def many_descriptors():
    """Raise the soft descriptor limit to the hard one for the test."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    yield hard
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
