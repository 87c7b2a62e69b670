"""The cluster store's decisions against an in-memory etcd: names, VNIs, subnets, addresses.

``FakeEtcd`` keeps keys in a dict and evaluates the same transaction parts that the real
gateway gets (nsnet.cluster.etcd), so two ``ClusterStore`` objects on one fake behave as two
hosts sharing a store. Its ``interfere`` hook runs before a transaction, which is how a test
makes another host win a race at the worst moment.
"""

from collections.abc import Callable
from ipaddress import IPv4Address, IPv4Network

import pytest

from nsnet.cluster import etcd
from nsnet.cluster.config import ClusterConfig
from nsnet.cluster.etcd import KeyValue
from nsnet.cluster.records import KEYS, EndpointRecord, network_from_json, split_endpoint_key
from nsnet.cluster.store import ClusterStore, vni_of
from nsnet.errors import Conflict, InvalidArgument, NotFound
from nsnet.models import IpamConfig, Network


class FakeEtcd:
    def __init__(self) -> None:
        self.data: dict[str, tuple[bytes, int]] = {}  # key -> (value, lease)
        self.revisions: dict[str, tuple[int, int]] = {}  # key -> (created, last modified)
        self.revision = 1
        self.leases: set[int] = set()
        self.granted = 0
        self.interfere: Callable[[], None] | None = None

    def close(self) -> None:
        pass

    def status(self) -> dict:
        return {}

    def range(
        self, prefix: str, keys_only: bool = False, action: str | None = None
    ) -> tuple[int, list[KeyValue]]:
        items = [
            KeyValue(key, b"" if keys_only else value, lease, 0)
            for key, (value, lease) in sorted(self.data.items())
            if key.startswith(prefix)
        ]
        return self.revision, items

    def get(self, key: str) -> KeyValue | None:
        if key not in self.data:
            return None
        value, lease = self.data[key]
        return KeyValue(key, value, lease, 0)

    def _holds(self, compare: dict) -> bool:
        """As etcd evaluates a comparison: over every key of a range, an empty one as absent."""
        key = etcd.decode(compare["key"]).decode()
        if "range_end" in compare:
            end = etcd.decode(compare["range_end"]).decode()
            keys = [each for each in self.data if key <= each < end]
        else:
            keys = [key] if key in self.data else []
        target = compare["target"]
        if target == "VALUE":
            wanted = etcd.decode(compare["value"])
            return bool(keys) and all(self.data[each][0] == wanted for each in keys)
        field = {"CREATE": 0, "MOD": 1}[target]
        wanted = int(compare[{"CREATE": "create_revision", "MOD": "mod_revision"}[target]])
        actual = [self.revisions[each][field] for each in keys] or [0]
        test = {"EQUAL": int.__eq__, "GREATER": int.__gt__, "LESS": int.__lt__}[compare["result"]]
        return all(test(each, wanted) for each in actual)

    def _put(self, key: str, value: bytes, lease: int) -> None:
        created = self.revisions[key][0] if key in self.data else self.revision
        self.data[key] = (value, lease)
        self.revisions[key] = (created, self.revision)

    def transaction(self, compare, success, failure=None):
        if self.interfere is not None:
            interfere, self.interfere = self.interfere, None
            interfere()
        succeeded = all(self._holds(each) for each in compare)
        self.revision += 1
        responses = []
        for request in success if succeeded else failure or []:
            if "request_put" in request:
                put = request["request_put"]
                key = etcd.decode(put["key"]).decode()
                self._put(key, etcd.decode(put["value"]), put.get("lease", 0))
                responses.append({"response_put": {}})
            elif "request_delete_range" in request:
                delete = request["request_delete_range"]
                self._remove(etcd.decode(delete["key"]).decode(), prefix="range_end" in delete)
                responses.append({"response_delete_range": {}})
            else:
                key = etcd.decode(request["request_range"]["key"]).decode()
                items = []
                if key in self.data:
                    items.append(
                        {"key": etcd.encode(key), "value": etcd.encode(self.data[key][0])}
                    )
                responses.append({"response_range": {"kvs": items}})
        return succeeded, responses

    def delete(self, key: str, prefix: bool = False) -> None:
        self.revision += 1
        self._remove(key, prefix)

    def _remove(self, key: str, prefix: bool) -> None:
        for existing in list(self.data):
            if existing == key or (prefix and existing.startswith(key)):
                del self.data[existing]
                del self.revisions[existing]

    def grant(self, ttl: int) -> int:
        self.granted += 1
        lease = 100 + self.granted
        self.leases.add(lease)
        return lease

    def keepalive(self, lease: int) -> int:
        return 1 if lease in self.leases else -1

    def time_to_live(self, lease: int) -> int:
        return 1 if lease in self.leases else -1

    def expire(self, lease: int) -> None:
        """What etcd does when a lease runs out: its keys go."""
        self.leases.discard(lease)
        for key, (_, owner) in list(self.data.items()):
            if owner == lease:
                self._remove(key, prefix=False)


