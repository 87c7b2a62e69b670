"""nsnet.cli's parsing of docker's flags and its docker-like tables and JSON (no daemon)."""

import json

import click
import pytest

from nsnet import cli


def test_a_table_is_aligned_like_dockers_tabwriter() -> None:
    rows = [
        ["695c57c21014", "bridge", "bridge", "local"],
        ["9d93a9c53d80", "host", "host", "local"],
        ["aec713e9e402", "n1", "bridge", "local"],
        ["aaacff8ce190", "none", "null", "local"],
    ]

    table = cli.format_table(["NETWORK ID", "NAME", "DRIVER", "SCOPE"], rows)

    # What docker 28's `network ls` printed against dockerd 20.10 for the same rows.
    assert table == (
        "NETWORK ID     NAME      DRIVER    SCOPE\n"
        "695c57c21014   bridge    bridge    local\n"
        "9d93a9c53d80   host      host      local\n"
        "aec713e9e402   n1        bridge    local\n"
        "aaacff8ce190   none      null      local\n"
    )


def test_long_cells_widen_their_column_by_three_spaces() -> None:
    table = cli.format_table(["A", "B"], [["a-rather-long-name", "x"]])

    assert table == "A" + " " * 20 + "B\n" + "a-rather-long-name   x\n"


def test_inspect_json_is_indented_by_four_and_escapes_html() -> None:
    text = cli.format_json([{"Name": "a<b>&c", "Labels": {}, "Config": []}])

    assert text == (
        "[\n"
        "    {\n"
        '        "Name": "a\\u003cb\\u003e\\u0026c",\n'
        '        "Labels": {},\n'
        '        "Config": []\n'
        "    }\n"
        "]\n"
    )
    assert cli.format_json([]) == "[]\n"


def test_ipam_flags_are_grouped_by_the_subnet_that_holds_them() -> None:
    configs = cli.ipam_configs(
        ["10.1.0.0/16", "10.2.0.0/16"],
        ["10.2.1.0/24"],
        ["10.1.0.254", "10.2.0.1"],
        ["router=10.2.0.2", "dns=10.1.0.3"],
    )

    assert configs == [
        {
            "Subnet": "10.1.0.0/16",
            "Gateway": "10.1.0.254",
            "AuxiliaryAddresses": {"dns": "10.1.0.3"},
        },
        {
            "Subnet": "10.2.0.0/16",
            "IPRange": "10.2.1.0/24",
            "Gateway": "10.2.0.1",
            "AuxiliaryAddresses": {"router": "10.2.0.2"},
        },
    ]


@pytest.mark.parametrize(
    "subnets, ranges, gateways, aux, message",
    [
        ([], [], ["10.0.0.1"], [], "must have a corresponding subnet"),
        (["10.0.0.0/24"], [], ["10.9.0.1"], [], "no matching subnet for gateway 10.9.0.1"),
        (["10.0.0.0/24"], ["10.0.1.0/25"], [], [], "no matching subnet for range"),
        (["10.0.0.0/24"], [], ["10.0.0.1", "10.0.0.2"], [], "multiple gateways"),
        (["10.0.0.0/16", "10.0.1.0/24"], [], [], [], "overlapping"),
        (["10.0.0.0/24"], [], [], ["x"], "key=value"),
        (["10.0.0.0/33"], [], [], [], "10.0.0.0/33"),
        (["fd00::/64"], [], [], [], "IPv6 is not supported yet"),
    ],
)
def test_inconsistent_ipam_flags_are_refused(
    subnets: list, ranges: list, gateways: list, aux: list, message: str
) -> None:
    with pytest.raises(click.UsageError, match=message):
        cli.ipam_configs(subnets, ranges, gateways, aux)


def run_options(**overrides) -> dict:
    options = {
        "name": None,
        "network": (),
        "ip": None,
        "mac_address": None,
        "hostname": None,
        "sysctl": (),
        "network_alias": (),
        "dns": (),
        "dns_search": (),
        "dns_option": (),
        "add_host": (),
        "publish": (),
        "publish_all": False,
        "expose": (),
        "label": (),
        "interactive": False,
        "tty": False,
        "rm": False,
    }
    options.update(overrides)
    return options


def test_a_second_network_at_create_is_refused_naming_both() -> None:
    """Regression: the last --network won silently."""
    with pytest.raises(click.UsageError, match="network endpoints: back, front"):
        cli.container_body(run_options(network=("back", "front")), ("true",))


