"""The ``host`` and ``null`` drivers: built-in networks that own no kernel objects.

Containers in ``host`` mode share the host's namespace; in ``none`` mode they get a namespace
with only ``lo``. Neither network takes endpoints.
"""

from nsnet.errors import Forbidden
from nsnet.models import Endpoint, Network, NetworkCreate


class _NoEndpoints:
    name = ""

    def validate(self, request: NetworkCreate) -> None:
        """Refuse every request (Forbidden): the one network of this driver is built in."""
        raise Forbidden(
            f"cannot create network '{request.name}': only one instance of \"{self.name}\" "
            "network is allowed"
        )

    def create(self, network: Network) -> None:
        """Nothing to make: the network owns no kernel objects."""

    def delete(self, network: Network) -> None:
        """Nothing to remove."""

    def join(
        self, network: Network, endpoint: Endpoint, netns_path: str, default_route: bool
    ) -> None:
        """Refuse the endpoint (Forbidden): containers join these networks by network mode."""
        raise Forbidden(
            f"cannot connect to network '{network.name}': container cannot be disconnected from "
            f"host network or connected to host network"
            if self.name == "host"
            else f"cannot connect to network '{network.name}': it takes no endpoints"
        )

    def leave(self, network: Network, endpoint: Endpoint, netns_path: str | None) -> None:
        """Nothing to unplug: no endpoint ever joined."""


class HostDriver(_NoEndpoints):
    name = "host"


class NullDriver(_NoEndpoints):
    name = "null"
