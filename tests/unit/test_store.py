"""nsnet.store: records round-trip, transactions roll back, keys refuse double allocations."""

import dataclasses
import json
import sqlite3
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

import pytest

from nsnet.errors import Conflict, Unavailable
from nsnet.models import Container, Endpoint, IpamConfig, Network, PortBinding
from nsnet.store import Store

NETWORK_ID = "a" * 64
CONTAINER_ID = "b" * 64
ENDPOINT_ID = "c" * 64


@pytest.fixture
def store(tmp_path: Path):
    opened = Store(tmp_path / "nsnet.db")
    yield opened
    opened.close()


def make_network(network_id: str = NETWORK_ID, name: str = "front") -> Network:
    return Network(
        id=network_id,
        name=name,
        driver="bridge",
        created="2024-05-01T10:00:00.123456789Z",
        internal=True,
        attachable=True,
        ipam_options={"opt": "1"},
        ipam=[
            IpamConfig(
                subnet=IPv4Network("10.7.0.0/16"),
                gateway=IPv4Address("10.7.0.254"),
                ip_range=IPv4Network("10.7.5.0/24"),
                aux_addresses={"router": IPv4Address("10.7.0.2")},
            )
        ],
        options={"com.docker.network.driver.mtu": "1400"},
        labels={"team": "blue"},
    )


def make_container(container_id: str = CONTAINER_ID, name: str = "web") -> Container:
    return Container(
        id=container_id,
        name=name,
        created="2024-05-01T10:00:01.000000001Z",
        hostname="webhost",
        network_mode="front",
        command=["sleep", "300"],
        state="running",
        pid=4242,
        exit_code=0,
        started_at="2024-05-01T10:00:02.000000001Z",
        detached=True,
        sysctls={"net.ipv4.ip_forward": "1"},
        mac_address="02:00:00:00:00:01",
        ip_address="10.7.5.9",
        aliases=["www"],
        auto_remove=True,
        ports=[PortBinding(container_port=80, protocol="udp", host_ip="0.0.0.0", host_port=8080)],
        process_start_time=12345,
        labels={"com.example.team": "web"},
        netns_path="/run/nsnet/netns/" + container_id,
        uts_path="/run/nsnet/netns/" + container_id + ".uts",
    )


def make_endpoint(
    endpoint_id: str = ENDPOINT_ID,
    network_id: str = NETWORK_ID,
    container_id: str = CONTAINER_ID,
    host_ifname: str = "veth1a2b3c4",
) -> Endpoint:
    return Endpoint(
        id=endpoint_id,
        network_id=network_id,
        container_id=container_id,
        container_ifname="eth0",
        host_ifname=host_ifname,
        mac_address="02:00:00:00:00:01",
        address=IPv4Address("10.7.5.9"),
        prefixlen=16,
        gateway=IPv4Address("10.7.0.254"),
        aliases=["www", "web"],
        static_address=True,
    )


def fill(store: Store) -> None:
    with store.transaction():
        store.put_network(make_network())
        store.put_container(make_container())
        store.put_endpoint(make_endpoint())
        store.allocate(NETWORK_ID, IPv4Address("10.7.5.9"), ENDPOINT_ID)


# Round trips


def test_a_network_round_trips(store: Store) -> None:
    network = make_network()
    with store.transaction():
        store.put_network(network)

    assert store.network(NETWORK_ID) == network
    assert store.networks() == [network]


def test_a_network_without_gateway_or_range_round_trips(store: Store) -> None:
    network = Network(
        id=NETWORK_ID,
        name="plain",
        driver="bridge",
        created="x",
        ipam=[IpamConfig(subnet=IPv4Network("10.8.0.0/24"))],
    )
    builtin = Network(id="d" * 64, name="none", driver="null", created="y")
    with store.transaction():
        store.put_network(network)
        store.put_network(builtin)

    assert store.networks() == [network, builtin]


def test_a_container_round_trips(store: Store) -> None:
    container = make_container()
    with store.transaction():
        store.put_container(container)

    assert store.container(CONTAINER_ID) == container
    assert store.containers() == [container]
    assert store.container_names() == {"web": CONTAINER_ID}