def test_run_flags_become_a_docker_container_create_body() -> None:
    options = run_options(
        network=("front",),
        ip="10.9.0.9",
        mac_address="02:42:0a:09:00:09",
        hostname="web",
        sysctl=("net.ipv4.ip_forward=1",),
        network_alias=("www",),
        publish=("8080:80",),
        expose=("53/udp",),
        label=("tier=web", "plain"),
        rm=True,
    )

    body = cli.container_body(options, ("httpd", "-f"))

    assert body["Cmd"] == ["httpd", "-f"] and body["Hostname"] == "web"
    assert body["MacAddress"] == "02:42:0a:09:00:09"
    assert body["Labels"] == {"tier": "web", "plain": ""}
    assert body["ExposedPorts"] == {"53/udp": {}, "80/tcp": {}}
    assert body["HostConfig"] == {
        "NetworkMode": "front",
        "PortBindings": {"80/tcp": [{"HostIp": "", "HostPort": "8080"}]},
        "PublishAllPorts": False,
        "AutoRemove": True,
        "Sysctls": {"net.ipv4.ip_forward": "1"},
        "Dns": [],
        "DnsOptions": [],
        "DnsSearch": [],
        "ExtraHosts": None,
    }
    endpoint = {"IPAMConfig": {"IPv4Address": "10.9.0.9"}, "Aliases": ["www"]}
    assert body["NetworkingConfig"] == {"EndpointsConfig": {"front": endpoint}}


def test_dns_flags_become_dockers_host_config_fields() -> None:
    options = run_options(
        dns=("192.0.2.53", "198.51.100.53"),
        dns_search=("example.test",),
        dns_option=("timeout:1", "attempts:2"),
        add_host=("db:203.0.113.5", "cache=203.0.113.6"),
    )

    host_config = cli.container_body(options, ("true",))["HostConfig"]

    assert host_config["Dns"] == ["192.0.2.53", "198.51.100.53"]
    assert host_config["DnsSearch"] == ["example.test"]
    assert host_config["DnsOptions"] == ["timeout:1", "attempts:2"]
    assert host_config["ExtraHosts"] == ["db:203.0.113.5", "cache:203.0.113.6"]


def test_an_add_host_needs_an_address() -> None:
    with pytest.raises(click.BadParameter, match="host:ip"):
        cli.container_body(run_options(add_host=("lonely",)), ("true",))


def test_a_host_port_range_for_one_container_port_is_passed_through() -> None:
    body = cli.container_body(run_options(publish=("8000-8010:80",)), ("true",))

    assert body["HostConfig"]["PortBindings"] == {
        "80/tcp": [{"HostIp": "", "HostPort": "8000-8010"}]
    }


def test_without_a_network_the_container_goes_on_the_default_bridge() -> None:
    body = cli.container_body(run_options(), ("true",))

    assert body["HostConfig"]["NetworkMode"] == "default"
    assert body["NetworkingConfig"] == {"EndpointsConfig": {}}


def test_a_sysctl_needs_a_value() -> None:
    with pytest.raises(click.BadParameter, match="key=value"):
        cli.container_body(run_options(sysctl=("net.ipv4.ip_forward",)), ("true",))


def test_filter_flags_become_dockers_filters_json() -> None:
    text = cli.parse_filter_flags(["type=custom", "name=a", "name=b"])

    assert json.loads(text) == {"type": {"custom": True}, "name": {"a": True, "b": True}}
    assert cli.parse_filter_flags([]) is None
    with pytest.raises(click.BadParameter):
        cli.parse_filter_flags(["custom"])


def test_ps_shows_docker_like_columns() -> None:
    now = 1_796_323_400.0
    containers = [
        {
            "Id": "f01bf4a6e14ccaea05b7294b3129f44654609100a004ba0997ed16c1941702e7",
            "Names": ["/c2"],
            "Command": "sh -c 'while true; do sleep 1; done'",
            "Created": int(now - 125),
            "Status": "Up 2 minutes",
            "Ports": [
                {"IP": "0.0.0.0", "PrivatePort": 80, "PublicPort": 8080, "Type": "tcp"},
                {"IP": "0.0.0.0", "PrivatePort": 53, "PublicPort": 5353, "Type": "udp"},
            ],
            "NetworkSettings": {"Networks": {"front": {}, "bridge": {}}},
        },
        {
            "Id": "cba361a25008" + "0" * 52,
            "Names": ["/c4"],
            "Command": "true",
            "Created": int(now - 3),
            "Status": "Exited (3) 1 second ago",
            "Ports": [],
            "NetworkSettings": {"Networks": {}},
        },
    ]

    table = cli.format_ps(containers, no_trunc=False, now=now)

    assert table.splitlines() == [
        "CONTAINER ID   NAMES     COMMAND                  CREATED         STATUS                    PORTS                                        NETWORKS",  # noqa: E501
        'f01bf4a6e14c   c2        "sh -c \'while true; …"   2 minutes ago   Up 2 minutes              0.0.0.0:5353->53/udp, 0.0.0.0:8080->80/tcp   bridge,front',  # noqa: E501
        'cba361a25008   c4        "true"                   3 seconds ago   Exited (3) 1 second ago                                                ',  # noqa: E501
    ]


def test_port_lines_are_sorted_by_port() -> None:
    ports = {
        "80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "8080"}],
        "53/udp": [{"HostIp": "127.0.0.1", "HostPort": "5353"}],
        "9000/tcp": None,
    }

    assert cli.format_port_lines(ports, None) == [
        "53/udp -> 127.0.0.1:5353",
        "80/tcp -> 0.0.0.0:8080",
    ]
    assert cli.format_port_lines(ports, "80") == ["0.0.0.0:8080"]
    assert cli.format_port_lines(ports, "53/tcp") == []


