"""nsnet.api.schemas: engine records as Docker 20.10's JSON, Docker's bodies as engine requests.

The expected JSON was read from Debian's dockerd 20.10.24 (``GET /networks/{id}``,
``GET /containers/{id}/json``) and only ids, times and names differ.
"""

import json
from ipaddress import IPv4Address, IPv4Network

import pytest

from nsnet.api import schemas
from nsnet.errors import InvalidArgument
from nsnet.models import Container, Endpoint, IpamConfig, Network, PortBinding

NETWORK_ID = "981f5c2cb52e597a063e8f9e8d172eee5ca267cd31de1856bec920ed62dde70c"
CONTAINER_ID = "f6a5873d72250f842d696b61bc5ba5330175a246b3dbad101f7aa45aee90c893"
ENDPOINT_ID = "08280c304d3022453b1435f1764d4069d1e9cd3a341adac191fa9f72c2832502"
CREATED = "2026-12-03T18:42:00.447805973Z"


def user_network() -> Network:
    return Network(
        id=NETWORK_ID,
        name="full",
        driver="bridge",
        created=CREATED,
        internal=True,
        attachable=True,
        ipam=[
            IpamConfig(
                subnet=IPv4Network("10.50.0.0/24"),
                gateway=IPv4Address("10.50.0.1"),
                ip_range=IPv4Network("10.50.0.128/25"),
                aux_addresses={"a": IPv4Address("10.50.0.3"), "b": IPv4Address("10.50.0.4")},
            )
        ],
        options={"com.docker.network.bridge.name": "brx"},
        labels={"l": "1"},
    )


def container_on(network: Network) -> tuple[Container, Endpoint]:
    container = Container(
        id=CONTAINER_ID,
        name="c1",
        created=CREATED,
        hostname="f6a5873d7225",
        network_mode=network.name,
        command=["sleep", "1000"],
        state="running",
        pid=6645,
        started_at=CREATED,
        ports=[PortBinding(container_port=80, host_port=8080)],
        netns_path="/run/nsnet/netns/f6a5873d7225",
    )
    endpoint = Endpoint(
        id=ENDPOINT_ID,
        network_id=network.id,
        container_id=container.id,
        container_ifname="eth0",
        host_ifname="veth1234567",
        mac_address="02:42:0a:32:00:89",
        address=IPv4Address("10.50.0.137"),
        prefixlen=24,
        gateway=IPv4Address("10.50.0.1"),
        aliases=["web"],
        static_address=True,
    )
    return container, endpoint


def test_a_user_network_renders_as_docker_20_10_inspect_does() -> None:
    network = user_network()
    container, endpoint = container_on(network)

    rendered = schemas.NetworkResourceOut.from_network(network, [(container, endpoint)]).to_json()

    expected = {
        "Name": "full",
        "Id": NETWORK_ID,
        "Created": CREATED,
        "Scope": "local",
        "Driver": "bridge",
        "EnableIPv6": False,
        "IPAM": {
            "Driver": "default",
            "Options": {},
            "Config": [
                {
                    "Subnet": "10.50.0.0/24",
                    "IPRange": "10.50.0.128/25",
                    "Gateway": "10.50.0.1",
                    "AuxiliaryAddresses": {"a": "10.50.0.3", "b": "10.50.0.4"},
                }
            ],
        },
        "Internal": True,
        "Attachable": True,
        "Ingress": False,
        "ConfigFrom": {"Network": ""},
        "ConfigOnly": False,
        "Containers": {
            CONTAINER_ID: {
                "Name": "c1",
                "EndpointID": ENDPOINT_ID,
                "MacAddress": "02:42:0a:32:00:89",
                "IPv4Address": "10.50.0.137/24",
                "IPv6Address": "",
            }
        },
        "Options": {"com.docker.network.bridge.name": "brx"},
        "Labels": {"l": "1"},
    }
    # Key order matters: clients print the JSON as it comes.
    assert json.dumps(rendered) == json.dumps(expected)


def test_ipam_config_leaves_out_what_is_not_set() -> None:
    network = Network(
        id=NETWORK_ID,
        name="n4",
        driver="bridge",
        created=CREATED,
        ipam=[IpamConfig(subnet=IPv4Network("10.20.0.0/16"))],
    )

    rendered = schemas.NetworkResourceOut.from_network(network).to_json()

    assert rendered["IPAM"]["Config"] == [{"Subnet": "10.20.0.0/16"}]


