"""resolv.conf and hosts: reading the host's, rendering the container's, rewriting in place."""

import os
from pathlib import Path

import pytest

from nsnet.dns import files
from nsnet.dns.files import (
    ResolvConf,
    container_resolv_conf,
    default_upstreams,
    parse_add_host,
    parse_resolv_conf,
    read_host_resolv_conf,
    render_hosts,
    render_resolv_conf,
    write_in_place,
)
from nsnet.dns.resolver import Upstream
from nsnet.errors import InvalidArgument

HOST_TEXT = """\
# written by the host's DHCP client
nameserver 127.0.0.53
nameserver 192.0.2.10
; another comment
nameserver 2001:db8::53
domain old.example
search corp.example lab.example
options edns0 trust-ad
"""

HOST = parse_resolv_conf(HOST_TEXT)
LOOPBACK_ONLY = ResolvConf(nameservers=["127.0.0.1"], search=["corp.example"])


def body(text: str) -> list[str]:
    """The lines of a rendered file without its comment."""
    return [line for line in text.splitlines() if not line.startswith("#")]


def test_parse_reads_servers_search_and_options() -> None:
    assert HOST.nameservers == ["127.0.0.53", "192.0.2.10", "2001:db8::53"]
    assert HOST.search == ["corp.example", "lab.example"]  # the last search/domain wins
    assert HOST.options == ["edns0", "trust-ad"]


def test_upstreams_leave_out_loopback_servers() -> None:
    assert HOST.upstreams() == [Upstream.parse("192.0.2.10"), Upstream.parse("2001:db8::53")]
    assert default_upstreams(HOST) == HOST.upstreams()


def test_default_upstreams_fall_back_as_docker_does() -> None:
    assert [str(upstream) for upstream in default_upstreams(LOOPBACK_ONLY)] == [
        "8.8.8.8",
        "8.8.4.4",
    ]


def test_embedded_resolv_conf_points_at_127_0_0_11() -> None:
    dns = container_resolv_conf(HOST, embedded=True)

    assert body(dns.text) == [
        "nameserver 127.0.0.11",
        "search corp.example lab.example",
        "options edns0 trust-ad ndots:0",
    ]
    assert dns.upstreams is None


def test_embedded_resolv_conf_with_dockers_flags() -> None:
    dns = container_resolv_conf(
        HOST,
        embedded=True,
        dns=["198.51.100.53"],
        dns_search=["svc.example"],
        dns_options=["timeout:2"],
    )

    assert body(dns.text) == [
        "nameserver 127.0.0.11",
        "search svc.example",
        "options timeout:2 ndots:0",
    ]
    assert dns.upstreams == (Upstream.parse("198.51.100.53"),)


def test_a_users_ndots_is_kept() -> None:
    dns = container_resolv_conf(HOST, embedded=True, dns_options=["ndots:3"])

    assert "options ndots:3" in dns.text
    assert "ndots:0" not in dns.text


def test_dns_search_dot_means_no_search_domains() -> None:
    dns = container_resolv_conf(HOST, embedded=True, dns_search=["."])

    assert not any(line.startswith("search") for line in dns.text.splitlines())


def test_default_bridge_uses_the_hosts_servers_directly() -> None:
    dns = container_resolv_conf(HOST, embedded=False)

    assert body(dns.text) == [
        "nameserver 192.0.2.10",
        "nameserver 2001:db8::53",
        "search corp.example lab.example",
        "options edns0 trust-ad",
    ]
    assert "127.0.0.11" not in dns.text
    assert dns.upstreams is None


def test_default_bridge_with_only_loopback_servers_falls_back() -> None:
    dns = container_resolv_conf(LOOPBACK_ONLY, embedded=False)

    assert body(dns.text)[:2] == ["nameserver 8.8.8.8", "nameserver 8.8.4.4"]


def test_default_bridge_with_dns_flag() -> None:
    dns = container_resolv_conf(HOST, embedded=False, dns=["198.51.100.53"])

    assert body(dns.text)[0] == "nameserver 198.51.100.53"
    assert len([line for line in dns.text.splitlines() if line.startswith("nameserver")]) == 1


def test_a_dns_flag_that_is_no_address_is_refused() -> None:
    with pytest.raises(InvalidArgument, match="cannot use --dns 'resolver.example'"):
        container_resolv_conf(HOST, embedded=True, dns=["resolver.example"])