def test_port_lines_are_in_dockers_natural_order() -> None:
    ports = {
        "80/tcp": [
            {"HostIp": "192.0.2.1", "HostPort": "8082"},
            {"HostIp": "0.0.0.0", "HostPort": "32768"},
            {"HostIp": "0.0.0.0", "HostPort": "8000"},
        ],
        "443/tcp": [{"HostIp": "0.0.0.0", "HostPort": "8443"}],
    }

    assert cli.format_port_lines(ports, None) == [
        "80/tcp -> 0.0.0.0:8000",
        "80/tcp -> 0.0.0.0:32768",
        "80/tcp -> 192.0.2.1:8082",
        "443/tcp -> 0.0.0.0:8443",
    ]
    assert cli.format_port_lines(ports, "80") == [
        "0.0.0.0:8000",
        "0.0.0.0:32768",
        "192.0.2.1:8082",
    ]


@pytest.mark.parametrize(
    "seconds, words",
    [
        (0.5, "Less than a second"),
        (1, "1 second"),
        (59, "59 seconds"),
        (60, "About a minute"),
        (119, "About a minute"),
        (120, "2 minutes"),
        (3600, "About an hour"),
        (7200, "2 hours"),
        (3 * 86400, "3 days"),
        (20 * 86400, "2 weeks"),
        (90 * 86400, "3 months"),
        (800 * 86400, "2 years"),
    ],
)
def test_durations_are_worded_like_dockers(seconds: float, words: str) -> None:
    from nsnet.api.timefmt import human_duration

    assert human_duration(seconds) == words


def test_host_must_be_a_unix_socket() -> None:
    assert cli.socket_from_host("unix:///run/x.sock") == "/run/x.sock"
    assert cli.socket_from_host("/run/x.sock") == "/run/x.sock"
    with pytest.raises(click.BadParameter, match="only unix://"):
        cli.socket_from_host("tcp://127.0.0.1:2375")


NETWORKS = [
    {"Id": "a" * 64, "Name": "bridge", "Driver": "bridge", "Scope": "local", "Labels": {}},
    {"Id": "b" * 64, "Name": "front", "Driver": "bridge", "Scope": "local",
     "Labels": {"tier": "web"}, "Internal": True},
]  # fmt: skip


def test_network_ls_format_takes_a_template_a_table_or_json() -> None:
    rows = [cli.network_row(entry, no_trunc=False) for entry in NETWORKS]

    assert cli.format_listed(rows, "{{.Name}} {{.Driver}}", "NETWORK ID") == (
        "bridge bridge\nfront bridge\n"
    )
    assert cli.format_listed(rows, "table {{.ID}}\\t{{.Name}}\\t{{.Labels}}", "NETWORK ID") == (
        "NETWORK ID     NAME      LABELS\n"
        "aaaaaaaaaaaa   bridge    \n"
        "bbbbbbbbbbbb   front     tier=web\n"
    )
    lines = cli.format_listed(rows, "json", "NETWORK ID").splitlines()
    assert [json.loads(line)["Name"] for line in lines] == ["bridge", "front"]
    assert json.loads(lines[1])["Internal"] == "true"
    with pytest.raises(click.UsageError, match="template parsing error"):
        cli.format_listed(rows, "{{.Name", "NETWORK ID")


def test_ps_format_has_dockers_fields() -> None:
    entry = {
        "Id": "c" * 64,
        "Names": ["/web"],
        "Command": "sleep 300",
        "Created": 1_700_000_000,
        "State": "running",
        "Status": "Up 2 minutes",
        "Ports": [{"IP": "0.0.0.0", "PrivatePort": 80, "PublicPort": 8080, "Type": "tcp"}],
        "Labels": {},
        "NetworkSettings": {"Networks": {"bridge": {}}},
    }
    row = cli.container_row(entry, no_trunc=False, now=1_700_000_120)

    shown = cli.format_listed(
        [row], "{{.ID}}|{{.Names}}|{{.Command}}|{{.Ports}}|{{.RunningFor}}|{{.Networks}}", "X"
    )
    assert shown == ('cccccccccccc|web|"sleep 300"|0.0.0.0:8080->80/tcp|2 minutes ago|bridge\n')


def test_ports_published_on_their_own_numbers_are_drawn_as_runs() -> None:
    def port(private: int, public: int = 0, address: str = "0.0.0.0", kind: str = "tcp"):
        return {"PrivatePort": private, "PublicPort": public, "IP": address, "Type": kind}

    ports = [port(number, number) for number in range(30000, 30201)]
    ports += [port(80, 8080), port(22), port(23), port(53, 53, kind="udp")]
    ports += [port(90, 90, "127.0.0.1")]

    assert cli.format_ports(ports) == (
        "22-23/tcp, 0.0.0.0:53->53/udp, 127.0.0.1:90->90/tcp, "
        "0.0.0.0:30000-30200->30000-30200/tcp, 0.0.0.0:8080->80/tcp"
    )
    assert cli.format_ports([port(8001, 8001), port(8003, 8003)]) == (
        "0.0.0.0:8001->8001/tcp, 0.0.0.0:8003->8003/tcp"
    )
