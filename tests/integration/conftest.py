"""Fixtures shared by the integration tests."""

import pytest

from cluster import Cluster


@pytest.fixture
def cluster(tmp_path):
    """A 3-node 2+1 cluster of real node processes, stopped at the end."""
    cl = Cluster(tmp_path / "c", nodes=3, ec="2+1")
    yield cl
    cl.stop()
