"""The engine on the kernel: the default bridge, user networks, the four modes, connect.

Each test gets its own host namespace and NSNET_ROOT (the ``engine`` fixture) and is checked
for leaks in the machine's own namespace.
"""

from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

import pytest

from nsnet.errors import (
    Conflict,
    Forbidden,
    InjectedFailure,
    InvalidArgument,
    NotFound,
    Unavailable,
)
from nsnet.models import ContainerCreate, IpamConfig, NetworkCreate
from tests.kernel.test_engine_support import (
    EngineThread,
    engine_fixture,  # noqa: F401 (the fixture)
    peer_indexes,
)
from tests.support.topology import HostWithOutside


def user_network(runner: EngineThread, name: str, subnet: str, **fields):
    return runner.create_network(
        NetworkCreate(name=name, ipam=[IpamConfig(subnet=IPv4Network(subnet))], **fields)
    )


def addresses_of(runner: EngineThread, container: str, ifname: str) -> list[str]:
    entries = runner.exec_json(container, "-4", "address", "show", "dev", ifname)
    return [f"{item['local']}/{item['prefixlen']}" for item in entries[0]["addr_info"]]


def default_gateway(runner: EngineThread, container: str) -> str | None:
    routes = runner.exec_json(container, "-4", "route", "show", "default")
    return routes[0]["gateway"] if routes else None


# The default bridge


def test_the_default_bridge_is_nsnet0_with_172_17_0_1(engine: EngineThread) -> None:
    bridge = engine.get_network("bridge")
    link = engine.host_link("nsnet0")

    assert str(bridge.ipam[0].subnet) == "172.17.0.0/16"
    assert str(bridge.ipam[0].gateway) == "172.17.0.1"
    assert link["linkinfo"]["info_kind"] == "bridge"
    assert link["ifalias"] == f"nsnet:{bridge.id}"
    assert "UP" in link["flags"]
    addresses = engine.host_json("-4", "address", "show", "dev", "nsnet0")[0]["addr_info"]
    assert [(item["local"], item["prefixlen"]) for item in addresses] == [("172.17.0.1", 16)]
    assert {network.name for network in engine.list_networks()} == {"bridge", "host", "none"}


def test_first_containers_get_2_then_3_and_a_default_route_via_1(engine: EngineThread) -> None:
    engine.create_container(ContainerCreate(name="first"))
    engine.create_container(ContainerCreate(name="second"))

    assert addresses_of(engine, "first", "eth0") == ["172.17.0.2/16"]
    assert addresses_of(engine, "second", "eth0") == ["172.17.0.3/16"]
    assert default_gateway(engine, "first") == "172.17.0.1"
    assert default_gateway(engine, "second") == "172.17.0.1"

    loopback = engine.exec_json("first", "-4", "address", "show", "dev", "lo")[0]
    assert "UP" in loopback["flags"]
    assert loopback["addr_info"][0]["local"] == "127.0.0.1"


def test_containers_on_the_bridge_ping_each_other_and_the_gateway(engine: EngineThread) -> None:
    engine.create_container(ContainerCreate(name="first"))
    engine.create_container(ContainerCreate(name="second"))

    assert engine.ping("first", "172.17.0.3")
    assert engine.ping("second", "172.17.0.2")
    assert engine.ping("first", "172.17.0.1")
    assert engine.ping("first", "127.0.0.1")


def test_eth0_at_if_n_names_the_host_veth_which_is_a_port_of_the_bridge(
    engine: EngineThread,
) -> None:
    container = engine.create_container(ContainerCreate(name="paired"))
    [(network, endpoint)] = engine.container_endpoints(container.id)

    shown = engine.exec("paired", "ip", "-d", "link", "show", check=True).stdout
    host_veth = engine.host_link(endpoint.host_ifname)

    assert peer_indexes(shown) == {"eth0": host_veth["ifindex"]}
    assert host_veth["master"] == "nsnet0"
    assert host_veth["linkinfo"]["info_kind"] == "veth"
    assert host_veth["ifalias"] == f"nsnet:{endpoint.id}"
    assert endpoint.host_ifname.startswith("veth") and len(endpoint.host_ifname) == 11
    assert "veth" in shown
    assert network.name == "bridge"