def test_maps_are_written_in_key_order_as_go_writes_them() -> None:
    network = Network(
        id=NETWORK_ID,
        name="n5",
        driver="bridge",
        created=CREATED,
        ipam=[
            IpamConfig(
                subnet=IPv4Network("10.21.0.0/16"),
                aux_addresses={
                    "zeta": IPv4Address("10.21.0.9"),
                    "alpha": IPv4Address("10.21.0.8"),
                },
            )
        ],
        ipam_options={"z": "1", "a": "2"},
        options={"com.docker.network.driver.mtu": "1400", "com.docker.network.bridge.name": "b"},
        labels={"tier": "x", "owner": "y"},
    )

    rendered = schemas.NetworkResourceOut.from_network(network).to_json()

    assert list(rendered["IPAM"]["Config"][0]["AuxiliaryAddresses"]) == ["alpha", "zeta"]
    assert list(rendered["IPAM"]["Options"]) == ["a", "z"]
    assert list(rendered["Options"]) == [
        "com.docker.network.bridge.name",
        "com.docker.network.driver.mtu",
    ]
    assert list(rendered["Labels"]) == ["owner", "tier"]


@pytest.mark.parametrize("name, driver", [("host", "host"), ("none", "null")])
def test_builtin_networks_have_null_ipam_options_and_no_config(name: str, driver: str) -> None:
    network = Network(id=NETWORK_ID, name=name, driver=driver, created=CREATED)

    rendered = schemas.NetworkResourceOut.from_network(network).to_json()

    assert rendered["IPAM"] == {"Driver": "default", "Options": None, "Config": []}
    assert rendered["Options"] == {} and rendered["Labels"] == {} and rendered["Containers"] == {}


def test_the_list_form_has_no_containers() -> None:
    network = user_network()

    rendered = schemas.NetworkResourceOut.from_network(network, None).to_json()

    assert rendered["Containers"] == {}
    assert list(rendered) == [
        "Name", "Id", "Created", "Scope", "Driver", "EnableIPv6", "IPAM", "Internal",
        "Attachable", "Ingress", "ConfigFrom", "ConfigOnly", "Containers", "Options", "Labels",
    ]  # fmt: skip


def test_a_network_create_body_from_the_docker_cli_becomes_an_engine_request() -> None:
    body = {
        "Name": "full",
        "CheckDuplicate": True,
        "Driver": "bridge",
        "Scope": "",
        "EnableIPv6": False,
        "IPAM": {
            "Driver": "default",
            "Config": [
                {
                    "Subnet": "10.50.0.0/24",
                    "IPRange": "10.50.0.128/25",
                    "Gateway": "10.50.0.1",
                    "AuxiliaryAddresses": {"a": "10.50.0.3"},
                }
            ],
            "Options": {},
        },
        "Internal": True,
        "Attachable": False,
        "Ingress": False,
        "ConfigOnly": False,
        "ConfigFrom": None,
        "Options": {"com.docker.network.driver.mtu": "1400"},
        "Labels": {"l": "1"},
    }

    request = schemas.NetworkCreateBody.model_validate_json(json.dumps(body)).to_request()

    assert request.name == "full" and request.driver == "bridge" and request.internal
    assert request.ipam == [
        IpamConfig(
            subnet=IPv4Network("10.50.0.0/24"),
            gateway=IPv4Address("10.50.0.1"),
            ip_range=IPv4Network("10.50.0.128/25"),
            aux_addresses={"a": IPv4Address("10.50.0.3")},
        )
    ]
    assert request.options == {"com.docker.network.driver.mtu": "1400"}
    assert request.labels == {"l": "1"}


def test_field_names_match_without_regard_to_case_as_in_go() -> None:
    body = '{"name": "n1", "driver": "bridge", "ipam": {"config": [{"subnet": "10.1.0.0/16"}]}}'

    request = schemas.NetworkCreateBody.model_validate_json(body).to_request()

    assert request.name == "n1"
    assert request.ipam[0].subnet == IPv4Network("10.1.0.0/16")


def test_a_minimal_body_gets_dockers_defaults() -> None:
    request = schemas.NetworkCreateBody.model_validate_json('{"Name": "n1"}').to_request()

    assert request.driver == "bridge"
    assert request.ipam == [] and request.options == {} and request.labels == {}