def test_a_row_from_before_the_start_time_field_keeps_its_process(store: Store) -> None:
    """Rows written by earlier versions kept the start time in a label, shown to users."""
    container = make_container()
    with store.transaction():
        store.put_container(container)
    document = json.loads(
        store.db.execute(
            "SELECT document FROM containers WHERE id = ?", (CONTAINER_ID,)
        ).fetchone()[0]
    )
    del document["process_start_time"]
    document["labels"]["nsnet.process-start-time"] = "777"
    with store.transaction():
        store.db.execute(
            "UPDATE containers SET document = ? WHERE id = ?", (json.dumps(document), CONTAINER_ID)
        )

    loaded = store.container(CONTAINER_ID)
    assert loaded.process_start_time == 777
    assert loaded.labels == container.labels


def test_a_container_update_replaces_the_record(store: Store) -> None:
    container = make_container()
    with store.transaction():
        store.put_container(container)
    container.state = "exited"
    container.exit_code = 137
    with store.transaction():
        store.put_container(container)

    assert store.container(CONTAINER_ID).state == "exited"
    assert store.container(CONTAINER_ID).exit_code == 137
    assert len(store.containers()) == 1


def test_an_endpoint_round_trips(store: Store) -> None:
    fill(store)

    assert store.endpoints() == [make_endpoint()]
    assert store.endpoints(network_id=NETWORK_ID) == [make_endpoint()]
    assert store.endpoints(container_id=CONTAINER_ID) == [make_endpoint()]
    assert store.endpoints(network_id=NETWORK_ID, container_id="e" * 64) == []
    assert store.host_ifnames() == {"veth1a2b3c4"}
    assert store.endpoint_count(NETWORK_ID) == 1


def test_an_endpoint_without_gateway_round_trips(store: Store) -> None:
    endpoint = make_endpoint()
    endpoint.gateway = None
    with store.transaction():
        store.put_network(make_network())
        store.put_container(make_container())
        store.put_endpoint(endpoint)

    assert store.endpoints() == [endpoint]


def test_allocations_round_trip_and_release(store: Store) -> None:
    fill(store)
    with store.transaction():
        store.allocate(NETWORK_ID, IPv4Address("10.7.5.10"), "owner2")

    assert store.allocated(NETWORK_ID) == {
        int(IPv4Address("10.7.5.9")),
        int(IPv4Address("10.7.5.10")),
    }
    assert store.address_owner(NETWORK_ID, IPv4Address("10.7.5.9")) == ENDPOINT_ID
    assert store.address_owner(NETWORK_ID, IPv4Address("10.7.5.11")) is None

    with store.transaction():
        store.release(NETWORK_ID, IPv4Address("10.7.5.9"))
    assert store.allocated(NETWORK_ID) == {int(IPv4Address("10.7.5.10"))}


def test_records_survive_reopening(tmp_path: Path) -> None:
    first = Store(tmp_path / "nsnet.db")
    fill(first)
    first.close()

    second = Store(tmp_path / "nsnet.db")
    try:
        assert second.networks() == [make_network()]
        assert second.containers() == [make_container()]
        assert second.endpoints() == [make_endpoint()]
        assert second.allocated(NETWORK_ID) == {int(IPv4Address("10.7.5.9"))}
    finally:
        second.close()


def test_deleting_records(store: Store) -> None:
    fill(store)
    with store.transaction():
        store.release(NETWORK_ID, IPv4Address("10.7.5.9"))
        store.delete_endpoint(ENDPOINT_ID)
        store.delete_container(CONTAINER_ID)
        store.delete_network(NETWORK_ID)

    assert store.networks() == []
    assert store.containers() == []
    assert store.endpoints() == []
    assert store.allocated(NETWORK_ID) == set()


def test_deleting_a_network_releases_its_addresses(store: Store) -> None:
    with store.transaction():
        store.put_network(make_network())
        store.allocate(NETWORK_ID, IPv4Address("10.7.5.9"), "someone")
    with store.transaction():
        store.delete_network(NETWORK_ID)

    assert store.allocated(NETWORK_ID) == set()