def test_the_endpoint_mac_follows_the_address(engine: EngineThread) -> None:
    engine.create_container(ContainerCreate(name="macs"))

    eth0 = engine.exec_json("macs", "link", "show", "dev", "eth0")[0]

    assert eth0["address"] == "02:42:ac:11:00:02"


# User networks


def test_two_user_networks_are_separate_bridges_with_no_layer_2_path(
    engine: EngineThread,
) -> None:
    front = user_network(engine, "front", "10.71.0.0/24")
    back = user_network(engine, "back", "10.72.0.0/24")
    engine.create_container(ContainerCreate(name="f1", network="front"))
    engine.create_container(ContainerCreate(name="f2", network="front"))
    engine.create_container(ContainerCreate(name="b1", network="back"))

    front_bridge = engine.host_link(front.bridge_name)
    back_bridge = engine.host_link(back.bridge_name)
    assert front.bridge_name == f"br-{front.id[:12]}"
    assert front_bridge["linkinfo"]["info_kind"] == "bridge"
    assert back_bridge["linkinfo"]["info_kind"] == "bridge"
    assert "master" not in front_bridge and "master" not in back_bridge
    ports = {
        link["ifname"]: link.get("master")
        for link in engine.host_json("link", "show")
        if link["ifname"].startswith("veth")
    }
    assert sorted(ports.values()) == sorted(
        [front.bridge_name, front.bridge_name, back.bridge_name]
    )

    # ARP reaches a neighbour on the same bridge, and nothing on the other one.
    arping = ("busybox", "arping", "-c", "1", "-w", "1", "-I", "eth0")
    assert engine.exec("f1", *arping, "10.71.0.3").returncode == 0
    assert engine.exec("f1", *arping, "10.72.0.2").returncode != 0
    assert engine.ping("f1", "10.71.0.3")


def test_user_network_options_and_gateway(engine: EngineThread) -> None:
    network = engine.create_network(
        NetworkCreate(
            name="tuned",
            ipam=[
                IpamConfig(
                    subnet=IPv4Network("10.73.0.0/24"),
                    gateway=IPv4Address("10.73.0.254"),
                    aux_addresses={"printer": IPv4Address("10.73.0.1")},
                )
            ],
            options={
                "com.docker.network.bridge.name": "nsnt-tuned0",
                "com.docker.network.driver.mtu": "1400",
            },
            labels={"team": "blue"},
        )
    )
    engine.create_container(ContainerCreate(name="tuned1", network="tuned"))

    link = engine.host_link("nsnt-tuned0")
    assert network.bridge_name == "nsnt-tuned0"
    assert link["mtu"] == 1400
    assert addresses_of(engine, "tuned1", "eth0") == ["10.73.0.2/24"]
    assert engine.exec_json("tuned1", "link", "show", "dev", "eth0")[0]["mtu"] == 1400
    assert default_gateway(engine, "tuned1") == "10.73.0.254"
    assert engine.ping("tuned1", "10.73.0.254")


def test_an_automatic_subnet_skips_the_default_bridge_and_host_routes(
    engine: EngineThread,
) -> None:
    engine.host("ip", "route", "add", "172.18.0.0/16", "via", "192.0.2.100")

    network = engine.create_network(NetworkCreate(name="auto"))

    assert str(network.ipam[0].subnet) == "172.19.0.0/16"
    assert str(network.ipam[0].gateway) == "172.19.0.1"


def test_an_internal_network_gives_no_default_route(engine: EngineThread) -> None:
    user_network(engine, "inside", "10.74.0.0/24", internal=True)
    engine.create_container(ContainerCreate(name="hermit", network="inside"))

    assert addresses_of(engine, "hermit", "eth0") == ["10.74.0.2/24"]
    assert default_gateway(engine, "hermit") is None


