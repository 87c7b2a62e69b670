"""What the cluster store holds, as JSON: network definitions, address claims, endpoints.

Key layout under ``/nsnet/`` (``KEYS``):

    networks/<network id>                 the network's definition (JSON, no lease)
    network-names/<name>                  the network id: one name, one network
    vnis/<vni>                            the network id: one VNI, one network
    subnets/<subnet, '/' as '_'>          the network id: one subnet, one network
    addresses/<network id>/<address>      the claim of one address (host's lease)
    endpoints/<network id>/<endpoint id>  one endpoint: address, MAC, host (host's lease)
    hosts/<advertise address>             a live host: its name and address (host's lease)

Values are written with sorted keys, so that equal records are equal bytes and a transaction
can compare a value with the one this host wrote.
"""

import dataclasses
import json
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network

from nsnet.models import IpamConfig, Network

PREFIX = "/nsnet/"


class KEYS:
    networks = PREFIX + "networks/"
    names = PREFIX + "network-names/"
    vnis = PREFIX + "vnis/"
    subnets = PREFIX + "subnets/"
    addresses = PREFIX + "addresses/"
    endpoints = PREFIX + "endpoints/"
    hosts = PREFIX + "hosts/"

    @staticmethod
    def network(network_id: str) -> str:
        """The key of a network's definition."""
        return KEYS.networks + network_id

    @staticmethod
    def name(name: str) -> str:
        """The key that reserves a network name."""
        return KEYS.names + name

    @staticmethod
    def vni(vni: int) -> str:
        """The key that reserves a VNI."""
        return KEYS.vnis + str(vni)

    @staticmethod
    def subnet(subnet: IPv4Network) -> str:
        """The key that reserves a subnet ('/' written as '_')."""
        return KEYS.subnets + str(subnet).replace("/", "_")

    @staticmethod
    def address(network_id: str, address: IPv4Address) -> str:
        """The key of the claim of one address on a network."""
        return f"{KEYS.addresses}{network_id}/{address}"

    @staticmethod
    def endpoint(network_id: str, endpoint_id: str) -> str:
        """The key of one endpoint's record in the registry."""
        return f"{KEYS.endpoints}{network_id}/{endpoint_id}"

    @staticmethod
    def host(address: IPv4Address) -> str:
        """The key of a live host's record."""
        return f"{KEYS.hosts}{address}"


def dumps(document: dict) -> str:
    """``document`` as compact JSON with sorted keys: equal records are equal bytes."""
    return json.dumps(document, sort_keys=True, separators=(",", ":"))


@dataclass(frozen=True)
class EndpointRecord:
    """One endpoint of an overlay network as every host sees it."""

    network_id: str
    network_name: str
    endpoint_id: str
    container_id: str
    container_name: str
    address: IPv4Address
    prefixlen: int
    mac_address: str
    host_address: IPv4Address
    host_name: str
    aliases: tuple[str, ...] = field(default_factory=tuple)
    # The container's process has exited: its endpoint stays, but its names do not resolve.
    stopped: bool = False

    @property
    def key(self) -> str:
        """The record's key in the registry."""
        return KEYS.endpoint(self.network_id, self.endpoint_id)

    def to_json(self) -> str:
        """The record as the registry holds it."""
        document = dataclasses.asdict(self)
        document["address"] = str(self.address)
        document["host_address"] = str(self.host_address)
        document["aliases"] = list(self.aliases)
        return dumps(document)

    @classmethod
    def from_json(cls, text: str | bytes) -> "EndpointRecord":
        """A record from the registry's JSON; keys it does not know (a newer host's) are ignored.

        KeyError, ValueError or TypeError when the JSON is not an endpoint record.
        """
        document = json.loads(text)
        known = {item.name for item in dataclasses.fields(cls)}
        document = {key: value for key, value in document.items() if key in known}
        document["address"] = IPv4Address(document["address"])
        document["host_address"] = IPv4Address(document["host_address"])
        document["aliases"] = tuple(document.get("aliases") or ())
        return cls(**document)


def address_claim(endpoint_id: str, host_address: IPv4Address) -> str:
    """The value of an address key: who holds the address."""
    return dumps({"endpoint": endpoint_id, "host": str(host_address)})


def claim_holder(text: str | bytes) -> tuple[str, str]:
    """(endpoint id, host address) of an address key's value."""
    document = json.loads(text)
    return document.get("endpoint", ""), document.get("host", "")


def network_to_json(network: Network) -> str:
    """A network's definition as the cluster store holds it."""
    document = dataclasses.asdict(network)
    document["ipam"] = [
        {
            "subnet": str(config.subnet),
            "gateway": str(config.gateway) if config.gateway else None,
            "ip_range": str(config.ip_range) if config.ip_range else None,
            "aux_addresses": {name: str(value) for name, value in config.aux_addresses.items()},
            "gateway_chosen": config.gateway_chosen,
        }
        for config in network.ipam
    ]
    return dumps(document)


def network_from_json(text: str | bytes) -> Network:
    """A network from the cluster store's JSON; keys it does not know are ignored."""
    document = json.loads(text)
    known = {item.name for item in dataclasses.fields(Network)}
    document = {key: value for key, value in document.items() if key in known}
    document["ipam"] = [
        IpamConfig(
            subnet=IPv4Network(config["subnet"]),
            gateway=IPv4Address(config["gateway"]) if config.get("gateway") else None,
            ip_range=IPv4Network(config["ip_range"]) if config.get("ip_range") else None,
            aux_addresses={
                name: IPv4Address(value)
                for name, value in (config.get("aux_addresses") or {}).items()
            },
            gateway_chosen=bool(config.get("gateway_chosen")),
        )
        for config in document.get("ipam", [])
    ]
    return Network(**document)


def split_endpoint_key(key: str) -> tuple[str, str] | None:
    """(network id, endpoint id) of an endpoint key, or None for any other key."""
    if not key.startswith(KEYS.endpoints):
        return None
    parts = key[len(KEYS.endpoints) :].split("/")
    if len(parts) != 2 or not all(parts):
        return None
    return parts[0], parts[1]
