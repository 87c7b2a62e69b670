"""Every operation completes or leaves nothing behind (issue 2, point 8).

Failure injection: each failpoint the engine names (``failpoints.hit("...")`` anywhere in
nsnet, found by reading the source, so a new step is covered as soon as it exists) is armed
through NSNET_FAILPOINTS while the operation it belongs to runs; the operation must raise
InjectedFailure and the snapshot (links, addresses, routes, sandboxes, namespace files, nsfs
mounts, processes, store rows) must equal the one taken before. A retry must then succeed.

Bad input: each refused request raises the right NsnetError category with a message naming
what was wrong, and changes nothing.
"""

import re
from collections.abc import Callable
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

import pytest

from nsnet.errors import (
    Conflict,
    Forbidden,
    InjectedFailure,
    InvalidArgument,
    NotFound,
    NsnetError,
)
from nsnet.models import ContainerCreate, IpamConfig, NetworkCreate, PortBinding
from tests.kernel.test_engine_support import (
    EngineThread,
    engine_fixture,  # noqa: F401 (the fixture)
    settled_snapshot,
    snapshot,
)

PACKAGE = Path(__file__).resolve().parents[2] / "nsnet"
FAILPOINT_CALL = re.compile(r"""failpoints\.hit\(\s*["']([\w.-]+)["']\s*\)""")


def engine_failpoints() -> list[str]:
    """Every failpoint name in the package's source."""
    names = set()
    for path in PACKAGE.rglob("*.py"):
        names.update(FAILPOINT_CALL.findall(path.read_text()))
    return sorted(names)


def subnet(text: str) -> list[IpamConfig]:
    return [IpamConfig(subnet=IPv4Network(text))]


def baseline(runner: EngineThread) -> None:
    """A user network and a running container on the default bridge, present in every case."""
    runner.create_network(NetworkCreate(name="base", ipam=subnet("10.61.0.0/24")))
    runner.create_container(ContainerCreate(name="resident", command=["sleep", "300"]))
    runner.start("resident")


def published(port: int) -> list[PortBinding]:
    return [PortBinding(container_port=80, host_port=port)]


@dataclass(frozen=True)
class Scenario:
    """An operation to fail, what it needs beyond the baseline, and steps it never reaches."""

    operation: Callable[[EngineThread], object]
    setup: Callable[[EngineThread], object] = lambda runner: None
    misses: frozenset[str] = frozenset()


def _nothing(runner: EngineThread) -> None:
    pass


def _publisher_off_its_network(runner: EngineThread) -> None:
    runner.create_container(
        ContainerCreate(name="publisher", network="base", ports=published(8081))
    )
    runner.disconnect("base", "publisher")


def _leaver(runner: EngineThread) -> None:
    runner.create_container(ContainerCreate(name="leaver", ports=published(8082)))
    runner.connect("base", "leaver")


SCENARIOS: dict[str, dict[str, Scenario]] = {
    "create_network": {
        "create_network": Scenario(
            lambda runner: runner.create_network(
                NetworkCreate(
                    name="fresh",
                    ipam=subnet("10.62.0.0/24"),
                    internal=True,
                    options={"com.docker.network.bridge.enable_icc": "false"},
                )
            )
        ),
    },
    "remove_network": {
        "remove_network": Scenario(
            lambda runner: runner.remove_network("old"),
            lambda runner: runner.create_network(
                NetworkCreate(name="old", ipam=subnet("10.63.0.0/24"), internal=True)
            ),
        ),
    },
    "create_container": {
        "create_container": Scenario(
            lambda runner: runner.create_container(
                ContainerCreate(
                    name="newbie",
                    network="base",
                    hostname="newbie",
                    sysctls={"net.ipv4.ip_forward": "1"},
                    ports=published(8083),
                )
            )
        ),
        # Its own mount namespace over the resident's network namespace, and nothing else.
        "container mode": Scenario(
            lambda runner: runner.create_container(
                ContainerCreate(name="guest", network="container:resident")
            ),
            misses=frozenset(
                {
                    "create_container.sandbox",
                    "create_container.endpoint",
                    "create_container.ports",
                }
            ),
        ),
        "none mode": Scenario(
            lambda runner: runner.create_container(ContainerCreate(name="loner", network="none")),
            misses=frozenset({"create_container.endpoint", "create_container.ports"}),
        ),
    },
    "connect": {
        "connect": Scenario(
            lambda runner: runner.connect("base", "resident", aliases=["r"]),
            misses=frozenset({"connect.ports"}),  # ports follow the primary network only
        ),
        "reconnect with ports": Scenario(
            lambda runner: runner.connect("base", "publisher"), _publisher_off_its_network
        ),
        "create_container": Scenario(
            lambda runner: runner.create_container(
                ContainerCreate(name="joiner", network="base", ports=published(8084))
            ),
            misses=frozenset({"connect.ports"}),  # create publishes under its own step
        ),
    },
    "disconnect": {
        "disconnect": Scenario(
            lambda runner: runner.disconnect("base", "resident"),
            lambda runner: runner.connect("base", "resident"),
        ),
    },
    "remove_container": {
        "remove_container": Scenario(lambda runner: runner.remove_container("leaver"), _leaver),
    },
    "start_container": {
        "start_container": Scenario(
            lambda runner: runner.start_container("sleeper"),
            lambda runner: runner.create_container(
                ContainerCreate(name="sleeper", command=["sleep", "300"])
            ),
        ),
    },
}