def test_removing_a_network_removes_its_bridge(engine: EngineThread) -> None:
    network = user_network(engine, "brief", "10.75.0.0/24")
    assert engine.host_link(network.bridge_name) is not None

    engine.remove_network("brief")

    assert engine.host_link(network.bridge_name) is None
    assert "brief" not in {each.name for each in engine.list_networks()}


def test_a_network_with_endpoints_cannot_be_removed(engine: EngineThread) -> None:
    network = user_network(engine, "busy", "10.76.0.0/24")
    engine.create_container(ContainerCreate(name="tenant", network="busy"))

    with pytest.raises(Forbidden, match=r"active endpoints \(tenant\)"):
        engine.remove_network("busy")

    assert engine.host_link(network.bridge_name) is not None


def test_prune_removes_only_unused_user_networks(engine: EngineThread) -> None:
    user_network(engine, "unused", "10.77.0.0/24")
    user_network(engine, "used", "10.78.0.0/24")
    engine.create_container(ContainerCreate(name="keeper", network="used"))

    assert engine.prune_networks() == ["unused"]
    assert {network.name for network in engine.list_networks()} == {
        "bridge",
        "host",
        "none",
        "used",
    }


# The four modes


def test_none_mode_has_only_lo_with_127_0_0_1(engine: EngineThread) -> None:
    container = engine.create_container(ContainerCreate(name="alone", network="none"))

    links = engine.exec_json("alone", "link", "show")
    addresses = engine.exec_json("alone", "-4", "address", "show")

    assert [link["ifname"] for link in links] == ["lo"]
    assert "UP" in links[0]["flags"]
    assert [item["local"] for item in addresses[0]["addr_info"]] == ["127.0.0.1"]
    assert container.network_mode == "none"
    assert engine.container_endpoints(container.id) == []


def test_host_mode_runs_in_the_host_namespace(engine: EngineThread) -> None:
    container = engine.create_container(ContainerCreate(name="hosted", network="host"))

    inside = {link["ifname"] for link in engine.exec_json("hosted", "link", "show")}
    addresses = engine.exec("hosted", "ip", "-4", "-br", "address", check=True).stdout

    assert inside == engine.host_ifnames()
    assert {"eth0", "nsnet0"} <= inside
    assert "192.0.2.1/24" in addresses
    assert container.netns_path == container.mnt_path == ""
    assert not engine.namespace_files()


def test_container_mode_shares_the_namespace_of_a_running_container(
    engine: EngineThread,
) -> None:
    owner = engine.create_container(ContainerCreate(name="owner", command=["sleep", "300"]))
    engine.start_container("owner")

    guest = engine.create_container(ContainerCreate(name="guest", network="container:owner"))

    assert guest.network_mode == f"container:{owner.id}"
    assert guest.netns_path == owner.netns_path
    owner_eth0 = engine.exec_json("owner", "address", "show", "dev", "eth0")[0]
    guest_eth0 = engine.exec_json("guest", "address", "show", "dev", "eth0")[0]
    assert guest_eth0["address"] == owner_eth0["address"]
    assert guest_eth0["addr_info"][0]["local"] == owner_eth0["addr_info"][0]["local"]
    assert engine.container_endpoints(guest.id) == []

    with pytest.raises(Conflict, match="share its network namespace"):
        engine.remove_container("owner", force=True)
    engine.remove_container("guest")
    engine.remove_container("owner", force=True)


def test_container_mode_is_refused_when_the_other_is_not_running(engine: EngineThread) -> None:
    engine.create_container(ContainerCreate(name="idle"))

    with pytest.raises(Conflict, match="'idle': it is not running"):
        engine.create_container(ContainerCreate(name="guest", network="container:idle"))

    assert "guest" not in {each.name for each in engine.list_containers(all=True)}


# Connect and disconnect


