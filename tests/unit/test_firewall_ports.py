"""Host-port bookkeeping: who holds a port, and choosing a free one."""

from ipaddress import IPv4Address

import pytest

from nsnet.errors import Conflict
from nsnet.firewall import ports
from nsnet.firewall.ruleset import Binding

ANY = IPv4Address("0.0.0.0")
LOCALHOST = IPv4Address("127.0.0.1")


def published(host_ip: str, host_port: int, protocol: str = "tcp") -> Binding:
    return Binding(IPv4Address(host_ip), host_port, protocol, IPv4Address("172.17.0.2"), 80,
                   "nsnet0")  # fmt: skip


@pytest.fixture
def no_listeners(monkeypatch: pytest.MonkeyPatch) -> None:
    """Host-port checks without reading the test machine's sockets."""
    monkeypatch.setattr(ports, "listeners", lambda protocol: [])


@pytest.mark.usefixtures("no_listeners")
def test_port_holder_names_the_container() -> None:
    owners = {published("0.0.0.0", 8080): "web", published("127.0.0.1", 9090): "db"}

    assert (
        ports.port_holder("tcp", LOCALHOST, 8080, owners) == "container 'web' (0.0.0.0:8080/tcp)"
    )
    assert ports.port_holder("tcp", ANY, 9090, owners) == "container 'db' (127.0.0.1:9090/tcp)"
    assert ports.port_holder("tcp", IPv4Address("192.0.2.1"), 9090, owners) is None
    assert ports.port_holder("udp", ANY, 8080, owners) is None

    with pytest.raises(Conflict, match=r"'127.0.0.1:8080/tcp': already held by container 'web'"):
        ports.check_host_port_free("tcp", LOCALHOST, 8080, owners)


def test_port_holder_names_a_listening_socket(monkeypatch: pytest.MonkeyPatch) -> None:
    listener = ports.Listener(LOCALHOST, 5000, "tcp", inode=12345)
    monkeypatch.setattr(ports, "listeners", lambda protocol: [listener])
    monkeypatch.setattr(ports, "_socket_owner", lambda inode: (42, "httpd"))

    assert ports.port_holder("tcp", ANY, 5000, {}) == (
        "process 42 (httpd) listening on 127.0.0.1:5000/tcp"
    )
    assert ports.port_holder("tcp", IPv4Address("192.0.2.1"), 5000, {}) is None


def test_choose_host_port_skips_taken_ports(monkeypatch: pytest.MonkeyPatch) -> None:
    listener = ports.Listener(ANY, 8001, "tcp", inode=1)
    monkeypatch.setattr(ports, "listeners", lambda protocol: [listener])
    owners = [published("0.0.0.0", 8000), published("192.0.2.7", 8002)]

    assert ports.choose_host_port("tcp", ANY, owners, 8000, 8010) == 8003
    assert ports.choose_host_port("tcp", IPv4Address("192.0.2.8"), owners, 8000, 8010) == 8002
    assert ports.choose_host_port("udp", ANY, owners, 8000, 8010) == 8000
    with pytest.raises(Conflict, match="every port is taken"):
        ports.choose_host_port("tcp", ANY, owners, 8000, 8001)


def test_choose_host_port_defaults_to_the_local_port_range(
    monkeypatch: pytest.MonkeyPatch, no_listeners: None
) -> None:
    monkeypatch.setattr(ports, "local_port_range", lambda: (40000, 40005))
    assert ports.choose_host_port("tcp", ANY, [published("0.0.0.0", 40000)]) == 40001
