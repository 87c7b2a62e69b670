"""Everything nsnet does to the kernel: namespaces (ctypes on libc) and netlink (pyroute2).

No other package touches the kernel. Functions here speak iproute2's vocabulary (link, addr,
route, neigh, ifname, index) and raise ``nsnet.errors`` exceptions with the netlink cause kept.
"""