# Transactions


def test_a_failed_transaction_leaves_nothing(store: Store) -> None:
    with pytest.raises(RuntimeError), store.transaction():
        store.put_network(make_network())
        store.put_container(make_container())
        store.put_endpoint(make_endpoint())
        store.allocate(NETWORK_ID, IPv4Address("10.7.5.9"), ENDPOINT_ID)
        raise RuntimeError("a later step failed")

    assert store.networks() == []
    assert store.containers() == []
    assert store.endpoints() == []
    assert store.allocated(NETWORK_ID) == set()


def test_a_failed_transaction_restores_changed_and_deleted_rows(store: Store) -> None:
    fill(store)

    with pytest.raises(RuntimeError), store.transaction():
        changed = make_container()
        changed.state = "exited"
        store.put_container(changed)
        store.release(NETWORK_ID, IPv4Address("10.7.5.9"))
        store.delete_endpoint(ENDPOINT_ID)
        raise RuntimeError("a later step failed")

    assert store.containers() == [make_container()]
    assert store.endpoints() == [make_endpoint()]
    assert store.allocated(NETWORK_ID) == {int(IPv4Address("10.7.5.9"))}


def test_a_nested_transaction_joins_the_outer_one(store: Store) -> None:
    with pytest.raises(RuntimeError), store.transaction():
        store.put_network(make_network())
        with store.transaction():
            store.put_container(make_container())
        raise RuntimeError("the outer operation failed after the inner one")

    assert store.networks() == []
    assert store.containers() == []


def test_the_store_is_usable_after_a_rollback(store: Store) -> None:
    with pytest.raises(RuntimeError), store.transaction():
        store.put_network(make_network())
        raise RuntimeError("failed")
    with store.transaction():
        store.put_network(make_network())

    assert store.networks() == [make_network()]


def test_another_connection_sees_nothing_before_commit(tmp_path: Path) -> None:
    store = Store(tmp_path / "nsnet.db")
    reader = sqlite3.connect(tmp_path / "nsnet.db")
    try:
        with store.transaction():
            store.put_network(make_network())
            assert reader.execute("SELECT count(*) FROM networks").fetchone() == (0,)
        assert reader.execute("SELECT count(*) FROM networks").fetchone() == (1,)
    finally:
        reader.close()
        store.close()


# Keys


def test_an_address_cannot_be_allocated_twice(store: Store) -> None:
    fill(store)

    with pytest.raises(Conflict, match="cannot store address 10.7.5.9"), store.transaction():
        store.allocate(NETWORK_ID, IPv4Address("10.7.5.9"), "another endpoint")

    assert store.address_owner(NETWORK_ID, IPv4Address("10.7.5.9")) == ENDPOINT_ID


def test_the_same_address_in_two_networks_is_fine(store: Store) -> None:
    fill(store)
    with store.transaction():
        store.put_network(make_network("f" * 64, "back"))
        store.allocate("f" * 64, IPv4Address("10.7.5.9"), "other")

    assert store.allocated("f" * 64) == {int(IPv4Address("10.7.5.9"))}


def test_network_names_are_unique(store: Store) -> None:
    fill(store)

    with pytest.raises(Conflict, match="cannot store network 'front'"), store.transaction():
        store.put_network(make_network("f" * 64, "front"))

    assert store.networks() == [make_network()]


def test_a_duplicate_network_name_never_replaces_the_other_network(store: Store) -> None:
    """Regression: INSERT OR REPLACE deleted the network that already held the name."""
    with store.transaction():
        store.put_network(make_network())

    with pytest.raises(Conflict, match="cannot store network 'front'"), store.transaction():
        store.put_network(make_network("f" * 64, "front"))

    assert store.networks() == [make_network()]


