"""Processes, restarts and reconciliation: what survives closing the engine, and what is cleaned.

A "restart" closes the Engine and opens a new one on the same root in the same host namespace,
as a daemon restart does; processes started detached keep running in between.
"""

import os
import secrets
import signal
from ipaddress import IPv4Network
from pathlib import Path

import pytest

from nsnet.engine import UNKNOWN_EXIT_CODE
from nsnet.errors import Conflict
from nsnet.kernel import namespace
from nsnet.models import ContainerCreate, IpamConfig, NetworkCreate
from tests.kernel.test_engine_support import (
    EngineThread,
    engine_fixture,  # noqa: F401 (the fixture)
    snapshot,
    wait_until,
)
from tests.support.cleanup import mounts_under

FOREIGN_VETH = "veth1234567"
FOREIGN_BRIDGE = "br-0123456789ab"


def wait_for_exit(runner: EngineThread, name: str, timeout: float = 10) -> str:
    """Call reap() until the container is no longer running; return its state."""

    def stopped() -> bool:
        runner.reap()
        return runner.get_container(name).state != "running"

    wait_until(stopped, timeout=timeout, step=0.05)
    return runner.get_container(name).state


def process_alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def make_foreign_links(runner: EngineThread) -> None:
    """Links with nsnet's names but without its alias: nsnet must never touch them."""
    runner.host("ip", "link", "add", FOREIGN_VETH, "type", "veth", "peer", "name", "nsntpeer0")
    runner.host("ip", "link", "add", FOREIGN_BRIDGE, "type", "bridge")
    runner.host("ip", "link", "set", FOREIGN_VETH, "master", FOREIGN_BRIDGE)


def assert_foreign_links_intact(runner: EngineThread) -> None:
    veth = runner.host_link(FOREIGN_VETH)
    bridge = runner.host_link(FOREIGN_BRIDGE)
    assert veth is not None, f"the foreign {FOREIGN_VETH} was removed"
    assert bridge is not None, f"the foreign {FOREIGN_BRIDGE} was removed"
    assert veth.get("master") == FOREIGN_BRIDGE
    assert runner.host_link("nsntpeer0") is not None


# Processes


def test_a_detached_process_exit_code_is_recorded(engine: EngineThread) -> None:
    engine.create_container(ContainerCreate(name="quick", command=["sh", "-c", "exit 7"]))

    started = engine.start_container("quick")

    assert started.state == "running" and started.pid > 0
    assert wait_for_exit(engine, "quick") == "exited"
    assert engine.get_container("quick").exit_code == 7
    assert engine.get_container("quick").finished_at


def test_a_detached_process_runs_in_the_sandbox_and_its_output_is_kept(
    engine: EngineThread,
) -> None:
    engine.create_container(
        ContainerCreate(name="talker", command=["sh", "-c", "ip -4 -o address show dev eth0"])
    )

    engine.start_container("talker")

    assert wait_for_exit(engine, "talker") == "exited"
    assert engine.get_container("talker").exit_code == 0
    assert b"inet 172.17.0.2/16" in engine.logs("talker")


def test_stop_ends_a_detached_process(engine: EngineThread) -> None:
    engine.create_container(ContainerCreate(name="sleeper", command=["sleep", "300"]))
    pid = engine.start_container("sleeper").pid

    stopped = engine.stop_container("sleeper", timeout=5)

    assert stopped.state == "exited"
    assert stopped.exit_code == 128 + signal.SIGTERM
    assert not process_alive(pid)


def test_a_detached_process_survives_closing_the_engine_and_is_adopted(
    engine: EngineThread,
) -> None:
    engine.create_container(ContainerCreate(name="survivor", command=["sleep", "300"]))
    pid = engine.start_container("survivor").pid

    engine.close()
    assert process_alive(pid)
    engine.open()

    container = engine.get_container("survivor")
    assert container.state == "running"
    assert container.pid == pid
    assert engine.ping("survivor", "172.17.0.1")
    engine.reap()
    assert engine.get_container("survivor").state == "running"

    os.kill(pid, signal.SIGKILL)
    assert wait_for_exit(engine, "survivor") == "exited"
    assert engine.get_container("survivor").exit_code in (UNKNOWN_EXIT_CODE, 137)


