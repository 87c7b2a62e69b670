"""The test harness itself: topology, cleanup, leak detection and a dockerd in a namespace."""

import os
import subprocess
import time

import pytest

from tests.support.cleanup import clean_root, mounts_under
from tests.support.dockerd import Dockerd
from tests.support.leaks import Snapshot, assert_no_leaks, differences
from tests.support.netns import NamespacePool, namespaces
from tests.support.topology import HostWithOutside


def ping(namespace, address: str) -> subprocess.CompletedProcess:
    return namespace.run("ping", "-c", "1", "-W", "2", address, check=False)


def test_host_and_outside_reach_each_other(host: HostWithOutside) -> None:
    assert ping(host.host, "192.0.2.100").returncode == 0
    assert ping(host.outside, "192.0.2.1").returncode == 0


def test_host_has_an_uplink_and_a_default_route(host: HostWithOutside) -> None:
    routes = host.host.run("ip", "route", "show").stdout
    assert "default via 192.0.2.100 dev eth0" in routes

    addresses = host.host.run("ip", "-br", "address", "show", "eth0").stdout
    assert "192.0.2.1/24" in addresses
    assert "state UP" in host.host.run("ip", "link", "show", "lo").stdout or "UP" in (
        host.host.run("ip", "-br", "link", "show", "lo").stdout
    )


def test_topology_is_removed_with_its_processes() -> None:
    with HostWithOutside() as topology:
        names = [namespace.name for namespace in topology.namespaces]
        sleeper = topology.outside.popen("sleep", "300")
        # A process the harness did not start itself but that lives in the namespace.
        stray = subprocess.Popen(
            topology.host.nsenter_argv("sleep", "300"), stdin=subprocess.DEVNULL
        )

    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert not any(name in listed for name in names)
    assert sleeper.poll() is not None
    assert stray.wait(timeout=5) is not None
    assert not any(os.path.exists(f"/run/netns/{name}") for name in names)


def test_pool_is_removed_even_when_the_block_fails() -> None:
    created = []
    with pytest.raises(RuntimeError), namespaces("a", "b") as (first, second):
        created = [first.name, second.name]
        raise RuntimeError("the test failed")

    assert created
    assert not any(os.path.exists(f"/run/netns/{name}") for name in created)


def test_clean_root_unmounts_namespace_files_and_kills_their_processes(tmp_path) -> None:
    root = tmp_path / "root"
    (root / "run" / "netns").mkdir(parents=True)
    bind_file = root / "run" / "netns" / "sandbox"
    bind_file.touch()

    with NamespacePool() as pool:
        sandbox = pool.create("sandbox")
        subprocess.run(["mount", "--bind", str(sandbox.path), str(bind_file)], check=True)
        # Started outside the pool, as a daemon's supervised process would be.
        orphan = subprocess.Popen(sandbox.nsenter_argv("sleep", "300"), stdin=subprocess.DEVNULL)
        time.sleep(0.2)
        assert mounts_under(root)

        assert clean_root(root) == []

        assert orphan.wait(timeout=5) is not None
        assert mounts_under(root) == []
        assert not bind_file.exists()


def test_leak_snapshot_names_what_leaked() -> None:
    before = Snapshot.take()
    with NamespacePool() as pool:
        leaked = pool.create("leak")
        found = differences(before, Snapshot.take())
        assert f"leaked netns: {leaked.name}" in found
        assert any(f"/run/netns/{leaked.name}" in item for item in found)
        with pytest.raises(AssertionError, match=leaked.name):
            assert_no_leaks(before, settle=0)
    assert_no_leaks(before)


def test_dockerd_in_a_namespace_manages_networks(dockerd: Dockerd) -> None:
    listed = dockerd.docker("network", "ls", "--format", "{{.Name}} {{.Driver}}").stdout
    assert set(listed.split("\n")) >= {"bridge bridge", "host host", "none null"}

    dockerd.docker("network", "create", "--subnet", "198.51.100.0/24", "harness-net")
    inspected = dockerd.api("GET", "/networks/harness-net").json()
    assert inspected["IPAM"]["Config"] == [{"Subnet": "198.51.100.0/24"}]
    assert inspected["Driver"] == "bridge"
    bridge = "br-" + inspected["Id"][:12]
    assert bridge in dockerd.exec_in_host("ip", "-br", "link").stdout

    dockerd.docker("network", "rm", "harness-net")
    assert dockerd.api("GET", "/networks/harness-net").status == 404
    assert bridge not in dockerd.exec_in_host("ip", "-br", "link").stdout

    # Its firewall rules went into its own namespace, not the machine's.
    assert "DOCKER" in dockerd.exec_in_host("iptables-save").stdout


def test_dockerd_leaves_nothing_after_a_crash(tmp_path) -> None:
    if not os.access("/usr/sbin/dockerd", os.X_OK):
        pytest.skip("Debian's dockerd (/usr/sbin/dockerd, package docker.io) is not installed")

    with HostWithOutside() as topology:
        docker = Dockerd(topology, tmp_path / "dockerd").start()
        assert mounts_under(docker.root)
        docker.process.kill()
        docker.process.wait()
        docker.close()
        assert mounts_under(docker.root) == []
