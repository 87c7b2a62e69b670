"""The test harness itself: topology, cleanup, leak detection, nsnetd and dockerd runners."""

import json
import os
import subprocess
import sys
import textwrap
import time

import pytest

from nsnet.kernel import namespace as kernel_namespace
from tests.support.cleanup import (
    clean_root,
    mounts_under,
    network_namespaces_under,
    pids_with_environment,
)
from tests.support.daemon import Daemon, DaemonError
from tests.support.dockerd import Dockerd
from tests.support.leaks import Snapshot, assert_no_leaks, differences, foreign_harness_items
from tests.support.netns import (
    NamespacePool,
    created_directories,
    created_names,
    namespaces,
    pids_in_namespaces,
)
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

    for namespace in host.namespaces:
        loopback = json.loads(namespace.run("ip", "-j", "link", "show", "lo").stdout)[0]
        assert "UP" in loopback["flags"]


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


def test_clean_root_kills_processes_in_sandbox_mount_namespaces(tmp_path) -> None:
    ignore = foreign_harness_items(created_names, created_directories, str(tmp_path))
    before = Snapshot.take()
    root = tmp_path / "root"
    mntns_dir = root / "run" / "mntns"
    kernel_namespace.ensure_private_directory(mntns_dir)
    mnt_file = mntns_dir / "sandbox.mnt"
    (tmp_path / "hosts").write_text("192.0.2.7\tsandboxed\n")

    with NamespacePool() as pool:
        sandbox = pool.create("sandbox")
        binds = [(tmp_path / "hosts", "/etc/hosts")]
        kernel_namespace.create_mount(mnt_file, sandbox.path, [mntns_dir], binds)
        # In the sandbox's mount namespace only: its network namespace is the machine's.
        orphan = subprocess.Popen(
            ["nsenter", f"--mount={mnt_file}", "sh", "-c", "cat /etc/hosts; exec sleep 300"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert orphan.stdout.readline() == "192.0.2.7\tsandboxed\n"
        leaked = differences(before, Snapshot.take(), ignore)
        assert any(str(mnt_file) in item and "nsfs mnt:[" in item for item in leaked), leaked

        assert clean_root(root) == []

        assert orphan.wait(timeout=5) is not None
        orphan.stdout.close()
        assert mounts_under(root) == []
        assert not mnt_file.exists()
    assert_no_leaks(before, ignore)


def test_leak_snapshot_names_what_leaked() -> None:
    # Other test runs on this machine may add their own namespaces meanwhile: only ours count.
    ignore = foreign_harness_items(created_names, created_directories)
    before = Snapshot.take()
    with NamespacePool() as pool:
        leaked = pool.create("leak")
        found = differences(before, Snapshot.take(), ignore)
        assert f"leaked netns: {leaked.name}" in found
        assert any(f"/run/netns/{leaked.name}" in item for item in found)
        with pytest.raises(AssertionError, match=leaked.name):
            assert_no_leaks(before, ignore, settle=0)
    assert_no_leaks(before, ignore)


def test_leaks_of_other_test_runs_are_told_apart() -> None:
    ignore = foreign_harness_items(
        {"nsnt-mine-0badcafe"}, {"/tmp/nsnt-dockerd-mine"}, "/tmp/pytest-of-root/pytest-7"
    )

    assert ignore("netns", "nsnt-theirs-12345678")
    assert not ignore("netns", "nsnt-mine-0badcafe")
    assert not ignore("netns", "somebody-else")
    assert ignore("mounts", "/run/netns/nsnt-theirs-12345678 (nsfs net:[4026532999])")
    assert not ignore("mounts", "/run/netns/nsnt-mine-0badcafe (nsfs net:[4026532999])")
    assert ignore("mounts", "/tmp/nsnt-dockerd-theirs/exec/netns/x (nsfs net:[1])")
    assert ignore("mounts", "/tmp/experiment/run/netns/x (nsfs net:[1])")
    assert ignore("mounts", "/tmp/pytest-of-root/pytest-70/test_a0/run/netns/x (nsfs net:[1])")
    assert not ignore("mounts", "/tmp/nsnt-dockerd-mine/exec/netns/x (nsfs net:[1])")
    assert not ignore("mounts", "/tmp/pytest-of-root/pytest-7/test_a0/run/netns/x (nsfs net:[1])")
    assert not ignore("mounts", "/run/nsnet/netns/x (nsfs net:[1])")
    assert not ignore("mounts", "/var/run/netns/x (nsfs net:[1])")
    assert not ignore("links", "nsnt-theirs-12345678")


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


# A stand-in for nsnetd: answers GET /_ping on $NSNET_ROOT/run/nsnetd.sock and, like a daemon
# that supervises `run -d` processes, starts a child in its own session that outlives it.
FAKE_DAEMON = textwrap.dedent(
    """
    import http.server, os, socketserver, subprocess, sys

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200 if self.path == "/_ping" else 404)
            self.send_header("API-Version", "1.41")
            self.end_headers()
            self.wfile.write(b"OK")

        def address_string(self):
            return "unix"

    class Server(socketserver.UnixStreamServer):
        def get_request(self):
            request, _ = super().get_request()
            return request, ("unix", 0)

    run_dir = os.path.join(os.environ["NSNET_ROOT"], "run")
    os.makedirs(run_dir, exist_ok=True)
    socket_path = os.path.join(run_dir, "nsnetd.sock")
    if os.path.exists(socket_path):
        os.unlink(socket_path)
    subprocess.Popen(["sleep", "300"], start_new_session=True)
    print("fake nsnetd ready", flush=True)
    Server(socket_path, Handler).serve_forever()
    """
)


def test_daemon_runner_starts_restarts_and_cleans_up(host: HostWithOutside, tmp_path) -> None:
    script = tmp_path / "fake_nsnetd.py"
    script.write_text(FAKE_DAEMON)
    daemon = Daemon(host, tmp_path / "nsnet", program=[sys.executable, str(script)])

    with daemon:
        first_pid = daemon.pid
        answer = daemon.api("GET", "/_ping")
        assert (answer.status, answer.text, answer.headers["api-version"]) == (200, "OK", "1.41")
        inode = os.stat(f"/proc/{first_pid}/ns/net").st_ino
        assert inode == host.host.inode

        shown = daemon.exec_in_host("ip", "-br", "address", "show", "eth0").stdout
        assert "192.0.2.1/24" in shown
        assert daemon.exec_in_host("sh", "-c", "echo $NSNET_ROOT").stdout.strip() == str(
            daemon.root
        )

        daemon.kill9()
        assert daemon.pid is None
        daemon.restart(env={"NSNET_FAILPOINTS": "connect.veth"})
        assert daemon.pid not in (None, first_pid)
        with open(f"/proc/{daemon.pid}/environ", "rb") as environ:
            assert b"NSNET_FAILPOINTS=connect.veth" in environ.read().split(b"\0")
        children = pids_with_environment("NSNET_ROOT", str(daemon.root))
        # The two daemons' supervised children, the first one surviving its daemon's crash.
        assert len(children) >= 3

    assert pids_with_environment("NSNET_ROOT", str(daemon.root)) == []
    assert "fake nsnetd ready" in daemon.console_log.read_text()


def test_daemon_runner_reports_a_daemon_that_dies(host: HostWithOutside, tmp_path) -> None:
    daemon = Daemon(
        host,
        tmp_path / "nsnet",
        program=[sys.executable, "-c", "import sys; print('no engine here'); sys.exit(3)"],
    )

    with pytest.raises(DaemonError, match="exited with 3(.|\\n)*no engine here"):
        daemon.start()


def test_daemon_fixture_runs_the_real_nsnetd(daemon: Daemon) -> None:
    listed = daemon.cli("network", "ls").stdout
    assert {"bridge", "host", "none"} <= {line.split()[1] for line in listed.splitlines()[1:]}

    through_docker = daemon.docker("network", "ls", "--format", "{{.Name}}").stdout
    assert {"bridge", "host", "none"} <= set(through_docker.split())

    # nsnetd runs in the host namespace, so its bridge is there and not in the machine's.
    assert "nsnet0" in daemon.exec_in_host("ip", "-br", "link").stdout


def test_daemon_crash_with_a_detached_container_leaves_nothing(
    host: HostWithOutside, tmp_path
) -> None:
    daemon = Daemon(host, tmp_path / "nsnet").start()
    try:
        daemon.cli("run", "-d", "--name", "sleeper", "--", "sleep", "300")
        assert mounts_under(daemon.root)

        daemon.kill9()
        # The container's process outlives its daemon, as designed.
        assert pids_with_environment("NSNET_ROOT", str(daemon.root)) or network_pids(daemon)
    finally:
        daemon.close()

    assert mounts_under(daemon.root) == []
    assert pids_with_environment("NSNET_ROOT", str(daemon.root)) == []


def network_pids(daemon: Daemon) -> list[int]:
    """Processes inside any namespace file under the daemon's root."""
    return pids_in_namespaces(network_namespaces_under(daemon.root))
