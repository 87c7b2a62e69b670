"""The sandbox's mount namespace: one per container, joined by every process started in it.

As in Docker, a mount made by a container's process is seen by a later exec in the same
container and by no one else (neither the host nor another container); /sys shows the
sandbox's interfaces; /etc/resolv.conf and /etc/hosts are the container's own files, rewritten
in place, so that a process that runs all along sees every change. The mounts are made on
directories under the test's tmp_path: container processes share the host's file system.
"""

import os
import secrets
import subprocess
from ipaddress import IPv4Network
from pathlib import Path

import pytest

from nsnet.dns.files import HOSTS_FILE, RESOLV_CONF_FILE
from nsnet.errors import Unavailable
from nsnet.kernel import namespace
from nsnet.models import ContainerCreate, IpamConfig, NetworkCreate
from tests.kernel.test_engine_support import (
    EngineThread,
    checkout_environment,
    engine_fixture,  # noqa: F401 (the fixture)
    snapshot,
    wait_until,
)
from tests.support.cleanup import mountinfo, mounts_under

FILES = (RESOLV_CONF_FILE, HOSTS_FILE)


def mount_namespace_of(pid: int | str = "self") -> str:
    return os.readlink(f"/proc/{pid}/ns/mnt")


def mounted_inside(runner: EngineThread, container: str, directory: Path) -> bool:
    """Whether ``directory`` is a mount point in the container's view."""
    table = runner.exec(container, "cat", "/proc/self/mountinfo", check=True).stdout
    return any(line.split()[4] == str(directory) for line in table.splitlines())


def interfaces(runner: EngineThread, container: str) -> set[str]:
    """What /sys/class/net lists inside the container."""
    return set(runner.exec(container, "ls", "/sys/class/net", check=True).stdout.split())


def test_a_mount_made_by_the_main_process_is_seen_by_exec_and_nowhere_else(
    engine: EngineThread, tmp_path: Path
) -> None:
    shared, ready = tmp_path / "shared", tmp_path / "ready"
    shared.mkdir()
    script = (
        f"mount -t tmpfs nsnet-test {shared} && touch {shared}/made && touch {ready} && "
        "exec sleep 300"
    )
    engine.create_container(ContainerCreate(name="other", command=["sleep", "300"]))
    other = engine.start("other")
    before_maker = snapshot(engine)
    engine.create_container(ContainerCreate(name="maker", command=["sh", "-c", script]))

    maker = engine.start("maker")
    assert wait_until(ready.exists), engine.logs("maker")

    # The exec joins the main process's mount namespace, and sees its mount.
    joined = engine.exec("maker", "readlink", "/proc/self/ns/mnt", check=True).stdout.strip()
    assert joined == mount_namespace_of(maker.pid)
    assert engine.exec("maker", "test", "-e", f"{shared}/made").returncode == 0
    assert mounted_inside(engine, "maker", shared)
    # Neither the host nor another container does.
    assert not (shared / "made").exists()
    assert not any(mount.mount_point == str(shared) for mount in mountinfo())
    assert engine.exec("other", "test", "-e", f"{shared}/made").returncode == 1
    assert not mounted_inside(engine, "other", shared)
    assert mount_namespace_of(other.pid) != mount_namespace_of(maker.pid)

    # A mount made by one exec is seen by the next one.
    second = tmp_path / "second"
    second.mkdir()
    engine.exec("maker", "mount", "-t", "tmpfs", "nsnet-test", str(second), check=True)
    engine.exec("maker", "touch", f"{second}/by-exec", check=True)
    assert engine.exec("maker", "test", "-e", f"{second}/by-exec").returncode == 0
    assert not (second / "by-exec").exists()

    # Removal leaves no mount, file or process behind (the leak check proves the rest).
    maker_id = maker.id
    engine.remove_container("maker", force=True)

    assert wait_until(lambda: snapshot(engine) == before_maker)
    assert not any(maker_id in mount.mount_point for mount in mounts_under(engine.root))
    assert not any(path.name.startswith(maker_id) for path in engine.namespace_files())


def test_sys_shows_the_sandbox_interfaces(engine: EngineThread) -> None:
    engine.create_network(
        NetworkCreate(name="second", ipam=[IpamConfig(subnet=IPv4Network("10.72.0.0/24"))])
    )
    engine.create_container(ContainerCreate(name="two"))
    engine.create_container(ContainerCreate(name="alone", network="none"))

    assert interfaces(engine, "two") == {"lo", "eth0"}
    assert interfaces(engine, "alone") == {"lo"}
    engine.connect("second", "two")
    assert interfaces(engine, "two") == {"lo", "eth0", "eth1"}  # sysfs follows the namespace