def test_connect_adds_eth1_live_and_disconnect_removes_it(engine: EngineThread) -> None:
    user_network(engine, "extra", "10.79.0.0/24")
    engine.create_container(ContainerCreate(name="roamer", command=["sleep", "300"]))
    engine.start_container("roamer")

    endpoint = engine.connect("extra", "roamer", aliases=["db"])

    assert endpoint.container_ifname == "eth1"
    assert endpoint.aliases == ["db"]
    assert addresses_of(engine, "roamer", "eth1") == ["10.79.0.2/24"]
    assert engine.host_link(endpoint.host_ifname)["master"] == f"br-{endpoint.network_id[:12]}"
    assert default_gateway(engine, "roamer") == "172.17.0.1"
    assert engine.ping("roamer", "10.79.0.1")

    engine.disconnect("extra", "roamer")

    names = {link["ifname"] for link in engine.exec_json("roamer", "link", "show")}
    assert names == {"lo", "eth0"}
    engine.drain()
    assert engine.host_link(endpoint.host_ifname) is None
    assert default_gateway(engine, "roamer") == "172.17.0.1"
    assert engine.get_container("roamer").state == "running"


def test_disconnecting_the_default_route_network_moves_the_route_to_another(
    engine: EngineThread,
) -> None:
    """As Docker does: the sandbox takes its gateway from a remaining network."""
    user_network(engine, "other", "10.88.0.0/24")
    engine.create_container(ContainerCreate(name="mover"))
    engine.connect("other", "mover")
    assert default_gateway(engine, "mover") == "172.17.0.1"

    engine.disconnect("bridge", "mover")

    assert default_gateway(engine, "mover") == "10.88.0.1"
    assert engine.ping("mover", "10.88.0.1")

    engine.connect("bridge", "mover")
    assert default_gateway(engine, "mover") == "10.88.0.1"


def test_a_second_connect_to_the_same_network_is_refused(engine: EngineThread) -> None:
    engine.create_container(ContainerCreate(name="twice"))

    with pytest.raises(Forbidden, match="already exists in network bridge"):
        engine.connect("bridge", "twice")


def test_disconnecting_a_network_the_container_is_not_on(engine: EngineThread) -> None:
    user_network(engine, "elsewhere", "10.80.0.0/24")
    engine.create_container(ContainerCreate(name="stray"))

    with pytest.raises(NotFound, match="is not connected to network elsewhere"):
        engine.disconnect("elsewhere", "stray")


# Container options


def test_mac_address_hostname_and_sysctl(engine: EngineThread) -> None:
    engine.create_container(
        ContainerCreate(
            name="custom",
            mac_address="02:AA:BB:CC:DD:EE",
            hostname="webhost",
            sysctls={"net.ipv4.ip_forward": "1"},
        )
    )
    engine.create_container(ContainerCreate(name="plain"))

    assert engine.exec_json("custom", "link", "show", "dev", "eth0")[0]["address"] == (
        "02:aa:bb:cc:dd:ee"
    )
    assert engine.exec("custom", "hostname", check=True).stdout.strip() == "webhost"
    forward = engine.exec("custom", "cat", "/proc/sys/net/ipv4/ip_forward", check=True)
    assert forward.stdout.strip() == "1"

    plain = engine.get_container("plain")
    assert engine.exec("plain", "hostname", check=True).stdout.strip() == plain.id[:12]
    unchanged = engine.exec("plain", "cat", "/proc/sys/net/ipv4/ip_forward", check=True)
    assert unchanged.stdout.strip() == "0"


def test_a_container_is_removed_with_its_veth_and_namespace_files(engine: EngineThread) -> None:
    container = engine.create_container(ContainerCreate(name="brief"))
    [(_, endpoint)] = engine.container_endpoints(container.id)
    assert engine.host_link(endpoint.host_ifname) is not None

    engine.remove_container("brief")

    engine.drain()
    assert engine.host_link(endpoint.host_ifname) is None
    assert not engine.namespace_files()
    assert not engine.paths.container_dir(container.id).exists()
    with pytest.raises(NotFound, match="No such container: brief"):
        engine.get_container("brief")


def test_ip_on_the_default_bridge_is_refused(engine: EngineThread) -> None:
    with pytest.raises(InvalidArgument, match="user defined networks only"):
        engine.create_container(ContainerCreate(name="pinned", ip_address="172.17.0.50"))

    assert not engine.namespace_files()


