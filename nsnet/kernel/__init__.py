"""Namespaces (ctypes on libc), rtnetlink (pyroute2's message classes) and sysctls.

The rest of nsnet's kernel work is the firewall's: nftables, conntrack and sock_diag in
``nsnet.firewall``. Functions here speak iproute2's vocabulary (link, addr, route, neigh,
ifname, index). Netlink failures, and ``write_sysctl``'s, are raised as ``nsnet.errors``
exceptions with the cause kept; the bare namespace calls (``setns``, ``unshare``, ``mount``,
``umount``, ``remove``) and ``read_sysctl`` raise ``OSError``.
"""
