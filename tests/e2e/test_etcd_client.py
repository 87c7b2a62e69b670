"""nsnet's etcd client against Debian's etcd itself, over the gateway nsnet talks to.

The comparisons the cluster store's races rest on: tests/unit/test_cluster_store.py decides
races against an in-memory etcd that evaluates them the way nsnet expects etcd 3.4 to, and this
file checks that expectation. And the watch the overlay agent follows: it must end, loudly,
when the store goes away, or the agent would wait on a dead stream.
"""

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from nsnet.cluster import etcd
from nsnet.cluster.etcd import Etcd
from nsnet.errors import Unavailable
from nsnet.kernel import namespace
from tests.support.etcd import ETCD_ADDRESS, ETCD_PORT, Underlay, etcd_available
from tests.support.etcd import Etcd as EtcdServer
from tests.support.netns import NamespacePool

pytestmark = pytest.mark.skipif(
    not etcd_available(), reason="Debian's etcd (/usr/bin/etcd, package etcd-server) is missing"
)


WATCH_DEADLINE = 5.0  # seconds for a watch to end once cancelled or once its store is gone


@pytest.fixture
def server(tmp_path: Path) -> Iterator[EtcdServer]:
    """A fresh etcd in a namespace of its own."""
    with NamespacePool() as pool:
        with EtcdServer(Underlay(pool), tmp_path / "etcd") as server:
            yield server


@pytest.fixture
def client(server: EtcdServer) -> Iterator[Etcd]:
    """nsnet's own etcd client; the test runs inside the etcd's namespace, as its sockets must."""
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


# Watches


def watch_in_thread(client: Etcd, prefix: str, start: int):
    """Follow a watch on a thread of its own; (events seen, outcome, cancel, thread)."""
    events, cancel = client.watch(prefix, start)
    seen: list[tuple[str, str, bytes]] = []
    outcome: list[BaseException | str] = []

    def follow() -> None:
        try:
            for event in events:
                seen.append((event["type"], event["key"], event["value"]))
            outcome.append("ended")
        except Unavailable as error:
            outcome.append(error)

    thread = threading.Thread(target=follow, daemon=True)
    thread.start()
    return seen, outcome, cancel, thread


def wait_until(condition, what: str) -> None:
    deadline = time.monotonic() + WATCH_DEADLINE
    while not condition():
        assert time.monotonic() < deadline, f"{what}: not within {WATCH_DEADLINE} s"
        time.sleep(0.02)


def test_a_watch_sees_changes_from_its_revision_on_and_ends_quietly_when_cancelled(
    client: Etcd, server: EtcdServer
) -> None:
    client.transaction([], [etcd.put("/t/w/before", "0")])
    revision, _ = client.range("/t/w/")
    client.transaction([], [etcd.put("/t/w/a", "1")])  # after the read, before the watch
    seen, outcome, cancel, thread = watch_in_thread(client, "/t/w/", revision + 1)
    client.delete("/t/w/a")
    client.transaction([], [etcd.put("/t/elsewhere", "x")])  # outside the prefix
    wait_until(lambda: len(seen) == 2, "the watch delivers both changes")
    assert seen == [("PUT", "/t/w/a", b"1"), ("DELETE", "/t/w/a", b"")]

    cancel()
    thread.join(WATCH_DEADLINE)
    assert not thread.is_alive(), "a cancelled watch still blocks its thread"
    assert outcome == ["ended"]


def test_a_watch_raises_when_its_store_goes_away(client: Etcd, server: EtcdServer) -> None:
    revision, _ = client.range("/t/w/")
    seen, outcome, cancel, thread = watch_in_thread(client, "/t/w/", revision + 1)
    try:
        server.stop()
        thread.join(WATCH_DEADLINE)
        assert not thread.is_alive(), "the watch of a stopped store never ended"
    finally:
        cancel()
    assert len(outcome) == 1 and isinstance(outcome[0], Unavailable), outcome
    assert f"the watch of /t/w/ broke: cluster store {client.url}" in str(outcome[0]) or (
        f"the watch of /t/w/ ended: cluster store {client.url} left it" in str(outcome[0])
    ), outcome[0]
    assert seen == []


def test_a_watch_from_a_compacted_revision_raises_naming_the_compaction(
    client: Etcd, server: EtcdServer
) -> None:
    for value in "123":
        client.transaction([], [etcd.put("/t/w/a", value)])
    revision, _ = client.range("/t/w/")
    server.call(lambda gateway: gateway.post(gateway.get_url("/kv/compaction"), json={
        "revision": revision
    }))  # fmt: skip
    seen, outcome, cancel, thread = watch_in_thread(client, "/t/w/", revision - 1)
    try:
        thread.join(WATCH_DEADLINE)
        assert not thread.is_alive(), "a watch of compacted history never ended"
    finally:
        cancel()
    assert len(outcome) == 1 and isinstance(outcome[0], Unavailable), outcome
    assert "was cancelled by cluster store" in str(outcome[0]), outcome[0]
    assert f"revision {revision} and older were compacted" in str(outcome[0]), outcome[0]