def test_render_resolv_conf_leaves_out_empty_lines() -> None:
    assert body(render_resolv_conf(["192.0.2.10"])) == ["nameserver 192.0.2.10"]


def test_systemd_resolved_stub_is_replaced_by_its_upstream_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stub = tmp_path / "resolv.conf"
    stub.write_text("nameserver 127.0.0.53\nsearch corp.example\n")
    behind = tmp_path / "upstream.conf"
    behind.write_text("nameserver 192.0.2.10\nnameserver 192.0.2.11\n")
    monkeypatch.setattr(files, "SYSTEMD_RESOLVED_UPSTREAM_CONF", behind)

    conf = read_host_resolv_conf(stub)

    assert conf.nameservers == ["192.0.2.10", "192.0.2.11"]
    assert conf.search == ["corp.example"]


def test_a_missing_host_file_is_an_empty_configuration(tmp_path: Path) -> None:
    assert read_host_resolv_conf(tmp_path / "absent") == ResolvConf()


def test_hosts_file() -> None:
    text = render_hosts(
        "web",
        "a1b2c3d4e5f6",
        ["10.1.0.2", "10.2.0.2"],
        [("gateway.test", "192.0.2.1"), ("v6.test", "2001:db8::1")],
    )

    assert text.splitlines() == [
        "127.0.0.1\tlocalhost",
        "::1\tlocalhost ip6-localhost ip6-loopback",
        "fe00::0\tip6-localnet",
        "ff00::0\tip6-mcastprefix",
        "ff02::1\tip6-allnodes",
        "ff02::2\tip6-allrouters",
        "192.0.2.1\tgateway.test",
        "2001:db8::1\tv6.test",
        "10.1.0.2\ta1b2c3d4e5f6 web",
        "10.2.0.2\ta1b2c3d4e5f6 web",
    ]


def test_hosts_file_names_a_hostname_equal_to_the_name_once() -> None:
    assert render_hosts("web", "web", ["10.1.0.2"]).splitlines()[-1] == "10.1.0.2\tweb"


def test_parse_add_host() -> None:
    assert parse_add_host("gateway.test:192.0.2.1") == ("gateway.test", "192.0.2.1")
    assert parse_add_host("v6.test:2001:db8::1") == ("v6.test", "2001:db8::1")
    assert parse_add_host("v6.test:[2001:db8::1]") == ("v6.test", "2001:db8::1")
    with pytest.raises(InvalidArgument, match="cannot parse --add-host 'nocolon'"):
        parse_add_host("nocolon")
    with pytest.raises(InvalidArgument, match="not an IP address"):
        parse_add_host("name:not-an-address")


def test_write_in_place_keeps_the_inode(tmp_path: Path) -> None:
    target = tmp_path / "resolv.conf"
    target.write_text("nameserver 192.0.2.10\n" * 20)
    # A hard link stands in for a bind mount: both see one inode, and a rename would split them.
    view = tmp_path / "view"
    os.link(target, view)
    inode = target.stat().st_ino

    write_in_place(target, "nameserver 127.0.0.11\n")

    assert target.stat().st_ino == inode
    assert view.read_text() == "nameserver 127.0.0.11\n"


def test_write_in_place_creates_a_missing_file(tmp_path: Path) -> None:
    target = tmp_path / "hosts"

    write_in_place(target, "127.0.0.1\tlocalhost\n")

    assert target.read_text() == "127.0.0.1\tlocalhost\n"


def test_the_registry_warns_when_containers_fall_back_to_public_servers(monkeypatch) -> None:
    from nsnet.dns import registry

    monkeypatch.setattr(registry, "read_host_resolv_conf", lambda: LOOPBACK_ONLY)
    fallback = registry.DnsRegistry()
    assert [str(upstream) for upstream in fallback.server.resolver.upstreams] == [
        "8.8.8.8",
        "8.8.4.4",
    ]
    assert "8.8.8.8, 8.8.4.4" in fallback.warning and "--dns" in fallback.warning

    assert registry.DnsRegistry(["192.0.2.53"]).warning is None
    monkeypatch.setattr(registry, "read_host_resolv_conf", lambda: HOST)
    assert registry.DnsRegistry().warning is None
