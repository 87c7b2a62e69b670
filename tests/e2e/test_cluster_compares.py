"""The comparisons the cluster store's races rest on, as a real etcd evaluates them.

tests/unit/test_cluster_store.py decides races against an in-memory etcd that evaluates these
comparisons the way nsnet expects etcd 3.4 to; this file checks that expectation against
Debian's etcd itself, over the gateway nsnet talks to.
"""

from collections.abc import Iterator
from pathlib import Path

import pytest

from nsnet.cluster import etcd
from nsnet.cluster.etcd import Etcd
from nsnet.kernel import namespace
from tests.support.etcd import ETCD_ADDRESS, ETCD_PORT, Underlay, etcd_available
from tests.support.etcd import Etcd as EtcdServer
from tests.support.netns import NamespacePool

pytestmark = pytest.mark.skipif(
    not etcd_available(), reason="Debian's etcd (/usr/bin/etcd, package etcd-server) is missing"
)


@pytest.fixture
def client(tmp_path: Path) -> Iterator[Etcd]:
    """nsnet's own etcd client, its sockets inside the namespace of a fresh etcd."""
    with NamespacePool() as pool:
        with EtcdServer(Underlay(pool), tmp_path / "etcd") as server:
            with namespace.entered(server.netns.path):
                connection = Etcd(ETCD_ADDRESS, ETCD_PORT, timeout=5)
                try:
                    yield connection
                finally:
                    connection.close()


def holds(client: Etcd, compare: dict) -> bool:
    succeeded, _ = client.transaction([compare], [])
    return succeeded


def test_an_empty_prefix_compares_as_one_absent_key(client: Etcd) -> None:
    assert holds(client, etcd.prefix_empty("/t/endpoints/n1/"))
    client.transaction([], [etcd.put("/t/endpoints/n1/e1", "x")])
    assert not holds(client, etcd.prefix_empty("/t/endpoints/n1/"))
    assert holds(client, etcd.prefix_empty("/t/endpoints/n2/"))  # a neighbour's prefix
    client.delete("/t/endpoints/n1/e1")
    assert holds(client, etcd.prefix_empty("/t/endpoints/n1/"))


def test_a_prefix_unchanged_since_a_read_fails_after_any_write_under_it(client: Etcd) -> None:
    client.transaction([], [etcd.put("/t/networks/a", "1")])
    revision, _ = client.range("/t/networks/")
    assert holds(client, etcd.prefix_unchanged_since("/t/networks/", revision))

    client.transaction([], [etcd.put("/t/other", "1")])  # outside the prefix
    assert holds(client, etcd.prefix_unchanged_since("/t/networks/", revision))

    client.transaction([], [etcd.put("/t/networks/b", "1")])  # a new key under it
    assert not holds(client, etcd.prefix_unchanged_since("/t/networks/", revision))
    revision, _ = client.range("/t/networks/")
    client.transaction([], [etcd.put("/t/networks/a", "2")])  # an existing key rewritten
    assert not holds(client, etcd.prefix_unchanged_since("/t/networks/", revision))


def test_present_and_absent(client: Etcd) -> None:
    assert holds(client, etcd.absent("/t/k")) and not holds(client, etcd.present("/t/k"))
    client.transaction([], [etcd.put("/t/k", "v")])
    assert holds(client, etcd.present("/t/k")) and not holds(client, etcd.absent("/t/k"))