def test_a_running_process_sees_resolv_conf_and_hosts_change_in_place(
    engine: EngineThread, tmp_path: Path
) -> None:
    engine.create_network(
        NetworkCreate(name="front", ipam=[IpamConfig(subnet=IPv4Network("10.71.0.0/24"))])
    )
    trigger, seen = tmp_path / "trigger", tmp_path / "seen"
    # One process all along, reading both files again each time it is asked to.
    script = (
        f"while :; do if [ -e {trigger} ]; then cat /etc/hosts /etc/resolv.conf > {seen}.new"
        f" && mv {seen}.new {seen} && rm {trigger}; fi; sleep 0.05; done"
    )
    engine.create_container(ContainerCreate(name="watcher", command=["sh", "-c", script]))
    pid = engine.start("watcher").pid

    def read_again() -> str:
        seen.unlink(missing_ok=True)
        trigger.touch()
        assert wait_until(seen.exists), engine.logs("watcher")
        return seen.read_text()

    first = read_again()
    assert "172.17.0.2\t" in first and "10.71.0." not in first, first
    assert "nameserver 127.0.0.11" not in first, first

    engine.connect("front", "watcher")
    connected = read_again()
    assert "10.71.0.2\t" in connected, connected
    assert "nameserver 127.0.0.11" in connected.splitlines(), connected

    engine.disconnect("front", "watcher")
    disconnected = read_again()
    assert "10.71.0." not in disconnected and "nameserver 127.0.0.11" not in disconnected
    assert engine.get_container("watcher").pid == pid  # the same process all along


def test_container_mode_has_its_own_mount_namespace_over_the_others_network(
    engine: EngineThread, tmp_path: Path
) -> None:
    owner = engine.create_container(ContainerCreate(name="owner", command=["sleep", "300"]))
    engine.start("owner")
    guest = engine.create_container(ContainerCreate(name="guest", network="container:owner"))
    private = tmp_path / "private"
    private.mkdir()

    engine.exec("guest", "mount", "-t", "tmpfs", "nsnet-test", str(private), check=True)

    assert guest.mnt_path and guest.mnt_path != owner.mnt_path
    assert mounted_inside(engine, "guest", private)
    assert not mounted_inside(engine, "owner", private)
    # The other's interfaces, hostname and files.
    assert interfaces(engine, "guest") == interfaces(engine, "owner") == {"lo", "eth0"}
    for path in ("/etc/hosts", "/etc/resolv.conf"):
        mine = engine.exec("guest", "cat", path, check=True).stdout
        assert mine == engine.exec("owner", "cat", path, check=True).stdout
        assert mine  # written, not the empty file made before the first write
    assert engine.exec("guest", "hostname", check=True).stdout.strip() == owner.id[:12]

    engine.remove_container("guest")

    assert not (engine.mntns_dir / f"{guest.id}.mnt").exists()
    assert mounted_inside(engine, "owner", Path(os.path.realpath("/etc/hosts")))


def test_host_mode_processes_stay_in_the_hosts_mount_namespace(engine: EngineThread) -> None:
    engine.create_container(ContainerCreate(name="hosted", network="host"))

    joined = engine.exec("hosted", "readlink", "/proc/self/ns/mnt", check=True).stdout.strip()

    assert joined == mount_namespace_of()
    assert not engine.namespace_files()


def test_exec_keeps_the_working_directory(engine: EngineThread, tmp_path: Path) -> None:
    engine.create_container(ContainerCreate(name="worker"))
    argv = ["nsenter", f"--net={engine.host_path}", *engine.enter_command("worker", ["pwd"])]

    completed = subprocess.run(
        argv, cwd=tmp_path, capture_output=True, text=True, env=checkout_environment()
    )

    assert (completed.returncode, completed.stdout.strip()) == (0, str(tmp_path)), completed


def test_a_mount_namespace_that_cannot_be_made_leaves_nothing(
    engine: EngineThread, tmp_path: Path
) -> None:
    container = engine.create_container(ContainerCreate(name="base"))
    before = snapshot(engine)
    sandboxes = engine.engine.sandboxes
    missing = tmp_path / "missing"

    # A bind that fails inside the new namespace; a file that is already there.
    with pytest.raises(Unavailable, match="No such file or directory"):
        engine.call(
            sandboxes.create_mount, secrets.token_hex(32), container.netns_path, missing, missing
        )
    resolv_conf, hosts = (engine.paths.container_dir(container.id) / name for name in FILES)
    with pytest.raises(Unavailable, match="File exists"):
        engine.call(sandboxes.create_mount, container.id, container.netns_path, resolv_conf, hosts)

    assert snapshot(engine) == before
    assert namespace.is_mounted_namespace(container.mnt_path)  # the existing one untouched