def test_a_process_that_ended_while_the_engine_was_closed_is_marked_exited(
    engine: EngineThread,
) -> None:
    engine.create_container(ContainerCreate(name="gone", command=["sleep", "300"]))
    pid = engine.start_container("gone").pid

    engine.close()
    os.kill(pid, signal.SIGKILL)
    wait_until(lambda: not process_alive(pid))
    engine.open()

    container = engine.get_container("gone")
    assert container.state == "exited"
    assert container.exit_code == UNKNOWN_EXIT_CODE


# Restart


def test_a_restart_keeps_networks_containers_and_addresses(engine: EngineThread) -> None:
    engine.create_network(
        NetworkCreate(name="kept", ipam=[IpamConfig(subnet=IPv4Network("10.91.0.0/24"))])
    )
    engine.create_container(ContainerCreate(name="k1"))
    engine.create_container(ContainerCreate(name="k2", network="kept", ip_address="10.91.0.9"))
    engine.connect("kept", "k1")
    before = snapshot(engine)
    records = (engine.list_networks(), engine.list_containers(all=True))

    engine.reopen()

    assert snapshot(engine) == before
    assert (engine.list_networks(), engine.list_containers(all=True)) == records
    assert engine.ping("k1", "10.91.0.9")
    assert engine.ping("k2", "10.91.0.2")
    assert engine.ping("k1", "172.17.0.1")


def test_a_restart_recreates_a_veth_removed_behind_its_back(engine: EngineThread) -> None:
    container = engine.create_container(ContainerCreate(name="mended"))
    [(_, endpoint)] = engine.container_endpoints(container.id)
    before = snapshot(engine)

    engine.host("ip", "link", "delete", endpoint.host_ifname)
    engine.reopen()

    assert snapshot(engine) == before
    assert engine.ping("mended", "172.17.0.1")


def test_a_recreated_first_veth_gets_its_default_route_back(engine: EngineThread) -> None:
    """Regression: the re-created veth of the default-route endpoint came back without the
    default route when the container had another network with a gateway."""
    engine.create_network(
        NetworkCreate(name="second", ipam=[IpamConfig(subnet=IPv4Network("10.96.0.0/24"))])
    )
    container = engine.create_container(ContainerCreate(name="dual"))
    engine.connect("second", "dual")
    [(_, first), _] = engine.container_endpoints(container.id)
    before = snapshot(engine)

    engine.host("ip", "link", "delete", first.host_ifname)
    engine.reopen()

    assert snapshot(engine) == before
    routes = engine.exec_json("dual", "-4", "route", "show", "default")
    assert [(route["gateway"], route["dev"]) for route in routes] == [("172.17.0.1", "eth0")]


def test_a_restart_recreates_a_bridge_removed_behind_its_back(engine: EngineThread) -> None:
    network = engine.create_network(
        NetworkCreate(name="fragile", ipam=[IpamConfig(subnet=IPv4Network("10.92.0.0/24"))])
    )
    engine.create_container(ContainerCreate(name="f1", network="fragile"))
    engine.create_container(ContainerCreate(name="f2", network="fragile"))
    before = snapshot(engine)

    engine.host("ip", "link", "delete", network.bridge_name)
    engine.reopen()

    assert snapshot(engine) == before
    assert engine.ping("f1", "10.92.0.3")
    assert engine.ping("f1", "10.92.0.1")


# Reconcile


def test_reconcile_removes_nsnet_links_and_sandboxes_without_records(
    engine: EngineThread,
) -> None:
    make_foreign_links(engine)
    doomed = engine.create_network(
        NetworkCreate(name="doomed", ipam=[IpamConfig(subnet=IPv4Network("10.93.0.0/24"))])
    )
    victim = engine.create_container(ContainerCreate(name="victim", network="doomed"))
    [(_, doomed_endpoint)] = engine.container_endpoints(victim.id)
    survivor = engine.create_container(ContainerCreate(name="survivor"))
    [(_, kept_endpoint)] = engine.container_endpoints(survivor.id)

    engine.close()
    engine.delete_rows(
        [
            ("DELETE FROM addresses WHERE network_id = ?", (doomed.id,)),
            ("DELETE FROM endpoints WHERE container_id = ?", (victim.id,)),
            ("DELETE FROM containers WHERE id = ?", (victim.id,)),
            ("DELETE FROM networks WHERE id = ?", (doomed.id,)),
        ]
    )
    engine.open()

    assert engine.host_link(doomed.bridge_name) is None
    assert engine.host_link(doomed_endpoint.host_ifname) is None
    assert not any(path.name.startswith(victim.id) for path in engine.namespace_files())
    assert not any(victim.id in mount.mount_point for mount in mounts_under(engine.root))
    assert not engine.paths.container_dir(victim.id).exists()
    assert engine.paths.container_dir(survivor.id).exists()
    assert engine.host_link(kept_endpoint.host_ifname)["master"] == "nsnet0"
    assert engine.ping("survivor", "172.17.0.1")
    assert_foreign_links_intact(engine)


