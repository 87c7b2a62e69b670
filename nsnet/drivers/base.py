"""The driver contract."""

from typing import Protocol

from nsnet.models import Endpoint, Network, NetworkCreate


class Driver(Protocol):
    name: str

    def validate(self, request: NetworkCreate) -> None:
        """Refuse options this driver does not understand or cannot honour."""

    def create(self, network: Network) -> None:
        """Make the network's kernel objects; leave nothing behind on failure."""

    def delete(self, network: Network) -> None:
        """Remove the network's kernel objects; missing objects are not an error."""

    def join(
        self, network: Network, endpoint: Endpoint, netns_path: str, default_route: bool
    ) -> None:
        """Plug an endpoint into the network inside the sandbox at ``netns_path``."""

    def leave(self, network: Network, endpoint: Endpoint, netns_path: str | None) -> None:
        """Unplug an endpoint; a missing interface is not an error."""
