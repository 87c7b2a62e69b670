"""The test harness: namespaces, a host with an outside world, nsnetd and dockerd runners, leaks.

netns       uniquely named namespaces (``NamespacePool``), always removed
topology    ``HostWithOutside``: a host namespace with an uplink to an "outside" namespace
daemon      ``Daemon``: nsnetd and the nsnet CLI inside a host namespace
dockerd     ``Dockerd``: Docker 20.10's dockerd inside a namespace, for comparisons
leaks       ``Snapshot`` of the machine's own namespace and ``assert_no_leaks``
cleanup     forced removal of processes, mounts and namespace files under a root
unixhttp    HTTP over a unix socket
"""
