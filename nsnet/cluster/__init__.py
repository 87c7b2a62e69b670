"""The cluster: overlay networks shared by several hosts through etcd v3.

config    ``ClusterConfig``: the store's address, this host's advertise address, the lease TTL
records   the key layout under ``/nsnet/`` and the JSON of networks and endpoint records
etcd      etcd3gw with nsnet's errors, whole responses and transaction parts
store     ``ClusterStore``: networks, VNIs, address claims and the endpoint registry, one
          lease per host kept alive by a thread
agent     ``ClusterAgent``: a thread that watches the store and feeds the overlay driver's FDB
          and neighbour entries and the embedded DNS
lab       ``ClusterLab``: several hosts and an etcd in namespaces, for the examples

The data plane itself is the ``overlay`` driver (nsnet/drivers/overlay.py).
"""
