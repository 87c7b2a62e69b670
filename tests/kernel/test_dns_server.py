"""The embedded DNS server with real clients inside throwaway "container" namespaces.

Topology: a "host" namespace (the daemon's side: the server's loop thread lives there and
forwards from there), an "outside" namespace holding the test upstream servers on 192.0.2.53
(answers) and 192.0.2.54 (never answers), reached from the host through a veth, and two
"container" namespaces made with ``ip netns add`` in which the server's listeners are opened and
``dig`` and busybox ``nslookup`` ask 127.0.0.11. The machine's resolvers are never used: the
server is only ever given the test upstreams.
"""

import os
import re
import select
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from nsnet.dns import DnsServer, NameIndex, Resolver, SandboxScope, Upstream
from nsnet.dns.server import open_listener_sockets
from nsnet.errors import Unavailable
from tests.support.dnsload import measure_query_rate
from tests.support.netns import Namespace, NamespacePool, created_names, run, unique_name
from tests.support.topology import HostWithOutside

REPO_ROOT = Path(__file__).resolve().parents[2]
GOOD_UPSTREAM = "192.0.2.53"
SILENT_UPSTREAM = "192.0.2.54"
UPSTREAM_TIMEOUT = 2.0  # the resolver's stated per-upstream timeout in these tests
FRONT = "f" * 64  # network ids
BACK = "b" * 64
MANY = 40  # endpoints sharing the alias "many": their A records exceed 512 bytes


def start_upstream(outside: Namespace, address: str, *arguments: str) -> subprocess.Popen:
    """Run tests.support.dnsupstream in the outside namespace and wait until it listens."""
    environment = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    process = outside.popen(
        sys.executable, "-m", "tests.support.dnsupstream", "--address", address, *arguments,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO_ROOT,
        env=environment,
    )  # fmt: skip
    ready, _, _ = select.select([process.stdout], [], [], 10)
    if not ready or process.stdout.readline().strip() != "ready":
        process.kill()
        raise AssertionError(f"test upstream {address} did not start: {process.stderr.read()}")
    return process


@dataclass
class Dig:
    status: str
    flags: list[str]
    answers: list[str]  # the data of each answer record
    output: str


def dig(container: Namespace, *arguments: str, timeout: int = 3) -> Dig:
    """Ask 127.0.0.11 with dig inside ``container``."""
    completed = container.run(
        "dig", "@127.0.0.11", f"+time={timeout}", "+tries=1", *arguments,
        check=False, timeout=30,
    )  # fmt: skip
    output = completed.stdout
    status = re.search(r"status: (\w+)", output)
    flags = re.search(r"flags: ([a-z ]*);", output)
    answers = []
    in_answer = False
    for line in output.splitlines():
        if line.startswith(";; ANSWER SECTION"):
            in_answer = True
        elif in_answer and (not line.strip() or line.startswith(";;")):
            in_answer = False
        elif in_answer:
            answers.append(line.split()[-1])
    return Dig(
        status=status.group(1) if status else f"no answer (exit {completed.returncode})",
        flags=flags.group(1).split() if flags else [],
        answers=answers,
        output=output + completed.stderr,
    )


@dataclass
class World:
    host: HostWithOutside
    front: Namespace  # container "alpha" on FRONT
    back: Namespace  # container "beta" on BACK
    index: NameIndex
    resolver: Resolver
    server: DnsServer
    upstream_log: Path  # the source address of every query the good upstream received
    scopes: dict[str, SandboxScope] = field(default_factory=dict)

    def serve(self, container_id: str, container: Namespace, *network_ids: str) -> None:
        self.scopes[container_id] = SandboxScope(network_ids=frozenset(network_ids))
        self.server.add_sandbox(container_id, container.path, lambda: self.scopes[container_id])


@pytest.fixture
def world(host: HostWithOutside, netns_pool: NamespacePool, tmp_path: Path):
    for address in (GOOD_UPSTREAM, SILENT_UPSTREAM):
        host.outside.run("ip", "addr", "add", f"{address}/24", "dev", "eth0")
    upstream_log = tmp_path / "upstream-sources"
    start_upstream(
        host.outside, GOOD_UPSTREAM, "--record", "example.test=198.51.100.7",
        "--many", f"big.test={MANY}", "--log", str(upstream_log),
    )  # fmt: skip
    start_upstream(host.outside, SILENT_UPSTREAM, "--silent")

    index = NameIndex()
    index.add(FRONT, "endpoint-alpha", ["alpha"], "10.1.0.2", network_name="front",
              ptr_name="alpha.front")  # fmt: skip
    index.add(FRONT, "endpoint-web", ["web", "www"], "10.1.0.3", network_name="front",
              ptr_name="web.front")  # fmt: skip
    for number in range(3):
        index.add(
            FRONT, f"endpoint-api-{number}", [f"api-{number}", "api"], f"10.1.0.{10 + number}"
        )
    for number in range(MANY):
        index.add(
            FRONT, f"endpoint-many-{number}", [f"many-{number}", "many"], f"10.1.1.{number + 1}"
        )
    index.add(BACK, "endpoint-beta", ["beta"], "10.2.0.2", network_name="back")

    resolver = Resolver(index, [Upstream.parse(GOOD_UPSTREAM)], timeout=UPSTREAM_TIMEOUT)
    server = DnsServer(resolver)
    server.start(host.host.path)  # the loop thread, and so forwarding, lives in "host"
    try:
        world = World(
            host=host,
            front=netns_pool.create("ctr-front"),
            back=netns_pool.create("ctr-back"),
            index=index,
            resolver=resolver,
            server=server,
            upstream_log=upstream_log,
        )
        world.serve("container-alpha", world.front, FRONT)
        world.serve("container-beta", world.back, BACK)
        yield world
    finally:
        server.stop()