@pytest.fixture
def fake(monkeypatch) -> FakeEtcd:
    shared = FakeEtcd()
    monkeypatch.setattr(ClusterStore, "_connect", lambda self: shared)
    monkeypatch.setattr(ClusterStore, "_keep_alive", lambda self: None)
    return shared


def host(fake: FakeEtcd, tmp_path, number: int, ttl: int = 5) -> ClusterStore:
    config = ClusterConfig("198.51.100.100", 2379, IPv4Address(f"198.51.100.{number}"), ttl, "h")
    store = ClusterStore(config, tmp_path / f"lease{number}")
    store.open()
    return store


def new_network(name: str, options: dict | None = None) -> Network:
    return Network(
        id=name.ljust(64, "0"), name=name, driver="overlay", created="", scope="global",
        options=dict(options or {}),
    )  # fmt: skip


def test_networks_get_the_next_free_subnet_and_vni(fake, tmp_path) -> None:
    one = host(fake, tmp_path, 1)
    first = one.create_network(new_network("ov1"), None, None, [])
    second = one.create_network(new_network("ov2"), None, None, [IPv4Network("10.0.1.0/24")])
    assert first.ipam[0].subnet == IPv4Network("10.0.0.0/24")
    assert first.ipam[0].gateway == IPv4Address("10.0.0.1")
    assert vni_of(first) == 4096
    assert second.ipam[0].subnet == IPv4Network("10.0.2.0/24")  # 10.0.1.0/24 is local here
    assert vni_of(second) == 4097
    stored = network_from_json(fake.data[KEYS.network(first.id)][0])
    assert stored == first


def test_every_host_reads_whether_the_gateway_was_asked_for(fake, tmp_path) -> None:
    """Regression: the creating host alone knew, so only it hid a gateway it had chosen."""
    one, two = host(fake, tmp_path, 1), host(fake, tmp_path, 2)
    chosen = one.create_network(
        new_network("chosen"), IpamConfig(IPv4Network("10.7.0.0/24")), None, []
    )
    asked = one.create_network(
        new_network("asked"),
        IpamConfig(IPv4Network("10.8.0.0/24"), gateway=IPv4Address("10.8.0.9")),
        None,
        [],
    )

    seen = {network.name: network.ipam[0] for network in two.networks()}
    assert chosen.ipam[0].gateway_chosen and seen["chosen"].gateway_chosen
    assert seen["chosen"].gateway == IPv4Address("10.7.0.1")
    assert not asked.ipam[0].gateway_chosen and not seen["asked"].gateway_chosen
    assert seen["asked"].gateway == IPv4Address("10.8.0.9")


def test_names_vnis_and_subnets_are_unique_across_hosts(fake, tmp_path) -> None:
    one, two = host(fake, tmp_path, 1), host(fake, tmp_path, 2)
    one.create_network(new_network("ov"), None, 5000, [])
    with pytest.raises(Conflict, match="network with name ov already exists"):
        two.create_network(new_network("ov"), None, None, [])
    with pytest.raises(Conflict, match="VNI 5000 is used by another network"):
        two.create_network(new_network("other"), None, 5000, [])
    with pytest.raises(Conflict, match="overlaps"):
        two.create_network(new_network("third"), IpamConfig(IPv4Network("10.0.0.0/16")), None, [])


def test_a_lost_race_for_an_automatic_vni_is_retried(fake, tmp_path) -> None:
    one, two = host(fake, tmp_path, 1), host(fake, tmp_path, 2)

    def other_host_creates() -> None:
        fake.interfere = None
        two.create_network(new_network("fast"), None, None, [])

    fake.interfere = other_host_creates
    slow = one.create_network(new_network("slow"), None, None, [])
    assert vni_of(slow) == 4097
    assert slow.ipam[0].subnet == IPv4Network("10.0.1.0/24")


