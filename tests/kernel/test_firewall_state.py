"""The Firewall against a real kernel, without traffic: tables, elements, errors and warnings.

Each test gets a throwaway host namespace (the ``host`` fixture) and drives a ``Firewall`` from
a thread that has entered it.
"""

import itertools
import subprocess
import sys
from collections.abc import Iterator
from ipaddress import IPv4Address, IPv4Network

import pytest

from nsnet.errors import Conflict, Unavailable
from nsnet.firewall import Binding, BridgeNetwork, Firewall, ports
from tests.kernel.test_firewall_traffic import NamespaceThread
from tests.support.topology import HostWithOutside

ANY = IPv4Address("0.0.0.0")


@pytest.fixture
def host_thread(host: HostWithOutside) -> Iterator[NamespaceThread]:
    thread = NamespaceThread(host.host)
    try:
        yield thread
    finally:
        thread.close()


@pytest.fixture
def firewall(host_thread: NamespaceThread) -> Iterator[Firewall]:
    instance = host_thread.call(Firewall)
    yield instance
    instance.close()  # its conntrack socket would keep the namespace alive


def network(name: str, index: int, internal=False, icc=True, masquerade=True) -> BridgeNetwork:
    return BridgeNetwork(
        name=name,
        bridge=f"br-{index:012x}",
        subnet=IPv4Network(f"10.{index}.0.0/24"),
        gateway=IPv4Address(f"10.{index}.0.1"),
        internal=internal,
        icc=icc,
        masquerade=masquerade,
    )


def binding(host_port: int, protocol: str = "tcp", host_ip: IPv4Address = ANY) -> Binding:
    return Binding(host_ip, host_port, protocol, IPv4Address("10.1.0.2"), 80, "br-000000000001")


def test_every_option_combination_is_accepted_by_the_kernel(
    host_thread: NamespaceThread, firewall: Firewall
) -> None:
    """The rulesets of the golden files, applied for real (nft 1.0.6 and this kernel)."""
    bindings = [
        binding(8080),
        binding(5353, "udp"),
        binding(3868, "sctp"),
        binding(8443, host_ip=IPv4Address("127.0.0.1")),
    ]
    for internal, icc, masquerade in itertools.product([False, True], repeat=3):
        networks = [network("web", 1, internal, icc, masquerade)]
        host_thread.call(firewall.sync, networks, bindings)
        state = host_thread.call(firewall.state)

        assert state.tables == (("inet nsnet",) if icc else ("inet nsnet", "bridge nsnet"))
        elements = state.elements
        assert elements["inet nsnet internal_bridges"] == int(internal)
        assert elements["inet nsnet masquerade_subnets"] == int(masquerade and not internal)
        assert elements["inet nsnet wildcard_addresses"] == 3
        assert elements["inet nsnet binding_addresses"] == 1


def test_network_elements_come_and_go(host_thread: NamespaceThread, firewall: Firewall) -> None:
    host_thread.call(firewall.sync, [network("a", 1)], [])
    rules = host_thread.call(firewall.state).rules
    icc_off = network("quiet", 2, icc=False)

    # The bridge table appears with the first icc-off network, without a full sync.
    host_thread.call(firewall.add_network, icc_off)
    state = host_thread.call(firewall.state)
    assert state.tables == ("inet nsnet", "bridge nsnet")
    assert state.elements["inet nsnet bridges"] == 2
    assert state.elements["bridge nsnet icc_off_subnets"] == 1
    added_rules = state.rules - rules

    # Adding again and removing twice are both harmless.
    host_thread.call(firewall.add_network, icc_off)
    host_thread.call(firewall.remove_network, icc_off)
    host_thread.call(firewall.remove_network, icc_off)
    state = host_thread.call(firewall.state)
    assert state.elements["inet nsnet bridges"] == 1
    assert state.elements["bridge nsnet icc_off_subnets"] == 0
    assert state.rules == rules + added_rules  # only the bridge table's fixed rules were added

    # A sync with no icc-off network drops the bridge table again.
    host_thread.call(firewall.sync, [network("a", 1)], [])
    assert host_thread.call(firewall.state).tables == ("inet nsnet",)


def test_removing_absent_bindings_is_harmless(
    host_thread: NamespaceThread, firewall: Firewall
) -> None:
    host_thread.call(firewall.sync, [network("a", 1)], [binding(8080)])
    host_thread.call(firewall.remove_bindings, [binding(8080), binding(9090, "udp")])
    host_thread.call(firewall.remove_bindings, [binding(8080)])
    assert host_thread.call(firewall.state).elements["inet nsnet wildcard_addresses"] == 0


