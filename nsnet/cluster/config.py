"""The daemon's cluster settings: where the shared store is and how this host is known.

``nsnetd --cluster-store etcd://ADDR:PORT --advertise-addr IP [--cluster-ttl 15]``, or the same
in the daemon's JSON configuration file under Docker's keys (``cluster-store``,
``cluster-advertise``) plus nsnet's ``cluster-ttl``. A setting given both as a flag and in the
file is refused, as dockerd does, rather than one silently winning.
"""

import json
import re
import socket
from dataclasses import dataclass
from ipaddress import IPv4Address
from pathlib import Path

from nsnet.errors import InvalidArgument

DEFAULT_TTL = 15
MINIMUM_TTL = 2  # etcd refuses shorter leases (about 1.5 election timeouts)
DEFAULT_ETCD_PORT = 2379
CONFIG_FILE_NAME = "daemon.json"
FILE_KEYS = {
    "cluster-store": "cluster_store",
    "cluster-advertise": "advertise_address",
    "cluster-ttl": "cluster_ttl",
}
_STORE_URL = re.compile(r"^etcd://(?P<host>[^:/]+)(:(?P<port>[0-9]+))?/?$")


@dataclass(frozen=True)
class ClusterConfig:
    """How this daemon joins the cluster: the etcd endpoint, its own address, the lease TTL."""

    store_host: str
    store_port: int
    advertise_address: IPv4Address
    ttl: int = DEFAULT_TTL
    node_name: str = ""

    @property
    def store_url(self) -> str:
        """The store as ``etcd://HOST:PORT``."""
        return f"etcd://{self.store_host}:{self.store_port}"


def parse_store_url(text: str) -> tuple[str, int]:
    """``etcd://HOST[:PORT]`` as (host, port); other schemes are refused by name."""
    match = _STORE_URL.match(text.strip())
    if match is None:
        scheme = text.split("://", 1)[0] if "://" in text else ""
        reason = (
            f"the '{scheme}' store is not supported (only etcd v3)"
            if scheme and scheme != "etcd"
            else "expected etcd://ADDR:PORT"
        )
        raise InvalidArgument(f"invalid cluster store '{text}': {reason}")
    port = int(match.group("port") or DEFAULT_ETCD_PORT)
    if not 0 < port < 65536:
        raise InvalidArgument(f"invalid cluster store '{text}': port {port} is out of range")
    return match.group("host"), port


def parse_advertise_address(text: str) -> IPv4Address:
    """The IPv4 address of ``IP`` or Docker's ``IP:PORT`` (the port means nothing to nsnet)."""
    candidate = text.strip()
    if candidate.count(":") == 1:
        candidate = candidate.split(":", 1)[0]
    try:
        address = IPv4Address(candidate)
    except ValueError as error:
        raise InvalidArgument(
            f"invalid advertise address '{text}': expected an IPv4 address of this host "
            "(interface names are not supported)"
        ) from error
    if address.is_unspecified or address.is_loopback or address.is_multicast:
        raise InvalidArgument(
            f"invalid advertise address '{text}': other hosts cannot reach {address}"
        )
    return address


def read_config_file(path: Path, required: bool) -> dict:
    """The cluster settings of a daemon.json (other keys are left to their readers)."""
    try:
        text = path.read_text()
    except FileNotFoundError as error:
        if required:
            raise InvalidArgument(
                f"cannot read configuration file '{path}': no such file"
            ) from error
        return {}
    except OSError as error:
        raise InvalidArgument(
            f"cannot read configuration file '{path}': {error.strerror}"
        ) from error
    try:
        document = json.loads(text or "{}")
    except json.JSONDecodeError as error:
        raise InvalidArgument(f"cannot read configuration file '{path}': {error}") from error
    if not isinstance(document, dict):
        raise InvalidArgument(f"cannot read configuration file '{path}': not a JSON object")
    return {FILE_KEYS[key]: value for key, value in document.items() if key in FILE_KEYS}


def cluster_config(
    cluster_store: str | None,
    advertise_address: str | None,
    cluster_ttl: int | None,
    file_settings: dict | None = None,
    node_name: str | None = None,
) -> ClusterConfig | None:
    """The cluster settings from flags and file, or None when no cluster store is configured."""
    flags = {
        "cluster_store": cluster_store,
        "advertise_address": advertise_address,
        "cluster_ttl": cluster_ttl,
    }
    settings = dict(file_settings or {})
    both = sorted(
        key for key, value in flags.items() if value is not None and settings.get(key) is not None
    )
    if both:
        names = ", ".join(
            next(file_key for file_key, name in FILE_KEYS.items() if name == key) for key in both
        )
        raise InvalidArgument(
            "the following directives are specified both as a flag and in the configuration "
            f"file: {names}"
        )
    settings.update({key: value for key, value in flags.items() if value is not None})

    store = settings.get("cluster_store")
    if not store:
        if settings.get("advertise_address"):
            raise InvalidArgument("--advertise-addr needs --cluster-store etcd://ADDR:PORT")
        return None
    if not settings.get("advertise_address"):
        raise InvalidArgument(
            "--cluster-store needs --advertise-addr: the address other hosts reach this one at"
        )
    host, port = parse_store_url(str(store))
    ttl = settings.get("cluster_ttl", DEFAULT_TTL)
    if isinstance(ttl, str) and ttl.isdigit():
        ttl = int(ttl)
    if not isinstance(ttl, int) or isinstance(ttl, bool) or ttl < MINIMUM_TTL:
        raise InvalidArgument(
            f"invalid cluster TTL '{ttl}': a whole number of seconds, at least {MINIMUM_TTL}"
        )
    return ClusterConfig(
        store_host=host,
        store_port=port,
        advertise_address=parse_advertise_address(str(settings["advertise_address"])),
        ttl=ttl,
        node_name=node_name or socket.gethostname(),
    )