def test_a_string_where_a_boolean_belongs_is_refused() -> None:
    with pytest.raises(Exception, match="Internal"):
        schemas.NetworkCreateBody.model_validate_json('{"Name": "n1", "Internal": "yes"}')


@pytest.mark.parametrize(
    "config, message",
    [
        ({"Subnet": "10.0.0.0/33"}, r"IPAM.Config\[0\].Subnet '10.0.0.0/33'"),
        ({"Subnet": "10.0.0.1/24"}, "has host bits set"),
        ({"Subnet": "fd00::/64"}, "IPv6 is not supported yet"),
        ({"Subnet": "10.0.0.0/24", "Gateway": "10.0.0.300"}, r"Config\[0\].Gateway"),
        ({"Gateway": "10.0.0.1"}, "needs a Subnet"),
    ],
)
def test_bad_ipam_config_names_the_field(config: dict, message: str) -> None:
    body = schemas.NetworkCreateBody.model_validate({"Name": "n1", "IPAM": {"Config": [config]}})

    with pytest.raises(InvalidArgument, match=message):
        body.to_request()


def test_swarm_only_features_are_refused() -> None:
    body = schemas.NetworkCreateBody.model_validate({"Name": "n1", "Ingress": True})

    with pytest.raises(InvalidArgument, match="swarm"):
        body.to_request()


def test_a_container_create_body_as_the_docker_cli_sends_it() -> None:
    body = {
        "Hostname": "web",
        "Cmd": ["httpd", "-f"],
        "Image": "",
        "MacAddress": "02:42:ac:11:00:99",
        "Labels": {"a": "b"},
        "ExposedPorts": {"80/tcp": {}, "53/udp": {}, "9000/tcp": {}},
        "HostConfig": {
            "NetworkMode": "front",
            "PortBindings": {
                "80/tcp": [{"HostIp": "", "HostPort": "8080"}],
                "53/udp": [{"HostIp": "127.0.0.1", "HostPort": ""}],
            },
            "PublishAllPorts": True,
            "AutoRemove": True,
            "Sysctls": {"net.ipv4.ip_forward": "1"},
        },
        "NetworkingConfig": {
            "EndpointsConfig": {
                "front": {"IPAMConfig": {"IPv4Address": "10.9.0.9"}, "Aliases": ["www"]}
            }
        },
    }

    request = schemas.ContainerCreateBody.model_validate_json(json.dumps(body)).to_request("c1")

    assert request.name == "c1" and request.hostname == "web"
    assert request.command == ["httpd", "-f"]
    assert request.network == "front"
    assert request.ip_address == "10.9.0.9" and request.aliases == ["www"]
    assert request.mac_address == "02:42:ac:11:00:99"
    assert request.auto_remove and request.sysctls == {"net.ipv4.ip_forward": "1"}
    # No HostIp: the network's host_binding_ipv4, which the engine fills in.
    assert request.ports == [
        PortBinding(container_port=80, protocol="tcp", host_ip="", host_port=8080),
        PortBinding(container_port=53, protocol="udp", host_ip="127.0.0.1", host_port=0),
        PortBinding(container_port=9000, protocol="tcp", host_ip="", host_port=0),
    ]


def test_the_default_network_mode_is_the_default_bridge() -> None:
    body = schemas.ContainerCreateBody.model_validate({"Cmd": "true", "HostConfig": {}})

    request = body.to_request(None)

    assert request.network == "bridge" and request.command == ["true"] and request.name is None


def test_a_network_named_only_in_endpoints_config_is_used() -> None:
    body = schemas.ContainerCreateBody.model_validate(
        {"Cmd": ["true"], "NetworkingConfig": {"EndpointsConfig": {"back": {}}}}
    )

    assert body.to_request(None).network == "back"


def test_a_host_port_range_asks_for_any_free_port_of_it() -> None:
    bindings = {
        "80/tcp": [{"HostPort": "8000-8010"}],
        "81/tcp": [{"HostPort": "8020-8020"}],
    }
    body = schemas.ContainerCreateBody.model_validate(
        {"Cmd": ["true"], "HostConfig": {"PortBindings": bindings}}
    )

    assert body.to_request(None).ports == [
        PortBinding(container_port=80, host_ip="", host_port=8000, host_port_last=8010),
        PortBinding(container_port=81, host_ip="", host_port=8020, host_port_last=0),
    ]


