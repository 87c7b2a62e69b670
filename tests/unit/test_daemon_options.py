"""nsnetd's command line: the upstream DNS servers from --dns and NSNET_DNS."""

import pytest

from nsnet import daemon
from nsnet.errors import InvalidArgument


def test_dns_flags_repeat_as_dockerds_do() -> None:
    options = daemon.parse_arguments(["--dns", "192.0.2.53", "--dns", "198.51.100.53"])

    assert daemon.dns_servers(options.dns, {}) == ["192.0.2.53", "198.51.100.53"]


def test_nsnet_dns_is_read_when_no_flag_is_given() -> None:
    environment = {"NSNET_DNS": " 192.0.2.53, 192.0.2.54:5353 ,"}

    assert daemon.dns_servers([], environment) == ["192.0.2.53", "192.0.2.54:5353"]
    assert daemon.dns_servers(["203.0.113.53"], environment) == ["203.0.113.53"]


def test_without_either_the_hosts_servers_are_used() -> None:
    assert daemon.parse_arguments([]).dns == []
    assert daemon.dns_servers([], {}) == []


def test_a_bad_server_is_refused_naming_it() -> None:
    with pytest.raises(InvalidArgument, match="'resolver'"):
        daemon.dns_servers(["resolver"], {})
    with pytest.raises(InvalidArgument, match="'192.0.2.999'"):
        daemon.dns_servers([], {"NSNET_DNS": "192.0.2.999"})