def test_a_failed_change_names_the_change_and_nft_error_and_changes_nothing(
    host_thread: NamespaceThread, firewall: Firewall
) -> None:
    host_thread.call(firewall.sync, [network("a", 1)], [binding(8080)])
    before = host_thread.call(firewall.state)

    clash = Binding(ANY, 8080, "tcp", IPv4Address("10.1.0.9"), 80, "br-000000000001")
    with pytest.raises(Unavailable) as raised:
        host_thread.call(firewall.add_bindings, [binding(9090), clash])
    message = str(raised.value)
    assert message.startswith("cannot apply firewall change 'add bindings': ")
    assert "File exists" in message  # nft's own words

    assert host_thread.call(firewall.state) == before  # 9090 was not added either


def test_nothing_but_nsnet_tables_is_touched(
    host: HostWithOutside, host_thread: NamespaceThread, firewall: Firewall
) -> None:
    host.host.run("nft", "add", "table", "ip", "foreign")
    host.host.run("nft", "add", "chain", "ip", "foreign", "keep")
    host_thread.call(firewall.sync, [network("a", 1, icc=False)], [binding(8080)])
    host_thread.call(firewall.delete_tables)

    tables = host.host.run("nft", "list", "tables").stdout.split("\n")
    assert [line for line in tables if line] == ["table ip foreign"]
    assert host_thread.call(firewall.state).tables == ()


def test_foreign_forward_drop_is_reported(
    host: HostWithOutside, host_thread: NamespaceThread, firewall: Firewall
) -> None:
    host_thread.call(firewall.sync, [network("a", 1)], [])
    assert host_thread.call(firewall.foreign_forward_drop) is None

    # What Docker does to a host: iptables (nft backend) with a FORWARD policy of DROP.
    host.host.run("iptables", "-P", "FORWARD", "DROP")
    warning = host_thread.call(firewall.foreign_forward_drop)
    assert warning is not None
    assert "'ip filter FORWARD'" in warning
    assert "forward policy of drop" in warning

    host.host.run("iptables", "-P", "FORWARD", "ACCEPT")
    assert host_thread.call(firewall.foreign_forward_drop) is None


# Host ports in a real namespace ---------------------------------------------------------------

LISTENER = r"""
import socket, sys, threading
tcp = socket.socket()
tcp.bind(("127.0.0.1", 7070))
tcp.listen()
udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
udp.bind(("0.0.0.0", 7071))
print("ready", flush=True)
threading.Event().wait()
"""


def test_port_holder_finds_listening_sockets_and_their_process(
    host: HostWithOutside, host_thread: NamespaceThread
) -> None:
    listener = host.host.popen(sys.executable, "-c", LISTENER, stdout=subprocess.PIPE, text=True)
    assert listener.stdout.readline().strip() == "ready"

    def holder(protocol: str, address: str, port: int) -> str | None:
        return host_thread.call(ports.port_holder, protocol, IPv4Address(address), port, {})

    held = holder("tcp", "0.0.0.0", 7070)
    assert held is not None and held.endswith("listening on 127.0.0.1:7070/tcp")
    assert held.startswith("process ") and "(python" in held
    assert holder("tcp", "192.0.2.1", 7070) is None  # another address: free
    assert holder("udp", "192.0.2.1", 7071) is not None  # a wildcard socket holds every address
    assert holder("tcp", "0.0.0.0", 7071) is None

    with pytest.raises(Conflict, match="'0.0.0.0:7071/udp': already held by process"):
        host_thread.call(ports.check_host_port_free, "udp", ANY, 7071, {})

    chosen = host_thread.call(ports.choose_host_port, "udp", ANY, [], 7071, 7080)
    assert chosen == 7072


def test_local_port_range_is_the_namespace_own(
    host: HostWithOutside, host_thread: NamespaceThread
) -> None:
    host.host.run("sysctl", "-qw", "net.ipv4.ip_local_port_range=40000 40009")
    assert host_thread.call(ports.local_port_range) == (40000, 40009)
    assert host_thread.call(ports.choose_host_port, "tcp", ANY, [binding(40000)]) == 40001


def test_sctp_without_kernel_support_is_named(host_thread: NamespaceThread) -> None:
    try:
        host_thread.call(ports.check_protocol_supported, "sctp", "3868/sctp")
    except Unavailable as error:
        assert str(error) == (
            "cannot publish port '3868/sctp': this kernel has no SCTP support (CONFIG_IP_SCTP)"
        )
    else:
        pytest.skip("this kernel carries SCTP")