def test_dns_fields_of_host_config_reach_the_request() -> None:
    host_config = {
        "Dns": ["192.0.2.53"],
        "DnsOptions": ["ndots:2"],
        "DnsSearch": ["example.test"],
        "ExtraHosts": ["db:203.0.113.5"],
    }
    body = schemas.ContainerCreateBody.model_validate({"Cmd": ["true"], "HostConfig": host_config})

    request = body.to_request(None)

    assert request.dns == ["192.0.2.53"] and request.dns_options == ["ndots:2"]
    assert request.dns_search == ["example.test"]
    assert request.extra_hosts == ["db:203.0.113.5"]


@pytest.mark.parametrize(
    "bindings, message",
    [
        ({"80/icmp": []}, "unknown protocol 'icmp'"),
        ({"0/tcp": []}, "not a port number"),
        ({"80/tcp": [{"HostPort": "80000"}]}, "host port '80000'"),
        ({"80/tcp": [{"HostPort": "8010-8000"}]}, "ends before it starts"),
        ({"80/tcp": [{"HostPort": "8000-"}]}, "host port '8000-'"),
        ({"80/tcp": [{"HostIp": "::1", "HostPort": "80"}]}, "IPv6 is not supported yet"),
    ],
)
def test_bad_port_bindings_are_refused(bindings: dict, message: str) -> None:
    body = schemas.ContainerCreateBody.model_validate(
        {"Cmd": ["true"], "HostConfig": {"PortBindings": bindings}}
    )

    with pytest.raises(InvalidArgument, match=message):
        body.to_request(None)


def test_a_container_renders_as_docker_inspect_does() -> None:
    network = Network(id=NETWORK_ID, name="bridge", driver="bridge", created=CREATED)
    container, endpoint = container_on(network)

    rendered = schemas.ContainerInspectOut.from_container(container, [(network, endpoint)])
    data = rendered.to_json()

    assert list(data)[:5] == ["Id", "Created", "Path", "Args", "State"]
    assert data["Name"] == "/c1" and data["Path"] == "sleep" and data["Args"] == ["1000"]
    assert data["State"]["Status"] == "running" and data["State"]["Running"] is True
    assert data["State"]["Pid"] == 6645
    assert data["State"]["FinishedAt"] == "0001-01-01T00:00:00Z"
    assert data["HostConfig"]["PortBindings"] == {
        "80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "8080"}]
    }
    # As Docker prints them for a container created without DNS flags.
    assert data["HostConfig"]["Dns"] == [] and data["HostConfig"]["DnsSearch"] == []
    assert data["HostConfig"]["DnsOptions"] == [] and data["HostConfig"]["ExtraHosts"] is None
    settings = data["NetworkSettings"]
    assert settings["SandboxKey"] == "/run/nsnet/netns/f6a5873d7225"
    assert settings["Ports"] == {"80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "8080"}]}
    # The default bridge's endpoint is repeated at the top, as Docker does.
    assert settings["IPAddress"] == "10.50.0.137" and settings["IPPrefixLen"] == 24
    assert settings["Networks"]["bridge"] == {
        "IPAMConfig": {"IPv4Address": "10.50.0.137"},
        "Links": None,
        "Aliases": ["web"],
        "NetworkID": NETWORK_ID,
        "EndpointID": ENDPOINT_ID,
        "Gateway": "10.50.0.1",
        "IPAddress": "10.50.0.137",
        "IPPrefixLen": 24,
        "IPv6Gateway": "",
        "GlobalIPv6Address": "",
        "GlobalIPv6PrefixLen": 0,
        "MacAddress": "02:42:0a:32:00:89",
        "DriverOpts": None,
    }


def test_a_container_summary_says_how_long_it_is_up() -> None:
    network = user_network()
    container, endpoint = container_on(network)

    summary = schemas.ContainerSummaryOut.from_container(container, [(network, endpoint)])
    data = summary.to_json()

    assert data["Names"] == ["/c1"] and data["Command"] == "sleep 1000"
    assert data["Status"].startswith("Up ")
    assert data["Ports"] == [
        {"IP": "0.0.0.0", "PrivatePort": 80, "PublicPort": 8080, "Type": "tcp"}
    ]
    assert list(data["NetworkSettings"]["Networks"]) == ["full"]