# Steps only an overlay (global-scope) network reaches; they need a cluster store, so the
# overlay's own tests inject them.
OVERLAY_ONLY = {"connect.register", "overlay.namespace", "overlay.vxlan"}


def failure_cases() -> list:
    cases = []
    for name in engine_failpoints():
        if name in OVERLAY_ONLY:
            continue
        operation = name.split(".", 1)[0]
        known = SCENARIOS.get(operation)
        if not known:
            cases.append(pytest.param(name, None, id=f"{name}-no-scenario"))
            continue
        for label, scenario in known.items():
            if name not in scenario.misses:
                cases.append(pytest.param(name, label, id=f"{name}-during-{label}"))
    return cases


def test_the_engine_names_failpoints_for_every_operation() -> None:
    operations = {name.split(".", 1)[0] for name in engine_failpoints()}

    assert set(SCENARIOS) <= operations


@pytest.mark.parametrize(("failpoint", "label"), failure_cases())
def test_a_failure_at_each_step_rolls_back_everything(
    engine: EngineThread, monkeypatch: pytest.MonkeyPatch, failpoint: str, label: str | None
) -> None:
    if label is None:
        pytest.fail(f"no scenario exercises failpoint '{failpoint}': add one to SCENARIOS")
    scenario = SCENARIOS[failpoint.split(".", 1)[0]][label]
    baseline(engine)
    scenario.setup(engine)
    before = snapshot(engine)

    monkeypatch.setenv("NSNET_FAILPOINTS", failpoint)
    with pytest.raises(InjectedFailure, match=re.escape(failpoint)):
        scenario.operation(engine)
    monkeypatch.delenv("NSNET_FAILPOINTS")

    assert settled_snapshot(engine, before) == before
    scenario.operation(engine)  # nothing left behind blocks a retry


def test_a_failed_operation_leaves_nothing_after_a_restart_either(
    engine: EngineThread, monkeypatch: pytest.MonkeyPatch
) -> None:
    baseline(engine)
    before = snapshot(engine)

    monkeypatch.setenv("NSNET_FAILPOINTS", "connect.route")
    with pytest.raises(InjectedFailure):
        engine.create_container(ContainerCreate(name="halfway", network="base"))
    monkeypatch.delenv("NSNET_FAILPOINTS")
    engine.reopen()

    assert settled_snapshot(engine, before) == before


# Bad input


def _guest_of_resident(runner: EngineThread) -> None:
    runner.create_container(ContainerCreate(name="guest", network="container:resident"))