def test_leftover_namespace_files_without_a_container_are_removed_at_open(
    engine: EngineThread, tmp_path
) -> None:
    ghost_id = secrets.token_hex(32)
    sandboxes = engine.engine.sandboxes
    netns_path, _ = engine.call(sandboxes.create, ghost_id, "ghost")
    (tmp_path / "resolv.conf").touch()
    (tmp_path / "hosts").touch()
    engine.call(
        sandboxes.create_mount, ghost_id, netns_path, tmp_path / "resolv.conf", tmp_path / "hosts"
    )
    ghosts = [engine.netns_dir / ghost_id, engine.mntns_dir / f"{ghost_id}.mnt"]
    assert all(namespace.is_mounted_namespace(ghost) for ghost in ghosts)

    engine.reopen()

    assert not any(ghost.exists() for ghost in ghosts)
    assert not (engine.netns_dir / f"{ghost_id}.uts").exists()
    assert not any(ghost_id in mount.mount_point for mount in mounts_under(engine.root))


def test_foreign_look_alike_links_survive_every_operation(engine: EngineThread) -> None:
    make_foreign_links(engine)

    engine.reopen()
    network = engine.create_network(
        NetworkCreate(name="busy", ipam=[IpamConfig(subnet=IPv4Network("10.94.0.0/24"))])
    )
    engine.create_container(ContainerCreate(name="c1", network="busy"))
    engine.create_container(ContainerCreate(name="c2"))
    engine.connect("busy", "c2")
    engine.disconnect("busy", "c2")
    engine.remove_container("c1")
    engine.remove_container("c2")
    engine.remove_network(network.id)
    engine.prune_networks()
    engine.reopen()

    assert_foreign_links_intact(engine)


def test_a_network_cannot_take_over_a_foreign_bridge(engine: EngineThread) -> None:
    make_foreign_links(engine)

    with pytest.raises(Conflict, match=f"'{FOREIGN_BRIDGE}' already exists and is not nsnet's"):
        engine.create_network(
            NetworkCreate(
                name="thief",
                ipam=[IpamConfig(subnet=IPv4Network("10.95.0.0/24"))],
                options={"com.docker.network.bridge.name": FOREIGN_BRIDGE},
            )
        )

    assert "thief" not in {network.name for network in engine.list_networks()}
    assert_foreign_links_intact(engine)
    addresses = engine.host_json("-4", "address", "show", "dev", FOREIGN_BRIDGE)
    assert not any(entry.get("addr_info") for entry in addresses)


def same_but_namespaces(taken: dict) -> dict:
    """A snapshot with the namespaces' identities left out: re-created ones are new ones."""
    return {**taken, "nsfs mounts": [point for point, _ in taken["nsfs mounts"]]}


def lose_sandboxes(runner: EngineThread) -> None:
    """Unmount and delete every namespace file (network, UTS, mount), as a reboot empties /run."""
    for path in runner.namespace_files():
        namespace.remove(path)


def test_a_restart_after_a_reboot_rebuilds_sandboxes_bridges_and_veths(
    engine: EngineThread,
) -> None:
    engine.create_network(
        NetworkCreate(name="rebuilt", ipam=[IpamConfig(subnet=IPv4Network("10.97.0.0/24"))])
    )
    engine.create_container(ContainerCreate(name="r1", hostname="first"))
    engine.create_container(ContainerCreate(name="r2", network="rebuilt"))
    engine.connect("rebuilt", "r1")
    before = snapshot(engine)
    bridges = [link["ifname"] for link in engine.host_json("link", "show", "type", "bridge")]

    engine.close()
    lose_sandboxes(engine)
    for bridge in bridges:
        engine.host("ip", "link", "delete", bridge)
    assert wait_until(lambda: not any(n.startswith("veth") for n in engine.host_ifnames()))
    engine.open()

    assert same_but_namespaces(snapshot(engine)) == same_but_namespaces(before)
    assert engine.exec("r1", "hostname", check=True).stdout.strip() == "first"
    assert engine.ping("r1", "10.97.0.2")
    assert engine.ping("r1", "172.17.0.1")