def test_container_names_resolve_with_dig_over_udp_and_tcp(world: World) -> None:
    for transport in ("+notcp", "+tcp"):
        answer = dig(world.front, "web", transport)
        assert answer.status == "NOERROR", answer.output
        assert answer.answers == ["10.1.0.3"], answer.output

    assert dig(world.front, "WWW.").answers == ["10.1.0.3"]
    assert dig(world.back, "beta", "+tcp").answers == ["10.2.0.2"]

    # Several queries over one TCP connection.
    several = dig(world.front, "+tcp", "+keepopen", "web", "alpha", "example.test")
    assert several.answers == ["10.1.0.3", "10.1.0.2", "198.51.100.7"], several.output


def test_busybox_nslookup_finds_a_container(world: World) -> None:
    completed = world.front.run(
        "busybox", "nslookup", "-type=a", "web", "127.0.0.11", check=False, timeout=30
    )

    assert "Address: 10.1.0.3" in completed.stdout, completed.stdout + completed.stderr


def test_aaaa_of_a_container_is_nodata(world: World) -> None:
    answer = dig(world.front, "AAAA", "web")

    assert answer.status == "NOERROR"
    assert answer.answers == []
    assert "ANSWER: 0" in answer.output


def test_ptr_of_a_container_address(world: World) -> None:
    answer = dig(world.front, "-x", "10.1.0.3")

    assert answer.answers == ["web.front."], answer.output


def test_an_alias_gives_all_addresses_in_changing_order(world: World) -> None:
    orders = {tuple(dig(world.front, "api").answers) for _ in range(10)}

    assert all(sorted(order) == ["10.1.0.10", "10.1.0.11", "10.1.0.12"] for order in orders)
    assert len(orders) > 1, orders


def test_names_are_scoped_to_shared_networks(world: World) -> None:
    # Unknown locally, so forwarded; the test upstream does not know them either.
    assert dig(world.back, "web").status == "NXDOMAIN"
    assert dig(world.front, "beta").status == "NXDOMAIN"

    # A container on both networks sees both.
    world.scopes["container-alpha"] = SandboxScope(network_ids=frozenset({FRONT, BACK}))
    assert dig(world.front, "beta").answers == ["10.2.0.2"]


def test_names_qualified_by_a_shared_network_resolve(world: World) -> None:
    assert dig(world.front, "web.front").answers == ["10.1.0.3"]
    assert dig(world.front, "+tcp", "WWW.front.").answers == ["10.1.0.3"]
    assert dig(world.back, "beta.back").answers == ["10.2.0.2"]
    # Not a network alpha is on: forwarded, and the test upstream does not know it.
    assert dig(world.front, "beta.back").status == "NXDOMAIN"


def test_removal_is_nxdomain_at_once_and_reconnection_resolves_again(world: World) -> None:
    assert dig(world.front, "web").answers == ["10.1.0.3"]

    world.index.remove("endpoint-web")
    assert dig(world.front, "web").status == "NXDOMAIN"

    world.index.add(FRONT, "endpoint-web", ["web"], "10.1.0.30")
    assert dig(world.front, "web").answers == ["10.1.0.30"]


def test_other_names_are_forwarded_from_the_host_namespace(world: World) -> None:
    for transport in ("+notcp", "+tcp"):
        answer = dig(world.front, "example.test", transport)
        assert answer.status == "NOERROR", answer.output
        assert answer.answers == ["198.51.100.7"], answer.output

    assert dig(world.front, "nowhere.test").status == "NXDOMAIN"

    # Every forwarded query left from the host's uplink, none from a container (which has no
    # route at all besides lo).
    sources = world.upstream_log.read_text().split()
    assert len(sources) == 3
    assert set(sources) == {world.host.host_address}