def test_container_names_are_unique(store: Store) -> None:
    """Regression: INSERT OR REPLACE deleted the container that already held the name."""
    with store.transaction():
        store.put_container(make_container())

    with pytest.raises(Conflict, match="cannot store container 'web'"), store.transaction():
        store.put_container(make_container("f" * 64, "web"))

    assert store.containers() == [make_container()]


def test_one_endpoint_per_network_and_container(store: Store) -> None:
    """Regression: INSERT OR REPLACE deleted the endpoint already in the network."""
    fill(store)

    with pytest.raises(Conflict), store.transaction():
        store.put_endpoint(make_endpoint("f" * 64, host_ifname="veth7777777"))

    assert store.endpoints() == [make_endpoint()]


def test_host_interface_names_are_unique(store: Store) -> None:
    """Regression: INSERT OR REPLACE deleted the endpoint already using the veth name."""
    fill(store)
    with store.transaction():
        store.put_container(make_container("f" * 64, "api"))

    with pytest.raises(Conflict, match="veth1a2b3c4"), store.transaction():
        store.put_endpoint(make_endpoint("e" * 64, container_id="f" * 64))

    assert store.endpoints() == [make_endpoint()]


def test_an_endpoint_update_keeps_its_row(store: Store) -> None:
    fill(store)
    changed = make_endpoint()
    changed.aliases = ["only"]
    with store.transaction():
        store.put_endpoint(changed)

    assert store.endpoints() == [changed]


def test_an_endpoint_needs_its_network_and_container(store: Store) -> None:
    with pytest.raises(Conflict), store.transaction():
        store.put_endpoint(make_endpoint())

    assert store.endpoints() == []


def test_an_unopenable_store_is_unavailable(tmp_path: Path) -> None:
    with pytest.raises(Unavailable, match="cannot open store"):
        Store(tmp_path / "missing" / "nsnet.db")


def test_a_store_error_becomes_nsnets(store: Store) -> None:
    """sqlite's errors reach callers as NsnetError categories, with the cause kept."""
    with store.transaction():
        store.put_network(make_network())
        store.put_container(make_container())
        store.put_endpoint(make_endpoint())

    with pytest.raises(Conflict, match="the store refused a change") as refused:
        with store.transaction():
            store.delete_network(NETWORK_ID)  # its endpoint is still there
    assert isinstance(refused.value.__cause__, sqlite3.IntegrityError)
    assert store.network(NETWORK_ID) is not None  # rolled back

    store.db.close()
    with pytest.raises(Unavailable, match="the store is unusable"):
        store.networks()


def test_containers_are_found_by_name_and_id_prefix_without_reading_them_all(
    store: Store,
) -> None:
    first = make_container("a1" + "0" * 62, "web")
    second = make_container("a2" + "0" * 62, "db")
    with store.transaction():
        store.put_container(first)
        store.put_container(second)

    assert store.container_id_named("db") == second.id
    assert store.container_id_named("nobody") is None
    assert [c.id for c in store.containers_with_id_prefix("a1")] == [first.id]
    assert [c.id for c in store.containers_with_id_prefix("a")] == [first.id, second.id]
    assert store.containers_with_id_prefix("af") == []
    assert store.containers_with_id_prefix("A1") == []  # ids are lowercase hex
    assert store.containers_with_id_prefix("") == []


def test_a_host_ifname_is_known_taken(store: Store) -> None:
    with store.transaction():
        store.put_network(make_network())
        store.put_container(make_container())
        store.put_endpoint(make_endpoint(host_ifname="veth1a2b3c4"))

    assert store.host_ifname_taken("veth1a2b3c4")
    assert not store.host_ifname_taken("veth0000000")


def test_the_containers_sharing_a_namespace_are_found_by_their_mode(store: Store) -> None:
    owner = make_container("b1" + "0" * 62, "owner")
    joiner = dataclasses.replace(
        make_container("b2" + "0" * 62, "joiner"), network_mode=f"container:{owner.id}"
    )
    with store.transaction():
        store.put_container(owner)
        store.put_container(joiner)

    assert store.containers_sharing(owner.id) == ["joiner"]
    assert store.containers_sharing(joiner.id) == []
