"""``-p`` and ``--expose`` as the CLI parses them (as Docker's CLI does) into the API's body."""

import click
import pytest

from nsnet import cli


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("80", [("80/tcp", "", "")]),
        ("80/udp", [("80/udp", "", "")]),
        ("80/SCTP", [("80/sctp", "", "")]),
        ("80/", [("80/tcp", "", "")]),
        ("8080:80", [("80/tcp", "", "8080")]),
        ("127.0.0.1:8080:80/udp", [("80/udp", "127.0.0.1", "8080")]),
        ("127.0.0.1::80", [("80/tcp", "127.0.0.1", "")]),
        ("0:80", [("80/tcp", "", "")]),
        (
            "8000-8002:80-82",
            [("80/tcp", "", "8000"), ("81/tcp", "", "8001"), ("82/tcp", "", "8002")],
        ),
        ("80-81", [("80/tcp", "", ""), ("81/tcp", "", "")]),
        # A host range for one container port: any free port of the range (Docker's rule).
        ("8000-8010:80", [("80/tcp", "", "8000-8010")]),
    ],
)
def test_publish_specs(spec: str, expected: list[tuple[str, str, str]]) -> None:
    assert cli.parse_publish(spec) == expected


@pytest.mark.parametrize(
    ("spec", "cause"),
    [
        ("", "invalid port ''"),
        ("8080:", "invalid port ''"),
        ("80/icmp", "unknown protocol 'icmp'"),
        ("x:80", "invalid port 'x'"),
        ("8080:y", "invalid port 'y'"),
        ("+80", "invalid port '+80'"),
        (" 80", "invalid port ' 80'"),
        ("70000:80", "invalid port range '70000'"),
        ("0", "invalid port range '0'"),
        ("90-80", "invalid port range '90-80'"),
        ("8080:80-81", "ranges differ in size"),
        ("8000-8001:80-82", "ranges differ in size"),
        ("300.1.1.1:80:80", "'300.1.1.1'"),
        ("1.2.3:80:80", "does not appear to be an IPv4"),
        ("[::1]:80:80", "IPv6 is not supported yet"),
        ("::1:80:80", "IPv6 is not supported yet"),
    ],
)
def test_bad_publish_specs_are_refused_naming_them(spec: str, cause: str) -> None:
    with pytest.raises(click.BadParameter) as raised:
        cli.parse_publish(spec)
    assert cause in raised.value.message


def test_expose_and_publish_fill_the_body() -> None:
    options = {
        "expose": ("8000-8001/udp",),
        "publish": ("127.0.0.1:8080:80",),
        "publish_all": False,
        "network": (),
        "ip": None,
        "network_alias": (),
        "hostname": None,
        "mac_address": None,
        "label": (),
        "sysctl": (),
        "dns": (),
        "dns_option": (),
        "dns_search": (),
        "add_host": (),
    }
    body = cli.container_body(options, ())

    assert body["ExposedPorts"] == {"8000/udp": {}, "8001/udp": {}, "80/tcp": {}}
    assert body["HostConfig"]["PortBindings"] == {
        "80/tcp": [{"HostIp": "127.0.0.1", "HostPort": "8080"}]
    }
    with pytest.raises(click.BadParameter, match="unknown protocol 'gre'"):
        cli.container_body(options | {"expose": ("80/gre",)}, ())