def test_a_silent_upstream_ends_in_servfail_within_the_stated_time(world: World) -> None:
    world.resolver.set_upstreams([Upstream.parse(SILENT_UPSTREAM)])

    started = time.monotonic()
    answer = dig(world.front, "example.test", timeout=10)
    elapsed = time.monotonic() - started

    assert answer.status == "SERVFAIL", answer.output
    assert UPSTREAM_TIMEOUT <= elapsed < UPSTREAM_TIMEOUT + 1.5


def test_after_a_silent_upstream_the_next_one_answers(world: World) -> None:
    world.resolver.set_upstreams([Upstream.parse(SILENT_UPSTREAM), Upstream.parse(GOOD_UPSTREAM)])

    started = time.monotonic()
    answer = dig(world.front, "example.test", timeout=10)
    elapsed = time.monotonic() - started

    assert answer.answers == ["198.51.100.7"], answer.output
    assert UPSTREAM_TIMEOUT <= elapsed < UPSTREAM_TIMEOUT + 1.5


def test_no_forwarding_for_a_container_on_internal_networks(world: World) -> None:
    world.scopes["container-alpha"] = SandboxScope(
        network_ids=frozenset({FRONT}), forwarding=False
    )

    started = time.monotonic()
    assert dig(world.front, "example.test").status == "SERVFAIL"
    assert time.monotonic() - started < 1.0
    assert dig(world.front, "web").answers == ["10.1.0.3"]


def test_large_answers_are_truncated_over_udp_and_whole_over_tcp(world: World) -> None:
    truncated = dig(world.front, "many", "+noedns", "+ignore")
    assert "tc" in truncated.flags, truncated.output
    assert 0 < len(truncated.answers) < MANY

    assert len(dig(world.front, "many", "+tcp").answers) == MANY
    # dig retries over TCP by itself after a truncated UDP answer.
    assert len(dig(world.front, "many", "+noedns").answers) == MANY
    # A large EDNS buffer fits everything in one datagram.
    assert len(dig(world.front, "many", "+bufsize=4096").answers) == MANY

    forwarded = dig(world.front, "big.test", "+noedns", "+ignore")
    assert "tc" in forwarded.flags, forwarded.output
    assert len(dig(world.front, "big.test", "+tcp").answers) == MANY


def test_listeners_live_only_in_the_containers(world: World) -> None:
    for container in (world.front, world.back):
        listening = container.run("ss", "-Hlnu").stdout + container.run("ss", "-Hlnt").stdout
        assert "127.0.0.11:53" in listening

    host_listening = world.host.host.run("ss", "-Hlntu").stdout
    assert ":53 " not in host_listening, host_listening


def test_removing_a_sandbox_closes_its_listeners(world: World) -> None:
    assert world.server.remove_sandbox("container-beta") is True
    assert world.server.remove_sandbox("container-beta") is False

    listening = world.back.run("ss", "-Hlntu").stdout
    assert "127.0.0.11:53" not in listening
    assert dig(world.back, "beta", timeout=1).status.startswith("no answer")
    assert dig(world.front, "web").answers == ["10.1.0.3"]  # the other one is still served


def test_serving_a_container_again_replaces_its_sockets(world: World) -> None:
    world.serve("container-beta", world.back, BACK)

    assert dig(world.back, "beta").answers == ["10.2.0.2"]
    assert world.server.sandbox_ids().count("container-beta") == 1


def test_listener_needs_lo_up(netns_pool: NamespacePool) -> None:
    # A fresh namespace, lo still down: binding 127.0.0.11 would succeed there, yet nothing
    # could reach it, so the listener is refused. (The pool's namespaces come with lo up.)
    name = unique_name("nsnt-ctr-fresh-")
    run(["ip", "netns", "add", name])
    created_names.add(name)
    container = Namespace(name, pool=netns_pool)
    netns_pool.namespaces.append(container)

    with pytest.raises(Unavailable, match="is lo up"):
        open_listener_sockets(container.path)

    container.run("ip", "link", "set", "lo", "up")
    udp_socket, tcp_socket = open_listener_sockets(container.path)
    try:
        assert udp_socket.getsockname() == ("127.0.0.11", 53)
        assert tcp_socket.getsockname() == ("127.0.0.11", 53)
    finally:
        udp_socket.close()
        tcp_socket.close()


def test_a_sustained_stream_of_queries_loses_none(world: World) -> None:
    """3,000 queries, 32 always in flight: each is answered with the record, none is lost.

    How many answers a second is the benchmark's question (bench/, "DNS answers per second"),
    never a test's. A query counts as lost after a resolver's default timeout (5 s); the time
    limit only bounds a hang.
    """
    result = measure_query_rate(
        world.front.path, "web", count=3000, window=32, query_timeout=5, time_limit=120
    )

    assert result.lossless, str(result)
    assert result.sent == 3000, str(result)