@pytest.mark.parametrize(
    ("routes", "subnet"),
    [
        (["172.17.0.0/16 via 192.0.2.100"], "172.18.0.0/16"),
        (["0.0.0.0/1 via 192.0.2.100", "128.0.0.0/1 via 192.0.2.100"], "172.17.0.0/16"),
        (["172.16.0.0/12 via 192.0.2.100"], "192.168.0.0/20"),
    ],
    ids=["a route to 172.17", "the VPN pair", "a route to all of 172.16/12"],
)
def test_the_default_bridge_avoids_host_routes_but_not_default_ones(
    host: HostWithOutside, tmp_path: Path, routes: list[str], subnet: str
) -> None:
    runner = EngineThread(host.host.path, tmp_path / "nsnet")
    try:
        for route in routes:
            runner.host("ip", "route", "add", *route.split())
        runner.open()

        bridge = runner.get_network("bridge")
        assert str(bridge.ipam[0].subnet) == subnet
        addresses = runner.host_json("-4", "address", "show", "dev", "nsnet0")[0]["addr_info"]
        assert addresses[0]["local"] == str(bridge.ipam[0].gateway)
    finally:
        problems = runner.dispose()
        assert not problems, problems


def fill_bridge(host: HostWithOutside, bridge: str, ports: int) -> None:
    """Make ``ports`` ports of ``bridge`` out of veth pairs that live in the host itself."""
    commands = []
    for number in range(ports):
        commands.append(f"link add fill{number}a type veth peer name fill{number}b")
        commands.append(f"link set fill{number}a master {bridge}")
    host.host.run("ip", "-batch", "-", input="\n".join(commands) + "\n", timeout=300)


def test_a_full_bridge_is_refused_naming_the_limit_and_ports_being_deleted_are_waited_for(
    engine: EngineThread, host: HostWithOutside
) -> None:
    """Regression: under connect/disconnect churn at 1,000 endpoints the host ends that the
    reaper had not deleted yet still held bridge ports, and a connect failed with the
    kernel's bare 'Exchange full' once the bridge had its 1,023."""
    network = user_network(engine, "crowd", "10.78.0.0/16")
    engine.create_container(ContainerCreate(name="mover"))
    engine.create_container(ContainerCreate(name="late"))
    fill_bridge(host, network.bridge_name, 1022)

    for _ in range(10):
        engine.connect("crowd", "mover")  # the 1,023rd port, the last
        engine.disconnect("crowd", "mover")  # its port goes in the background

    engine.connect("crowd", "mover")
    with pytest.raises(Unavailable, match=r"bridge 'br-[0-9a-f]{12}' has 1023 ports"):
        engine.connect("crowd", "late")
    late = engine.get_container("late").id
    assert [network.name for network, _ in engine.container_endpoints(late)] == ["bridge"]
    engine.disconnect("crowd", "mover")
    host.host.run("ip", "-batch", "-", input="".join(
        f"link del fill{number}a\n" for number in range(1022)), timeout=300)  # fmt: skip


def test_a_forced_disconnect_drops_an_endpoint_whose_interface_cannot_be_unplugged(
    engine: EngineThread, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``force`` was taken and ignored; Docker's -f is for an endpoint in a bad state."""
    network = user_network(engine, "sticky", "10.79.0.0/24")
    engine.create_container(ContainerCreate(name="stuck", network="sticky"))
    [(_, endpoint)] = engine.container_endpoints(engine.get_container("stuck").id)
    monkeypatch.setenv("NSNET_FAILPOINTS", "disconnect.kernel")

    with pytest.raises(InjectedFailure):
        engine.disconnect("sticky", "stuck")
    assert engine.container_endpoints(engine.get_container("stuck").id)  # kept, unforced
    engine.disconnect("sticky", "stuck", force=True)
    monkeypatch.delenv("NSNET_FAILPOINTS")

    assert engine.container_endpoints(engine.get_container("stuck").id) == []
    assert engine.host_link(endpoint.host_ifname) is not None  # left behind, with its mark
    engine.reopen()
    assert engine.host_link(endpoint.host_ifname) is None  # the next reconcile removed it
    assert engine.network_endpoints(network.id) == []