def test_overlapping_subnets_of_different_sizes_cannot_both_win_a_race(fake, tmp_path) -> None:
    one, two = host(fake, tmp_path, 1), host(fake, tmp_path, 2)

    def other_host_creates() -> None:
        two.create_network(new_network("wide"), IpamConfig(IPv4Network("10.1.0.0/16")), 5002, [])

    # Between one's choice and its transaction; the VNIs differ, so only the subnets collide.
    fake.interfere = other_host_creates
    with pytest.raises(Conflict, match="10.1.2.0/24 overlaps with 10.1.0.0/16"):
        one.create_network(new_network("narrow"), IpamConfig(IPv4Network("10.1.2.0/24")), 5001, [])
    assert [network.name for network in one.networks()] == ["wide"]


def test_addresses_claimed_by_two_hosts_never_collide(fake, tmp_path) -> None:
    one, two = host(fake, tmp_path, 1), host(fake, tmp_path, 2)
    network = one.create_network(new_network("ov"), None, None, [])
    claimed = []
    for number in range(6):
        store = one if number % 2 else two
        claimed.append(store.claim_address(network, f"endpoint{number}", None))
    assert len(set(claimed)) == 6
    assert IPv4Address("10.0.0.1") not in claimed  # the gateway is reserved


def test_a_claim_that_loses_its_race_takes_the_next_address(fake, tmp_path) -> None:
    one, two = host(fake, tmp_path, 1), host(fake, tmp_path, 2)
    network = one.create_network(new_network("ov"), None, None, [])
    fake.interfere = lambda: two.claim_address(network, "theirs", None)
    mine = one.claim_address(network, "mine", None)
    assert mine == IPv4Address("10.0.0.3")
    holder = fake.data[KEYS.address(network.id, IPv4Address("10.0.0.2"))][0]
    assert b'"host":"198.51.100.2"' in holder


def test_a_static_address_held_elsewhere_is_refused(fake, tmp_path) -> None:
    one, two = host(fake, tmp_path, 1), host(fake, tmp_path, 2)
    network = one.create_network(new_network("ov"), None, None, [])
    one.claim_address(network, "first", IPv4Address("10.0.0.50"))
    with pytest.raises(Conflict, match="already in use"):
        two.claim_address(network, "second", IPv4Address("10.0.0.50"))
    with pytest.raises(InvalidArgument, match="not inside subnet"):
        two.claim_address(network, "second", IPv4Address("10.9.0.50"))


def test_claims_and_records_go_with_the_lease(fake, tmp_path) -> None:
    one, two = host(fake, tmp_path, 1), host(fake, tmp_path, 2)
    network = one.create_network(new_network("ov"), None, None, [])
    address = two.claim_address(network, "endpoint", None)
    two.register(record(network, "endpoint", address, two))
    assert [each.endpoint_id for each in one.endpoints(network.id)] == ["endpoint"]
    fake.expire(two.lease)
    assert one.endpoints(network.id) == []
    assert one.claimed_addresses(network.id) == set()
    assert KEYS.network(network.id) in fake.data  # the definition has no lease


def test_reclaim_after_an_expiry_keeps_or_refuses(fake, tmp_path) -> None:
    one, two = host(fake, tmp_path, 1), host(fake, tmp_path, 2)
    network = one.create_network(new_network("ov"), None, None, [])
    kept = two.claim_address(network, "kept", None)
    lost = two.claim_address(network, "lost", None)
    old_lease = two.lease
    fake.expire(old_lease)
    one.claim_address(network, "newcomer", lost)

    two.lease = fake.grant(5)
    two.reclaim_address(network, "kept", kept)
    assert fake.data[KEYS.address(network.id, kept)][1] == two.lease
    with pytest.raises(Conflict, match="held by endpoint newcomer"):
        two.reclaim_address(network, "lost", lost)


