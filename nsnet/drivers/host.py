"""The ``host`` and ``null`` drivers: built-in networks that own no kernel objects.

Containers in ``host`` mode share the host's namespace; in ``none`` mode they get a namespace
with only ``lo``. Neither network takes endpoints.
"""

from nsnet.errors import Forbidden
from nsnet.models import Endpoint, Network, NetworkCreate


class _NoEndpoints:
    name = ""

    def validate(self, request: NetworkCreate) -> None:
        raise Forbidden(
            f"cannot create network '{request.name}': only one instance of \"{self.name}\" "
            "network is allowed"
        )

    def create(self, network: Network) -> None:
        pass

    def delete(self, network: Network) -> None:
        pass

    def join(
        self, network: Network, endpoint: Endpoint, netns_path: str, default_route: bool
    ) -> None:
        raise Forbidden(
            f"cannot connect to network '{network.name}': container cannot be disconnected from "
            f"host network or connected to host network"
            if self.name == "host"
            else f"cannot connect to network '{network.name}': it takes no endpoints"
        )

    def leave(self, network: Network, endpoint: Endpoint, netns_path: str | None) -> None:
        pass


class HostDriver(_NoEndpoints):
    name = "host"


class NullDriver(_NoEndpoints):
    name = "null"
