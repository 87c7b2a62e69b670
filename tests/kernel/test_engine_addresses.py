"""The engine's address management on the kernel: --ip, reuse, exhaustion, across restarts."""

from ipaddress import IPv4Network

import pytest

from nsnet.errors import Conflict, Forbidden, InvalidArgument
from nsnet.models import ContainerCreate, IpamConfig, NetworkCreate
from tests.kernel.test_engine_support import (
    EngineThread,
    engine_fixture,  # noqa: F401 (the fixture)
    settled_snapshot,
    snapshot,
)


def small_network(runner: EngineThread, name: str, subnet: str) -> None:
    runner.create_network(NetworkCreate(name=name, ipam=[IpamConfig(subnet=IPv4Network(subnet))]))


def address_of(runner: EngineThread, container: str) -> str:
    [(_, endpoint)] = runner.container_endpoints(runner.get_container(container).id)
    return str(endpoint.address)


def eth0_address(runner: EngineThread, container: str) -> str:
    entries = runner.exec_json(container, "-4", "address", "show", "dev", "eth0")
    return entries[0]["addr_info"][0]["local"]


def test_a_pinned_address_is_honoured(engine: EngineThread) -> None:
    small_network(engine, "pins", "10.81.0.0/24")

    engine.create_container(
        ContainerCreate(name="pinned", network="pins", ip_address="10.81.0.77")
    )

    assert eth0_address(engine, "pinned") == "10.81.0.77"
    [(_, endpoint)] = engine.container_endpoints(engine.get_container("pinned").id)
    assert endpoint.static_address


def test_a_pinned_address_is_never_handed_out_also_after_a_restart(
    engine: EngineThread,
) -> None:
    small_network(engine, "tiny", "10.82.0.0/29")  # .1 gateway, .2 to .6 usable
    engine.create_container(ContainerCreate(name="pinned", network="tiny", ip_address="10.82.0.3"))
    engine.create_container(ContainerCreate(name="d1", network="tiny"))
    engine.create_container(ContainerCreate(name="d2", network="tiny"))

    engine.reopen()
    engine.create_container(ContainerCreate(name="d3", network="tiny"))
    engine.create_container(ContainerCreate(name="d4", network="tiny"))

    assert [address_of(engine, name) for name in ("d1", "d2", "d3", "d4")] == [
        "10.82.0.2",
        "10.82.0.4",
        "10.82.0.5",
        "10.82.0.6",
    ]
    assert eth0_address(engine, "pinned") == "10.82.0.3"
    with pytest.raises(Conflict, match="no free address left in 10.82.0.0/29"):
        engine.create_container(ContainerCreate(name="d5", network="tiny"))


def test_a_taken_address_cannot_be_pinned(engine: EngineThread) -> None:
    small_network(engine, "taken", "10.83.0.0/24")
    engine.create_container(ContainerCreate(name="first", network="taken"))

    with pytest.raises(Forbidden) as caught:
        engine.create_container(
            ContainerCreate(name="second", network="taken", ip_address="10.83.0.2")
        )

    assert "10.83.0.2 is already in use" in str(caught.value)
    assert "'second'" in str(caught.value)


@pytest.mark.parametrize(
    ("pinned", "error", "cause"),
    [
        ("10.84.1.5", InvalidArgument, "is not inside subnet 10.84.0.0/24"),
        ("10.84.0.255", InvalidArgument, "network or broadcast"),
        ("10.84.0.1", Forbidden, "is reserved"),
        ("10.84.0.300", InvalidArgument, "invalid IPv4 address '10.84.0.300'"),
    ],
)
def test_bad_pinned_addresses_are_refused_and_leave_nothing(
    engine: EngineThread, pinned: str, error: type, cause: str
) -> None:
    small_network(engine, "strict", "10.84.0.0/24")
    before = snapshot(engine)

    with pytest.raises(error, match=cause):
        engine.create_container(ContainerCreate(name="bad", network="strict", ip_address=pinned))

    assert settled_snapshot(engine, before) == before


def test_released_addresses_are_reused(engine: EngineThread) -> None:
    small_network(engine, "reuse", "10.85.0.0/24")
    engine.create_container(ContainerCreate(name="r1", network="reuse"))
    engine.create_container(ContainerCreate(name="r2", network="reuse"))

    engine.remove_container("r1")
    engine.create_container(ContainerCreate(name="r3", network="reuse"))

    assert address_of(engine, "r3") == "10.85.0.2"
    assert eth0_address(engine, "r3") == "10.85.0.2"
    assert address_of(engine, "r2") == "10.85.0.3"


def test_an_address_released_by_disconnect_is_reused(engine: EngineThread) -> None:
    small_network(engine, "hop", "10.86.0.0/24")
    engine.create_container(ContainerCreate(name="h1"))
    engine.create_container(ContainerCreate(name="h2"))
    engine.connect("hop", "h1")

    engine.disconnect("hop", "h1")
    endpoint = engine.connect("hop", "h2")

    assert str(endpoint.address) == "10.86.0.2"


def test_exhaustion_gives_a_clear_error_and_leaves_nothing(engine: EngineThread) -> None:
    small_network(engine, "full", "10.87.0.0/30")  # one address besides the gateway
    engine.create_container(ContainerCreate(name="only", network="full"))
    engine.create_container(ContainerCreate(name="other"))
    before = snapshot(engine)

    with pytest.raises(Conflict, match=r"no free address left in 10\.87\.0\.0/30"):
        engine.create_container(ContainerCreate(name="overflow", network="full"))
    with pytest.raises(Conflict, match=r"no free address left in 10\.87\.0\.0/30"):
        engine.connect("full", "other")

    assert settled_snapshot(engine, before) == before
    assert "overflow" not in {each.name for each in engine.list_containers(all=True)}
