"""nsnet: Docker's container networking model on the Linux kernel's own primitives.

The package is laid out by domain noun; the CLI and the daemon's HTTP API are thin adapters
over one engine, and only ``nsnet.kernel`` (namespaces, links, addresses, routes, sysctls) and
``nsnet.firewall`` (nftables, conntrack) change the kernel's network state.

Glossary
--------
network
    A named L2/L3 domain made by a driver (``bridge``, ``host``, ``null``, ``overlay``), with
    IPAM configuration, options and labels.
driver
    The code that realises a network on the kernel: a Linux bridge for ``bridge``; on each host
    with members, a namespace holding a bridge and a VXLAN device for ``overlay``; nothing for
    ``host`` and ``null``.
container
    A named sandbox plus, optionally, a process started in it. States: created, running,
    exited. A container and its addresses live until it is removed.
sandbox
    The container's namespaces: network, UTS and mount, each kept alive by a file bind-mounted
    under the run directory. The mount namespace shows the host's file system with the
    container's own /etc/resolv.conf, /etc/hosts and /sys; every process of the container
    (``run``, ``exec``) joins it. A ``container:<name>`` container shares the other's network
    and UTS namespaces and has a mount namespace of its own.
endpoint
    One attachment of a container to a network: a veth pair (``host_ifname`` on the bridge,
    ``container_ifname`` such as ``eth0`` in the sandbox), a MAC address, an IPv4 address and
    DNS aliases.
IPAM
    Address pools, subnets, gateways; allocation and release of addresses.
port binding
    hostIP:hostPort/proto forwarded to containerIP:containerPort.

Naming on the host: the default bridge is ``nsnet0``, other bridges ``br-<12 hex of network
id>``, the overlay networks' gateway bridge ``nsnet_gwbridge``, host veth ends ``veth<7 hex>``.
"""

__version__ = "0.1.0"
API_VERSION = "1.41"