def test_lost_sandboxes_are_rebuilt_even_while_their_veths_linger(engine: EngineThread) -> None:
    """The kernel destroys an unmounted namespace, and its veth pairs, asynchronously: the
    restart must not mistake a dying veth for a live one."""
    engine.create_container(ContainerCreate(name="quick1"))
    engine.create_container(ContainerCreate(name="quick2"))
    before = snapshot(engine)

    engine.close()
    lose_sandboxes(engine)
    engine.open()

    assert same_but_namespaces(snapshot(engine)) == same_but_namespaces(before)
    assert engine.ping("quick1", "172.17.0.3")


def test_a_lost_mount_namespace_is_recreated_at_restart(engine: EngineThread) -> None:
    container = engine.create_container(ContainerCreate(name="remounted"))
    before = snapshot(engine)
    netns = namespace.inode(container.netns_path)

    engine.close()
    namespace.remove(Path(container.mnt_path))
    engine.open()

    assert same_but_namespaces(snapshot(engine)) == same_but_namespaces(before)
    assert namespace.inode(container.netns_path) == netns  # only the mount namespace is new
    assert namespace.is_mounted_namespace(container.mnt_path)
    hosts = engine.exec("remounted", "cat", "/etc/hosts", check=True).stdout
    assert f"172.17.0.2\t{container.id[:12]} remounted" in hosts.splitlines(), hosts
    assert engine.exec("remounted", "ls", "/sys/class/net", check=True).stdout.split() == [
        "eth0",
        "lo",
    ]


def test_mount_namespaces_follow_network_namespaces_rebuilt_at_restart(
    engine: EngineThread,
) -> None:
    """A /sys mounted from a lost network namespace lists nothing: the restart re-creates the
    mount namespaces over the new one, a container:<name> container's included."""
    engine.create_container(ContainerCreate(name="owner", command=["sleep", "300"]))
    engine.start("owner")
    guest = engine.create_container(ContainerCreate(name="guest", network="container:owner"))
    engine.stop_container("owner", timeout=0)  # its process would keep the old namespace
    before = snapshot(engine)

    engine.close()
    for path in sorted(engine.netns_dir.iterdir()):  # the network namespaces only
        namespace.remove(path)
    engine.open()

    assert same_but_namespaces(snapshot(engine)) == same_but_namespaces(before)
    for name in ("owner", "guest"):
        listed = engine.exec(name, "ls", "/sys/class/net", check=True).stdout.split()
        assert listed == ["eth0", "lo"], name
    owner_eth0 = engine.exec_json("owner", "link", "show", "dev", "eth0")[0]["address"]
    assert engine.exec("guest", "cat", "/sys/class/net/eth0/address").stdout.strip() == (
        owner_eth0
    )
    assert namespace.is_mounted_namespace(guest.mnt_path)


def test_force_removal_stops_a_running_container(engine: EngineThread) -> None:
    engine.create_container(ContainerCreate(name="doomed", command=["sleep", "300"]))
    container = engine.start("doomed")

    engine.remove_container("doomed", force=True)

    assert wait_until(lambda: not process_alive(container.pid))
    assert "doomed" not in {each.name for each in engine.list_containers(all=True)}
    assert not engine.namespace_files()
    engine.drain()
    assert not any(name.startswith("veth") for name in engine.host_ifnames())


def test_an_auto_remove_detached_container_goes_when_its_process_ends(
    engine: EngineThread,
) -> None:
    engine.create_container(ContainerCreate(name="ephemeral", command=["true"], auto_remove=True))

    engine.start_container("ephemeral")

    def gone() -> bool:
        engine.reap()
        return "ephemeral" not in {each.name for each in engine.list_containers(all=True)}

    assert wait_until(gone)
    assert not engine.namespace_files()