BAD_INPUT = [
    # Unknown things.
    (
        "unknown network for a container",
        lambda r: r.create_container(ContainerCreate(name="lost", network="nowhere")),
        NotFound,
        "nowhere",
        _nothing,
    ),
    (
        "connect to an unknown network",
        lambda r: r.connect("nowhere", "resident"),
        NotFound,
        "nowhere",
        _nothing,
    ),
    (
        "connect an unknown container",
        lambda r: r.connect("base", "ghost"),
        NotFound,
        "ghost",
        _nothing,
    ),
    (
        "disconnect an unknown container",
        lambda r: r.disconnect("base", "ghost"),
        NotFound,
        "ghost",
        _nothing,
    ),
    (
        "remove an unknown network",
        lambda r: r.remove_network("nowhere"),
        NotFound,
        "nowhere",
        _nothing,
    ),
    (
        "remove an unknown container",
        lambda r: r.remove_container("ghost"),
        NotFound,
        "ghost",
        _nothing,
    ),
    (
        "start an unknown container",
        lambda r: r.start_container("ghost"),
        NotFound,
        "ghost",
        _nothing,
    ),
    (
        "share the namespace of an unknown container",
        lambda r: r.create_container(ContainerCreate(name="lost", network="container:ghost")),
        NotFound,
        "ghost",
        _nothing,
    ),
    (
        "an unknown driver",
        lambda r: r.create_network(NetworkCreate(name="odd", driver="weird")),
        NotFound,
        "weird",
        _nothing,
    ),
    # Duplicates and overlaps.
    (
        "a duplicate network name",
        lambda r: r.create_network(NetworkCreate(name="base", ipam=subnet("10.64.0.0/24"))),
        Conflict,
        "base",
        _nothing,
    ),
    (
        "a duplicate container name",
        lambda r: r.create_container(ContainerCreate(name="resident")),
        Conflict,
        "resident",
        _nothing,
    ),
    (
        "a subnet overlapping a user network",
        lambda r: r.create_network(NetworkCreate(name="overlap", ipam=subnet("10.61.0.128/25"))),
        Forbidden,
        "10.61.0.128/25",
        _nothing,
    ),
    (
        "a subnet overlapping the default bridge",
        lambda r: r.create_network(NetworkCreate(name="overlap", ipam=subnet("172.17.9.0/24"))),
        Forbidden,
        "172.17.9.0/24",
        _nothing,
    ),
    (
        "a second connect to the same network",
        lambda r: r.connect("bridge", "resident"),
        Forbidden,
        "resident",
        _nothing,
    ),
    (
        "a bridge name another network uses",
        lambda r: r.create_network(
            NetworkCreate(
                name="copycat",
                ipam=subnet("10.67.0.0/24"),
                options={"com.docker.network.bridge.name": "nsnet0"},
            )
        ),
        Conflict,
        "nsnet0",
        _nothing,
    ),
    # Malformed values.
    (
        "an invalid IP for a container",
        lambda r: r.create_container(
            ContainerCreate(name="badip", network="base", ip_address="10.61.0.999")
        ),
        InvalidArgument,
        "10.61.0.999",
        _nothing,
    ),
    (
        "an invalid IP for connect",
        lambda r: r.connect("base", "resident", ip_address="bogus"),
        InvalidArgument,
        "bogus",
        _nothing,
    ),
    (
        "an IP outside the subnet",
        lambda r: r.connect("base", "resident", ip_address="10.99.0.5"),
        InvalidArgument,
        "10.99.0.5",
        _nothing,
    ),
    (
        "an invalid MAC",
        lambda r: r.create_container(
            ContainerCreate(name="badmac", mac_address="zz:00:00:00:00:01")
        ),
        InvalidArgument,
        "zz:00:00:00:00:01",
        _nothing,
    ),
    (
        "a multicast MAC",
        lambda r: r.create_container(
            ContainerCreate(name="badmac", mac_address="01:00:5e:00:00:01")
        ),
        InvalidArgument,
        "01:00:5e:00:00:01",
        _nothing,
    ),
    (
        "a gateway outside the subnet",
        lambda r: r.create_network(
            NetworkCreate(
                name="strayed",
                ipam=[
                    IpamConfig(
                        subnet=IPv4Network("10.65.0.0/24"), gateway=IPv4Address("10.66.0.1")
                    )
                ],
            )
        ),
        InvalidArgument,
        "10.66.0.1",
        _nothing,
    ),
    (
        "an ip-range outside the subnet",
        lambda r: r.create_network(
            NetworkCreate(
                name="strayed",
                ipam=[
                    IpamConfig(
                        subnet=IPv4Network("10.65.0.0/24"), ip_range=IPv4Network("10.66.0.0/25")
                    )
                ],
            )
        ),
        InvalidArgument,
        "10.66.0.0/25",
        _nothing,
    ),
    (
        "an invalid network name",
        lambda r: r.create_network(NetworkCreate(name="bad name!")),
        InvalidArgument,
        "bad name!",
        _nothing,
    ),
    (
        "an invalid container name",
        lambda r: r.create_container(ContainerCreate(name="bad/name")),
        InvalidArgument,
        "bad/name",
        _nothing,
    ),
    (
        "IPv6",
        lambda r: r.create_network(NetworkCreate(name="six", enable_ipv6=True)),
        InvalidArgument,
        "IPv6",
        _nothing,
    ),
    (
        "an unknown bridge option",
        lambda r: r.create_network(NetworkCreate(name="opts", options={"com.example.nope": "1"})),
        InvalidArgument,
        "com.example.nope",
        _nothing,
    ),
    (
        "a sysctl outside net.*",
        lambda r: r.create_container(
            ContainerCreate(name="tuned", sysctls={"kernel.shmmax": "1"})
        ),
        InvalidArgument,
        "kernel.shmmax",
        _nothing,
    ),
    (
        "an unknown net sysctl",
        lambda r: r.create_container(
            ContainerCreate(name="tuned", network="base", sysctls={"net.ipv4.no_such_knob": "1"})
        ),
        NsnetError,
        "net.ipv4.no_such_knob",
        _nothing,
    ),
    (
        "a hostname in host mode",
        lambda r: r.create_container(ContainerCreate(name="hosted", network="host", hostname="h")),
        InvalidArgument,
        "hostname",
        _nothing,
    ),
    (
        "--ip on the default bridge",
        lambda r: r.create_container(ContainerCreate(name="pinned", ip_address="172.17.0.50")),
        InvalidArgument,
        "user defined networks only",
        _nothing,
    ),
    (
        "start without a command",
        lambda r: r.start_container("idle"),
        InvalidArgument,
        "idle",
        lambda r: r.create_container(ContainerCreate(name="idle")),
    ),
    # Refused in this state.
    (
        "connect a none-mode container",
        lambda r: r.connect("base", "alone"),
        InvalidArgument,
        "alone",
        lambda r: r.create_container(ContainerCreate(name="alone", network="none")),
    ),
    (
        "connect a host-mode container",
        lambda r: r.connect("base", "hosted"),
        InvalidArgument,
        "hosted",
        lambda r: r.create_container(ContainerCreate(name="hosted", network="host")),
    ),
    (
        "connect a container-mode container",
        lambda r: r.connect("base", "guest"),
        InvalidArgument,
        "guest",
        _guest_of_resident,
    ),
    (
        "connect to the host network",
        lambda r: r.connect("host", "resident"),
        InvalidArgument,
        "host",
        _nothing,
    ),
    (
        "connect to the none network",
        lambda r: r.connect("none", "resident"),
        InvalidArgument,
        "none",
        _nothing,
    ),
    (
        "remove the bridge network",
        lambda r: r.remove_network("bridge"),
        Forbidden,
        "bridge",
        _nothing,
    ),
    ("remove the host network", lambda r: r.remove_network("host"), Forbidden, "host", _nothing),
    ("remove the none network", lambda r: r.remove_network("none"), Forbidden, "none", _nothing),
    (
        "create a network named like a built-in one",
        lambda r: r.create_network(NetworkCreate(name="bridge")),
        Forbidden,
        "bridge",
        _nothing,
    ),
    (
        "remove a network with endpoints",
        lambda r: r.remove_network("base"),
        Forbidden,
        "member",
        lambda r: r.create_container(ContainerCreate(name="member", network="base")),
    ),
    (
        "remove a running container without force",
        lambda r: r.remove_container("resident"),
        Conflict,
        "running container",
        _nothing,
    ),
    (
        "remove a container whose namespace another shares",
        lambda r: r.remove_container("resident", force=True),
        Conflict,
        "guest",
        _guest_of_resident,
    ),
    (
        "container mode on a container that is not running",
        lambda r: r.create_container(ContainerCreate(name="guest", network="container:idle")),
        Conflict,
        "idle",
        lambda r: r.create_container(ContainerCreate(name="idle")),
    ),
]


@pytest.mark.parametrize(
    ("operation", "error", "named", "setup"),
    [pytest.param(*case[1:], id=case[0]) for case in BAD_INPUT],
)
def test_bad_input_is_refused_naming_it_and_changes_nothing(
    engine: EngineThread,
    operation: Callable,
    error: type[NsnetError],
    named: str,
    setup: Callable,
) -> None:
    baseline(engine)
    setup(engine)
    before = snapshot(engine)

    with pytest.raises(error) as caught:
        operation(engine)

    assert named in str(caught.value)
    assert not isinstance(caught.value, InjectedFailure)
    assert settled_snapshot(engine, before) == before
