"""Request bodies and responses of the API, in Docker Engine API 1.41's JSON shapes.

Fields keep Docker's PascalCase names as aliases and Docker's key order, because clients (the
docker CLI among them) print the JSON as they receive it. Request models read JSON strictly (a
string where a boolean belongs is an error, as in Docker) but match field names without regard
to case, as Go's JSON decoder does. Converting a body to an engine request checks what the types
alone cannot (CIDRs, addresses, port specs) and raises ``InvalidArgument`` naming the field.
"""

from ipaddress import IPv4Address, IPv4Network
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_serializer, model_validator

from nsnet import ipam
from nsnet.api.timefmt import ZERO_TIME, container_status, unix_seconds
from nsnet.errors import InvalidArgument
from nsnet.models import (
    CniAttach,
    Container,
    ContainerCreate,
    Endpoint,
    IpamConfig,
    Network,
    NetworkCreate,
    PortBinding,
)

PROTOCOLS = ("tcp", "udp", "sctp")


class DockerModel(BaseModel):
    """A request body: Docker's field names, matched case-insensitively; unknown keys ignored."""

    model_config = ConfigDict(populate_by_name=True, extra="ignore", strict=True)

    @model_validator(mode="before")
    @classmethod
    def _match_names_case_insensitively(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        names = {
            (field.alias or name).lower(): field.alias or name
            for name, field in cls.model_fields.items()
        }
        return {
            names.get(key.lower(), key) if isinstance(key, str) else key: value
            for key, value in data.items()
        }


class Response(BaseModel):
    """A response body: serialised by alias, in field order."""

    model_config = ConfigDict(populate_by_name=True)

    def to_json(self) -> Any:
        """The body as JSON-ready data, under Docker's field names, in Docker's order."""
        return self.model_dump(mode="json", by_alias=True)


# Requests: networks


class IpamConfigBody(DockerModel):
    subnet: str | None = Field(None, alias="Subnet")
    ip_range: str | None = Field(None, alias="IPRange")
    gateway: str | None = Field(None, alias="Gateway")
    aux_addresses: dict[str, str] | None = Field(None, alias="AuxiliaryAddresses")

    def to_config(self, position: int) -> IpamConfig | None:
        """The engine's IpamConfig; None for an entry that asks for nothing."""
        field = f"IPAM.Config[{position}]"
        if not self.subnet:
            if self.ip_range or self.gateway or self.aux_addresses:
                raise InvalidArgument(
                    f"invalid {field}: a gateway, IP range or auxiliary address needs a Subnet"
                )
            return None

        subnet = parse_ipv4_network(self.subnet, f"{field}.Subnet")
        ip_range = parse_ipv4_network(self.ip_range, f"{field}.IPRange") if self.ip_range else None
        gateway = parse_ipv4_address(self.gateway, f"{field}.Gateway") if self.gateway else None
        aux_addresses = {
            name: parse_ipv4_address(address, f"{field}.AuxiliaryAddresses[{name}]")
            for name, address in (self.aux_addresses or {}).items()
        }
        return IpamConfig(
            subnet=subnet, gateway=gateway, ip_range=ip_range, aux_addresses=aux_addresses
        )


class IpamBody(DockerModel):
    driver: str | None = Field(None, alias="Driver")
    config: list[IpamConfigBody] | None = Field(None, alias="Config")
    options: dict[str, str] | None = Field(None, alias="Options")


class NetworkCreateBody(DockerModel):
    name: str = Field(alias="Name")
    check_duplicate: bool | None = Field(None, alias="CheckDuplicate")
    driver: str | None = Field(None, alias="Driver")
    scope: str | None = Field(None, alias="Scope")
    internal: bool | None = Field(None, alias="Internal")
    attachable: bool | None = Field(None, alias="Attachable")
    ingress: bool | None = Field(None, alias="Ingress")
    config_only: bool | None = Field(None, alias="ConfigOnly")
    config_from: dict[str, str] | None = Field(None, alias="ConfigFrom")
    ipam: IpamBody | None = Field(None, alias="IPAM")
    enable_ipv6: bool | None = Field(None, alias="EnableIPv6")
    options: dict[str, str] | None = Field(None, alias="Options")
    labels: dict[str, str] | None = Field(None, alias="Labels")

    def to_request(self) -> NetworkCreate:
        """The engine's NetworkCreate; refuses what nsnet does not do (swarm, config-only)."""
        if not self.name:
            raise InvalidArgument("cannot create network '': Name is empty")
        if self.ingress:
            raise InvalidArgument(
                f"cannot create network '{self.name}': ingress networks need swarm mode,"
                " which nsnet does not have"
            )
        if self.config_only or (self.config_from or {}).get("Network"):
            raise InvalidArgument(
                f"cannot create network '{self.name}': config-only networks are not supported"
            )
        if self.scope not in (None, "", "local"):
            raise InvalidArgument(
                f"cannot create network '{self.name}': scope '{self.scope}' is not supported"
                " (only 'local')"
            )

        ipam = self.ipam or IpamBody()
        if ipam.driver not in (None, "", "default"):
            raise InvalidArgument(
                f"cannot create network '{self.name}': IPAM driver '{ipam.driver}' is not"
                " supported (only 'default')"
            )
        configs = [entry.to_config(position) for position, entry in enumerate(ipam.config or [])]

        return NetworkCreate(
            name=self.name,
            driver=self.driver or "bridge",
            internal=bool(self.internal),
            attachable=bool(self.attachable),
            enable_ipv6=bool(self.enable_ipv6),
            ipam=[config for config in configs if config is not None],
            ipam_options=dict(ipam.options or {}),
            options=dict(self.options or {}),
            labels=dict(self.labels or {}),
        )


class EndpointIpamConfigBody(DockerModel):
    ipv4_address: str | None = Field(None, alias="IPv4Address")
    ipv6_address: str | None = Field(None, alias="IPv6Address")


class EndpointSettingsBody(DockerModel):
    ipam_config: EndpointIpamConfigBody | None = Field(None, alias="IPAMConfig")
    aliases: list[str] | None = Field(None, alias="Aliases")

    def address(self, field: str) -> str | None:
        """The requested IPv4 address, checked; None when none was asked for."""
        config = self.ipam_config or EndpointIpamConfigBody()
        if config.ipv6_address:
            raise InvalidArgument(
                f"invalid {field}.IPAMConfig.IPv6Address: IPv6 is not supported yet"
            )
        if not config.ipv4_address:
            return None
        return str(parse_ipv4_address(config.ipv4_address, f"{field}.IPAMConfig.IPv4Address"))


class NetworkConnectBody(DockerModel):
    container: str = Field(alias="Container")
    endpoint_config: EndpointSettingsBody | None = Field(None, alias="EndpointConfig")


class NetworkDisconnectBody(DockerModel):
    container: str = Field(alias="Container")
    force: bool | None = Field(None, alias="Force")


# Requests: containers


class PortBindingBody(DockerModel):
    host_ip: str | None = Field(None, alias="HostIp")
    host_port: str | None = Field(None, alias="HostPort")


class HostConfigBody(DockerModel):
    network_mode: str | None = Field(None, alias="NetworkMode")
    port_bindings: dict[str, list[PortBindingBody] | None] | None = Field(
        None, alias="PortBindings"
    )
    publish_all_ports: bool | None = Field(None, alias="PublishAllPorts")
    auto_remove: bool | None = Field(None, alias="AutoRemove")
    sysctls: dict[str, str] | None = Field(None, alias="Sysctls")
    dns: list[str] | None = Field(None, alias="Dns")
    dns_options: list[str] | None = Field(None, alias="DnsOptions")
    dns_search: list[str] | None = Field(None, alias="DnsSearch")
    extra_hosts: list[str] | None = Field(None, alias="ExtraHosts")


class NetworkingConfigBody(DockerModel):
    endpoints_config: dict[str, EndpointSettingsBody | None] | None = Field(
        None, alias="EndpointsConfig"
    )


class ContainerCreateBody(DockerModel):
    hostname: str | None = Field(None, alias="Hostname")
    cmd: list[str] | str | None = Field(None, alias="Cmd")
    entrypoint: list[str] | str | None = Field(None, alias="Entrypoint")
    image: str | None = Field(None, alias="Image")
    mac_address: str | None = Field(None, alias="MacAddress")
    labels: dict[str, str] | None = Field(None, alias="Labels")
    exposed_ports: dict[str, dict] | None = Field(None, alias="ExposedPorts")
    tty: bool | None = Field(None, alias="Tty")
    host_config: HostConfigBody | None = Field(None, alias="HostConfig")
    networking_config: NetworkingConfigBody | None = Field(None, alias="NetworkingConfig")

    def to_request(self, name: str | None) -> ContainerCreate:
        """The engine's ContainerCreate: Entrypoint + Cmd, the network and its endpoint config."""
        if self.image:
            # Running the host's program under an image's name would mislead: refuse it.
            raise InvalidArgument(
                f"cannot create a container from image '{self.image}': nsnet has no images; "
                "its containers run the host's programs (leave Image empty, or use nsnet run)"
            )
        command = as_list(self.entrypoint) + as_list(self.cmd)
        if command and not command[0]:
            raise InvalidArgument("invalid Cmd: the program to run is an empty string")
        host_config = self.host_config or HostConfigBody()
        network = host_config.network_mode or "default"
        endpoints = {
            network_name: settings or EndpointSettingsBody()
            for network_name, settings in (
                (self.networking_config or NetworkingConfigBody()).endpoints_config or {}
            ).items()
        }

        # Docker's "default" is the default bridge; a client may instead name the network only
        # in EndpointsConfig (docker-py does).
        if network == "default":
            network = next(iter(endpoints), "bridge") if len(endpoints) == 1 else "bridge"
        if len(endpoints) > 1:
            raise InvalidArgument(
                "invalid NetworkingConfig.EndpointsConfig: a container is created on one network;"
                " connect it to more afterwards"
            )
        settings = endpoints.get(network) or next(iter(endpoints.values()), None)
        settings = settings or EndpointSettingsBody()

        return ContainerCreate(
            name=name or None,
            command=command,
            network=network,
            ip_address=settings.address(f"NetworkingConfig.EndpointsConfig[{network}]"),
            mac_address=self.mac_address or None,
            hostname=self.hostname or None,
            sysctls=dict(host_config.sysctls or {}),
            aliases=list(settings.aliases or []),
            auto_remove=bool(host_config.auto_remove),
            ports=port_bindings(
                self.exposed_ports or {},
                host_config.port_bindings or {},
                bool(host_config.publish_all_ports),
            ),
            labels=dict(self.labels or {}),
            dns=list(host_config.dns or []),
            dns_search=list(host_config.dns_search or []),
            dns_options=list(host_config.dns_options or []),
            extra_hosts=list(host_config.extra_hosts or []),
            tty=bool(self.tty),
        )


class EnterBody(DockerModel):
    cmd: list[str] = Field(alias="Cmd")
    # exec (rather than run's first process): the container must be running already.
    running: bool | None = Field(None, alias="Running")


class AttachBody(DockerModel):
    pid: int = Field(alias="Pid")


class ExitedBody(DockerModel):
    exit_code: int = Field(alias="ExitCode")


# Requests: CNI (nsnet-cni's, the runtime's parameters and capabilities)


class CniPortMappingBody(DockerModel):
    """One entry of the portMappings capability, as runtimes pass it."""

    host_port: int = Field(alias="hostPort")
    container_port: int = Field(alias="containerPort")
    protocol: str = Field("tcp", alias="protocol")
    host_ip: str = Field("", alias="hostIP")

    def to_binding(self, number: int) -> PortBinding:
        where = f"portMappings[{number}]"
        for value, name in ((self.host_port, "hostPort"), (self.container_port, "containerPort")):
            if not 0 < value < 65536:
                raise InvalidArgument(f"invalid {where}: {name} {value} is not a port number")
        protocol = self.protocol.lower()
        if protocol not in PROTOCOLS:
            raise InvalidArgument(f"invalid {where}: unknown protocol '{self.protocol}'")
        if self.host_ip:
            parse_ipv4_address(self.host_ip, f"{where}.hostIP")
        return PortBinding(
            container_port=self.container_port,
            protocol=protocol,
            host_ip=self.host_ip,
            host_port=self.host_port,
        )


class CniAddBody(DockerModel):
    container_id: str = Field(alias="ContainerID")
    netns: str = Field(alias="Netns")
    ifname: str = Field(alias="IfName")
    network: str = Field(alias="Network")
    port_mappings: list[CniPortMappingBody] = Field(default_factory=list, alias="PortMappings")
    ip: str | None = Field(None, alias="IP")
    mac: str | None = Field(None, alias="MAC")
    aliases: list[str] = Field(default_factory=list, alias="Aliases")
    cni_network: str = Field("", alias="CniNetwork")

    def to_request(self) -> CniAttach:
        return CniAttach(
            runtime_id=self.container_id,
            netns_path=self.netns,
            ifname=self.ifname,
            network=self.network,
            ports=[entry.to_binding(n) for n, entry in enumerate(self.port_mappings)],
            ip_address=self.ip or None,
            mac_address=self.mac or None,
            aliases=list(self.aliases),
            cni_network=self.cni_network,
        )


class CniAttachmentBody(DockerModel):
    container_id: str = Field(alias="ContainerID")
    ifname: str = Field(alias="IfName")


class CniDelBody(CniAttachmentBody):
    network: str = Field(alias="Network")
    cni_network: str = Field("", alias="CniNetwork")


class CniCheckBody(CniAttachmentBody):
    network: str = Field(alias="Network")
    netns: str = Field(alias="Netns")
    default_route: bool = Field(False, alias="DefaultRoute")  # the previous result holds it
    cni_network: str = Field("", alias="CniNetwork")


class CniGcBody(DockerModel):
    network: str = Field(alias="Network")
    cni_network: str = Field("", alias="CniNetwork")
    valid: list[CniAttachmentBody] = Field(default_factory=list, alias="ValidAttachments")


# Responses: networks


class NetworkIpamConfigOut(Response):
    subnet: str = Field(alias="Subnet")
    ip_range: str | None = Field(None, alias="IPRange")
    gateway: str | None = Field(None, alias="Gateway")
    aux_addresses: dict[str, str] | None = Field(None, alias="AuxiliaryAddresses")

    @model_serializer(mode="wrap")
    def _omit_unset(self, handler):
        # Docker's IPAMConfig fields are omitempty: an unset one is absent, not null.
        return {key: value for key, value in handler(self).items() if value is not None}


class NetworkIpamOut(Response):
    driver: str = Field(alias="Driver")
    options: dict[str, str] | None = Field(alias="Options")
    config: list[NetworkIpamConfigOut] = Field(alias="Config")


class ConfigReferenceOut(Response):
    network: str = Field("", alias="Network")


class EndpointResourceOut(Response):
    name: str = Field(alias="Name")
    endpoint_id: str = Field(alias="EndpointID")
    mac_address: str = Field(alias="MacAddress")
    ipv4_address: str = Field(alias="IPv4Address")
    ipv6_address: str = Field("", alias="IPv6Address")


class NetworkResourceOut(Response):
    name: str = Field(alias="Name")
    id: str = Field(alias="Id")
    created: str = Field(alias="Created")
    scope: str = Field(alias="Scope")
    driver: str = Field(alias="Driver")
    enable_ipv6: bool = Field(alias="EnableIPv6")
    ipam: NetworkIpamOut = Field(alias="IPAM")
    internal: bool = Field(alias="Internal")
    attachable: bool = Field(alias="Attachable")
    ingress: bool = Field(alias="Ingress")
    config_from: ConfigReferenceOut = Field(default_factory=ConfigReferenceOut, alias="ConfigFrom")
    config_only: bool = Field(False, alias="ConfigOnly")
    containers: dict[str, EndpointResourceOut] = Field(alias="Containers")
    options: dict[str, str] = Field(alias="Options")
    labels: dict[str, str] = Field(alias="Labels")

    @classmethod
    def from_network(
        cls, network: Network, endpoints: list[tuple[Container, Endpoint]] | None = None
    ) -> "NetworkResourceOut":
        """Docker's network JSON; ``endpoints`` None gives ``Containers: {}`` as the list does."""
        containers = {
            container.id: EndpointResourceOut(
                name=container.name,
                endpoint_id=endpoint.id,
                mac_address=endpoint.mac_address,
                ipv4_address=f"{endpoint.address}/{endpoint.prefixlen}",
            )
            for container, endpoint in sorted(endpoints or [], key=lambda pair: pair[0].id)
        }
        ipam_configs = [
            NetworkIpamConfigOut(
                subnet=str(config.subnet),
                ip_range=str(config.ip_range) if config.ip_range else None,
                gateway=(
                    str(config.gateway) if config.gateway and not config.gateway_chosen else None
                ),
                aux_addresses=(
                    {name: str(address) for name, address in sorted_map(config.aux_addresses)}
                    or None
                ),
            )
            for config in network.ipam
        ]
        return cls(
            name=network.name,
            id=network.id,
            created=network.created,
            scope=network.scope,
            driver=network.driver,
            enable_ipv6=network.enable_ipv6,
            # Docker keeps no IPAM options for its built-in networks (null); a created network
            # holds the map it was given, {} from the docker CLI.
            ipam=NetworkIpamOut(
                driver=network.ipam_driver,
                options=None if network.builtin else dict(sorted_map(network.ipam_options)),
                config=ipam_configs,
            ),
            internal=network.internal,
            attachable=network.attachable,
            ingress=network.ingress,
            containers=containers,
            options=dict(sorted_map(network.options)),
            labels=dict(sorted_map(network.labels)),
        )


class NetworkCreateOut(Response):
    id: str = Field(alias="Id")
    warning: str = Field("", alias="Warning")


class NetworkPruneOut(Response):
    networks_deleted: list[str] | None = Field(alias="NetworksDeleted")


# Responses: containers


class ContainerCreateOut(Response):
    id: str = Field(alias="Id")
    warnings: list[str] = Field(default_factory=list, alias="Warnings")


class ContainerStateOut(Response):
    status: str = Field(alias="Status")
    running: bool = Field(alias="Running")
    paused: bool = Field(False, alias="Paused")
    restarting: bool = Field(False, alias="Restarting")
    oom_killed: bool = Field(False, alias="OOMKilled")
    dead: bool = Field(False, alias="Dead")
    pid: int = Field(alias="Pid")
    exit_code: int = Field(alias="ExitCode")
    error: str = Field("", alias="Error")
    started_at: str = Field(alias="StartedAt")
    finished_at: str = Field(alias="FinishedAt")


class PortBindingOut(Response):
    host_ip: str = Field(alias="HostIp")
    host_port: str = Field(alias="HostPort")


class HostConfigOut(Response):
    network_mode: str = Field(alias="NetworkMode")
    port_bindings: dict[str, list[PortBindingOut]] = Field(alias="PortBindings")
    auto_remove: bool = Field(alias="AutoRemove")
    dns: list[str] = Field(default_factory=list, alias="Dns")
    dns_options: list[str] = Field(default_factory=list, alias="DnsOptions")
    dns_search: list[str] = Field(default_factory=list, alias="DnsSearch")
    extra_hosts: list[str] | None = Field(None, alias="ExtraHosts")  # null when none, as Docker
    sysctls: dict[str, str] | None = Field(None, alias="Sysctls")

    @model_serializer(mode="wrap")
    def _omit_unset(self, handler):
        # Docker's Sysctls is omitempty; ExtraHosts is printed as null.
        return {
            key: value
            for key, value in handler(self).items()
            if value is not None or key == "ExtraHosts"
        }


class ContainerConfigOut(Response):
    hostname: str = Field(alias="Hostname")
    domainname: str = Field("", alias="Domainname")
    user: str = Field("", alias="User")
    exposed_ports: dict[str, dict] | None = Field(None, alias="ExposedPorts")
    tty: bool = Field(False, alias="Tty")
    cmd: list[str] = Field(alias="Cmd")
    image: str = Field("", alias="Image")
    labels: dict[str, str] = Field(alias="Labels")
    mac_address: str | None = Field(None, alias="MacAddress")

    @model_serializer(mode="wrap")
    def _omit_unset(self, handler):
        return {key: value for key, value in handler(self).items() if value is not None}


class EndpointSettingsOut(Response):
    ipam_config: dict[str, str] | None = Field(None, alias="IPAMConfig")
    links: list[str] | None = Field(None, alias="Links")
    aliases: list[str] | None = Field(None, alias="Aliases")
    network_id: str = Field(alias="NetworkID")
    endpoint_id: str = Field(alias="EndpointID")
    gateway: str = Field(alias="Gateway")
    ip_address: str = Field(alias="IPAddress")
    ip_prefix_len: int = Field(alias="IPPrefixLen")
    ipv6_gateway: str = Field("", alias="IPv6Gateway")
    global_ipv6_address: str = Field("", alias="GlobalIPv6Address")
    global_ipv6_prefix_len: int = Field(0, alias="GlobalIPv6PrefixLen")
    mac_address: str = Field(alias="MacAddress")
    driver_opts: dict[str, str] | None = Field(None, alias="DriverOpts")

    @classmethod
    def from_endpoint(cls, endpoint: Endpoint) -> "EndpointSettingsOut":
        """An endpoint as inspect shows it under Networks.

        IPAMConfig is shown only for an address given with ``--ip``, as Docker shows it.
        """
        return cls(
            ipam_config={"IPv4Address": str(endpoint.address)}
            if endpoint.static_address
            else None,
            aliases=list(endpoint.aliases) or None,
            network_id=endpoint.network_id,
            endpoint_id=endpoint.id,
            gateway=str(endpoint.gateway) if endpoint.gateway else "",
            ip_address=str(endpoint.address),
            ip_prefix_len=endpoint.prefixlen,
            mac_address=endpoint.mac_address,
        )


class NetworkSettingsOut(Response):
    bridge: str = Field("", alias="Bridge")
    sandbox_id: str = Field("", alias="SandboxID")
    hairpin_mode: bool = Field(False, alias="HairpinMode")
    link_local_ipv6_address: str = Field("", alias="LinkLocalIPv6Address")
    link_local_ipv6_prefix_len: int = Field(0, alias="LinkLocalIPv6PrefixLen")
    ports: dict[str, list[PortBindingOut] | None] = Field(alias="Ports")
    sandbox_key: str = Field(alias="SandboxKey")
    secondary_ip_addresses: list[str] | None = Field(None, alias="SecondaryIPAddresses")
    secondary_ipv6_addresses: list[str] | None = Field(None, alias="SecondaryIPv6Addresses")
    endpoint_id: str = Field("", alias="EndpointID")
    gateway: str = Field("", alias="Gateway")
    global_ipv6_address: str = Field("", alias="GlobalIPv6Address")
    global_ipv6_prefix_len: int = Field(0, alias="GlobalIPv6PrefixLen")
    ip_address: str = Field("", alias="IPAddress")
    ip_prefix_len: int = Field(0, alias="IPPrefixLen")
    ipv6_gateway: str = Field("", alias="IPv6Gateway")
    mac_address: str = Field("", alias="MacAddress")
    networks: dict[str, EndpointSettingsOut] = Field(alias="Networks")


class ContainerInspectOut(Response):
    id: str = Field(alias="Id")
    created: str = Field(alias="Created")
    path: str = Field(alias="Path")
    args: list[str] = Field(alias="Args")
    state: ContainerStateOut = Field(alias="State")
    image: str = Field("", alias="Image")
    name: str = Field(alias="Name")
    restart_count: int = Field(0, alias="RestartCount")
    driver: str = Field("", alias="Driver")
    platform: str = Field("linux", alias="Platform")
    host_config: HostConfigOut = Field(alias="HostConfig")
    mounts: list[dict] = Field(default_factory=list, alias="Mounts")
    config: ContainerConfigOut = Field(alias="Config")
    network_settings: NetworkSettingsOut = Field(alias="NetworkSettings")

    @classmethod
    def from_container(
        cls, container: Container, endpoints: list[tuple[Network, Endpoint]]
    ) -> "ContainerInspectOut":
        """Docker's container JSON, with the sandbox's namespace file as SandboxKey."""
        networks = {
            network.name: EndpointSettingsOut.from_endpoint(endpoint)
            for network, endpoint in sorted(endpoints, key=lambda pair: pair[0].name)
        }
        # Docker repeats the default bridge's endpoint at the top of NetworkSettings.
        default = networks.get("bridge")
        ports = ports_map(container.ports)
        live = ports_map(live_ports(container, endpoints))

        return cls(
            id=container.id,
            created=container.created,
            path=container.command[0] if container.command else "",
            args=list(container.command[1:]),
            state=ContainerStateOut(
                status=container.state,
                running=container.state == "running",
                pid=container.pid if container.state == "running" else 0,
                exit_code=container.exit_code,
                started_at=container.started_at or ZERO_TIME,
                finished_at=container.finished_at or ZERO_TIME,
            ),
            name="/" + container.name,
            host_config=HostConfigOut(
                network_mode=container.network_mode,
                port_bindings=ports,
                auto_remove=container.auto_remove,
                dns=list(container.dns),
                dns_options=list(container.dns_options),
                dns_search=list(container.dns_search),
                extra_hosts=list(container.extra_hosts) or None,
                sysctls=dict(sorted_map(container.sysctls)) or None,
            ),
            config=ContainerConfigOut(
                hostname=container.hostname,
                exposed_ports={key: {} for key in ports} or None,
                tty=container.tty,
                cmd=list(container.command),
                labels=dict(sorted_map(container.labels)),
                mac_address=container.mac_address or None,
            ),
            network_settings=NetworkSettingsOut(
                ports=live,
                sandbox_key=container.netns_path,
                endpoint_id=default.endpoint_id if default else "",
                gateway=default.gateway if default else "",
                ip_address=default.ip_address if default else "",
                ip_prefix_len=default.ip_prefix_len if default else 0,
                mac_address=default.mac_address if default else "",
                networks=networks,
            ),
        )


class PortOut(Response):
    ip: str = Field(alias="IP")
    private_port: int = Field(alias="PrivatePort")
    public_port: int = Field(alias="PublicPort")
    type: str = Field(alias="Type")


class ContainerSummaryOut(Response):
    id: str = Field(alias="Id")
    names: list[str] = Field(alias="Names")
    image: str = Field("", alias="Image")
    image_id: str = Field("", alias="ImageID")
    command: str = Field(alias="Command")
    created: int = Field(alias="Created")
    ports: list[PortOut] = Field(alias="Ports")
    labels: dict[str, str] = Field(alias="Labels")
    state: str = Field(alias="State")
    status: str = Field(alias="Status")
    host_config: dict[str, str] = Field(alias="HostConfig")
    network_settings: dict[str, dict[str, EndpointSettingsOut]] = Field(alias="NetworkSettings")
    mounts: list[dict] = Field(default_factory=list, alias="Mounts")

    @classmethod
    def from_container(
        cls, container: Container, endpoints: list[tuple[Network, Endpoint]]
    ) -> "ContainerSummaryOut":
        """One entry of ``GET /containers/json``."""
        import shlex

        return cls(
            id=container.id,
            names=["/" + container.name],
            command=shlex.join(container.command),
            created=unix_seconds(container.created),
            ports=[
                PortOut(
                    ip=binding.host_ip,
                    private_port=binding.container_port,
                    public_port=binding.host_port,
                    type=binding.protocol,
                )
                for binding in live_ports(container, endpoints)
            ],
            labels=dict(sorted_map(container.labels)),
            state=container.state,
            status=container_status(
                container.state,
                container.exit_code,
                container.started_at,
                container.finished_at,
            ),
            host_config={"NetworkMode": container.network_mode},
            network_settings={
                "Networks": {
                    network.name: EndpointSettingsOut.from_endpoint(endpoint)
                    for network, endpoint in sorted(endpoints, key=lambda pair: pair[0].name)
                }
            },
        )


class EnterOut(Response):
    argv: list[str] = Field(alias="Argv")


# Conversions


def sorted_map(mapping: dict) -> list[tuple]:
    """A map's items by key: Docker's JSON (Go's encoding/json) writes every map so."""
    return sorted(mapping.items())


def parse_ipv4_network(text: str, field: str) -> IPv4Network:
    """An IPv4 CIDR from a request field, or InvalidArgument naming the field."""
    return ipam.parse_network(text, field)


def parse_ipv4_address(text: str, field: str) -> IPv4Address:
    """An IPv4 address from a request field, or InvalidArgument naming the field."""
    return ipam.parse_address(text, field)


def as_list(value: list[str] | str | None) -> list[str]:
    """Docker's StrSlice: a JSON string counts as a list of one."""
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    return list(value)


def parse_port_key(key: str) -> tuple[int, str]:
    """``80/tcp`` (protocol tcp when absent) as (port, protocol)."""
    port_text, _, protocol = key.partition("/")
    protocol = (protocol or "tcp").lower()
    if protocol not in PROTOCOLS:
        raise InvalidArgument(f"invalid port '{key}': unknown protocol '{protocol}'")
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise InvalidArgument(f"invalid port '{key}': not a port number between 1 and 65535")
    return int(port_text), protocol


def parse_host_port(text: str | None, key: str) -> tuple[int, int]:
    """A binding's HostPort as (first, last): "" is any free port (0, 0); "8000-8010" any
    free port of that range (8000, 8010); "8080" just that port (8080, 0)."""
    if not text:
        return 0, 0
    first_text, dash, last_text = text.strip().partition("-")
    numbers = [first_text, last_text] if dash else [first_text]
    if not all(number.isdigit() and 0 < int(number) < 65536 for number in numbers):
        raise InvalidArgument(
            f"invalid HostConfig.PortBindings[{key}]: host port '{text}' is not a port number"
            " between 1 and 65535, or a range of them (8000-8010)"
        )
    first = int(first_text)
    last = int(last_text) if dash else first
    if last < first:
        raise InvalidArgument(
            f"invalid HostConfig.PortBindings[{key}]: host port range '{text}' ends before it"
            " starts"
        )
    return first, (last if last > first else 0)


def port_bindings(
    exposed_ports: dict[str, dict],
    bindings: dict[str, list[PortBindingBody] | None],
    publish_all: bool,
) -> list[PortBinding]:
    """The engine's port bindings from Docker's ExposedPorts, PortBindings and PublishAllPorts."""
    result = []
    for key, entries in bindings.items():
        container_port, protocol = parse_port_key(key)
        for entry in entries or [PortBindingBody()]:
            host_ip = entry.host_ip or ""  # the network's default, chosen by the engine
            if host_ip:
                parse_ipv4_address(host_ip, f"HostConfig.PortBindings[{key}].HostIp")
            host_port, host_port_last = parse_host_port(entry.host_port, key)
            result.append(
                PortBinding(
                    container_port=container_port,
                    protocol=protocol,
                    host_ip=host_ip,
                    host_port=host_port,
                    host_port_last=host_port_last,
                )
            )

    # -P publishes every exposed port that has no binding of its own on a free host port.
    bound = {(binding.container_port, binding.protocol) for binding in result}
    for key in exposed_ports:
        container_port, protocol = parse_port_key(key)
        if publish_all and (container_port, protocol) not in bound:
            result.append(
                PortBinding(container_port=container_port, protocol=protocol, host_ip="")
            )
    return result


def live_ports(container: Container, endpoints: list[tuple[Network, Endpoint]]) -> list:
    """The container's ports that answer now, as ``docker port`` and ``ps`` show them.

    None once it has exited (its host ports are free again) or while it is disconnected from
    the network it publishes through; HostConfig.PortBindings keeps what was asked for.
    """
    if container.state == "exited":
        return []
    if not any(network.name == container.network_mode for network, _ in endpoints):
        return []
    return list(container.ports)


def ports_map(bindings: list[PortBinding]) -> dict[str, list[PortBindingOut]]:
    """Docker's ``{"80/tcp": [{"HostIp", "HostPort"}]}`` from the engine's port bindings."""
    result: dict[str, list[PortBindingOut]] = {}
    for binding in bindings:
        result.setdefault(f"{binding.container_port}/{binding.protocol}", []).append(
            PortBindingOut(
                host_ip=binding.host_ip,
                host_port=str(binding.host_port) if binding.host_port else "",
            )
        )
    return dict(sorted_map(result))
