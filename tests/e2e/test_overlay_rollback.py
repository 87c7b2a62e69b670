"""A failure at any step of joining an overlay network leaves nothing behind, here or in etcd.

Host 2 of a two-host cluster is restarted with one failpoint armed (``NSNET_FAILPOINTS``) and
asked to run, or connect, a container on the overlay. The request must fail, and afterwards the
host's links, namespace files, mounts and containers, the cluster store's address claims and
endpoint records, and host 1's FDB entries must be exactly as before.
"""

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.cleanup import mounts_under
from tests.support.daemon import Daemon
from tests.support.etcd import Cluster, cluster_factory, etcd_available, fdb_entries

pytestmark = pytest.mark.skipif(
    not etcd_available(), reason="Debian's etcd (/usr/bin/etcd, package etcd-server) is missing"
)

RUN_STEPS = [
    "connect.allocate",
    "overlay.namespace",
    "overlay.vxlan",
    "connect.veth",
    "connect.address",
    "connect.register",
    "create_container.commit",
]
CONNECT_STEPS = ["connect.allocate", "overlay.vxlan", "connect.register"]


@pytest.fixture
def make_cluster(tmp_path: Path) -> Iterator:
    with cluster_factory(tmp_path, ttl=5) as make:
        yield make


def snapshot(cluster: Cluster, daemon: Daemon) -> dict:
    links = json.loads(daemon.exec_in_host("ip", "-j", "link", "show").stdout)
    run_dir = Path(daemon.root) / "run"
    return {
        "links": sorted(link["ifname"] for link in links),
        "overlay": sorted(path.name for path in (run_dir / "overlay").glob("*")),
        "netns": sorted(path.name for path in (run_dir / "netns").glob("*")),
        "mounts": sorted(mount.mount_point for mount in mounts_under(daemon.root)),
        "containers": daemon.cli("ps", "-aq").stdout.split(),
        "claims": sorted(
            key
            for key in cluster.etcd.keys()
            if key.startswith(("/nsnet/addresses/", "/nsnet/endpoints/"))
        ),
        "peer entries": fdb_entries(cluster.daemons[0], "ov"),
    }


def prepared(make_cluster) -> Cluster:
    cluster = make_cluster(hosts=2)
    one, two = cluster.daemons
    one.cli("network", "create", "-d", "overlay", "ov")
    one.cli("run", "-d", "--name", "anchor", "--network", "ov", "--", "sleep", "600")
    # The gateway bridge is made once and kept (as docker_gwbridge): make it beforehand.
    two.cli("run", "-d", "--name", "first", "--network", "ov", "--", "sleep", "600")
    two.cli("rm", "-f", "first")
    two.cli("run", "-d", "--name", "plain", "--", "sleep", "600")
    return cluster


def test_failed_runs_on_an_overlay_leave_nothing(make_cluster) -> None:
    cluster = prepared(make_cluster)
    two = cluster.daemons[1]
    before = snapshot(cluster, two)
    for step in RUN_STEPS:
        two.restart(env={"NSNET_FAILPOINTS": step})
        completed = two.cli(
            "run", "-d", "--name", "doomed", "--network", "ov", "--", "sleep", "600", check=False
        )
        assert completed.returncode != 0, step
        assert f"injected failure at step '{step}'" in completed.stderr, completed.stderr
        assert snapshot(cluster, two) == before, step
    two.restart(env={})
    two.cli("run", "-d", "--name", "works", "--network", "ov", "--", "sleep", "600")


def test_failed_connects_to_an_overlay_leave_nothing(make_cluster) -> None:
    cluster = prepared(make_cluster)
    two = cluster.daemons[1]
    before = snapshot(cluster, two)
    for step in CONNECT_STEPS:
        two.restart(env={"NSNET_FAILPOINTS": step})
        completed = two.cli("network", "connect", "ov", "plain", check=False)
        assert completed.returncode != 0, step
        assert snapshot(cluster, two) == before, step
    two.restart(env={})
    two.cli("network", "connect", "ov", "plain")