def test_reclaim_moves_an_own_claim_to_the_current_lease(fake, tmp_path) -> None:
    one = host(fake, tmp_path, 1)
    network = one.create_network(new_network("ov"), None, None, [])
    address = one.claim_address(network, "endpoint", None)
    one.lease = fake.grant(5)  # a restarted daemon whose old lease still runs
    one.reclaim_address(network, "endpoint", address)
    assert fake.data[KEYS.address(network.id, address)][1] == one.lease


def test_release_leaves_an_address_that_another_endpoint_holds(fake, tmp_path) -> None:
    one, two = host(fake, tmp_path, 1), host(fake, tmp_path, 2)
    network = one.create_network(new_network("ov"), None, None, [])
    address = two.claim_address(network, "theirs", None)
    one.release_address(network.id, address, "theirs")  # same endpoint id, other host
    assert KEYS.address(network.id, address) in fake.data
    two.release_address(network.id, address, "theirs")
    assert KEYS.address(network.id, address) not in fake.data


def test_removing_a_network_is_refused_while_any_host_has_endpoints(fake, tmp_path) -> None:
    one, two = host(fake, tmp_path, 1), host(fake, tmp_path, 2)
    network = one.create_network(new_network("ov"), None, None, [])
    address = two.claim_address(network, "endpoint", None)
    two.register(record(network, "endpoint", address, two))
    with pytest.raises(Conflict, match=r"active endpoints \(c on 198.51.100.2\)"):
        one.delete_network(network)
    two.unregister(network.id, "endpoint")
    one.delete_network(network)
    assert not any(key.startswith("/nsnet/network") for key in fake.data)
    assert not any(key.startswith(KEYS.addresses) for key in fake.data)
    assert not any(key.startswith(KEYS.vnis) for key in fake.data)


def test_an_endpoint_joining_during_a_removal_stops_it_or_fails_to_join(fake, tmp_path) -> None:
    one, two = host(fake, tmp_path, 1), host(fake, tmp_path, 2)
    network = one.create_network(new_network("ov"), None, None, [])
    address = two.claim_address(network, "endpoint", None)

    def other_host_registers() -> None:
        two.register(record(network, "endpoint", address, two))

    fake.interfere = other_host_registers  # after one's check that no endpoint is left
    with pytest.raises(Conflict, match=r"active endpoints \(c on 198.51.100.2\)"):
        one.delete_network(network)
    assert [each.name for each in one.networks()] == ["ov"]

    two.unregister(network.id, "endpoint")
    one.delete_network(network)
    with pytest.raises(NotFound, match="network ov was removed from the cluster"):
        two.register(record(network, "late", address, two))
    assert not any(key.startswith(KEYS.endpoints) for key in fake.data)


def test_a_restarted_daemon_keeps_a_live_lease(fake, tmp_path) -> None:
    one = host(fake, tmp_path, 1)
    again = host(fake, tmp_path, 1)
    assert again.lease == one.lease
    fake.expire(one.lease)
    third = host(fake, tmp_path, 1)
    assert third.lease != one.lease


def test_a_daemon_restarted_with_another_ttl_takes_a_lease_of_that_ttl(fake, tmp_path) -> None:
    one = host(fake, tmp_path, 1, ttl=15)
    again = host(fake, tmp_path, 1, ttl=3)  # a lease's TTL is fixed when it is granted
    assert again.lease != one.lease
    assert host(fake, tmp_path, 1, ttl=3).lease == again.lease


def record(network: Network, endpoint_id: str, address, store: ClusterStore) -> EndpointRecord:
    return EndpointRecord(
        network_id=network.id,
        network_name=network.name,
        endpoint_id=endpoint_id,
        container_id="f" * 64,
        container_name="c",
        address=address,
        prefixlen=24,
        mac_address="02:42:0a:00:00:02",
        host_address=store.host_address,
        host_name="h",
        aliases=("web",),
    )


def test_endpoint_records_round_trip_and_keys_split() -> None:
    network = new_network("ov")
    original = EndpointRecord(
        network.id, "ov", "e" * 64, "f" * 64, "c", IPv4Address("10.0.0.2"), 24,
        "02:42:0a:00:00:02", IPv4Address("198.51.100.1"), "h", ("web", "db"),
    )  # fmt: skip
    assert EndpointRecord.from_json(original.to_json()) == original
    assert split_endpoint_key(original.key) == (network.id, "e" * 64)
    assert split_endpoint_key(KEYS.address(network.id, IPv4Address("10.0.0.2"))) is None
