"""Network drivers behind one contract (``Driver``): bridge, host, null and overlay.

A driver realises a network on the kernel and plugs endpoints into it. The engine owns the
records, the store and IPAM; a driver only does kernel work and rolls back its own steps.
The overlay driver is imported from ``nsnet.drivers.overlay``.
"""

from nsnet.drivers.base import Driver
from nsnet.drivers.bridge import BridgeDriver
from nsnet.drivers.host import HostDriver, NullDriver

__all__ = ["Driver", "BridgeDriver", "HostDriver", "NullDriver"]
