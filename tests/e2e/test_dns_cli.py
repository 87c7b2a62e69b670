"""Embedded DNS through the real daemon and CLI (issue 4), asked from inside containers.

Two user networks (``front``, ``back``), containers with names and ``--network-alias``, one
connected to both with ``network connect --alias``; ``dig`` and busybox ``nslookup`` run inside
them with ``nsnet exec``. The daemon's upstream (``--dns 192.0.2.53``, the harness's default) is
a test server in the outside namespace (tests/support/dnsupstream.py); 192.0.2.54 is one that
never answers. The machine's own resolvers are never asked, its /etc/resolv.conf and /etc/hosts
never change, and nothing listens on port 53 in the host namespace.
"""

import re
import select
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.daemon import TEST_DNS_SERVER, Daemon
from tests.support.netns import Namespace
from tests.support.topology import HostWithOutside

REPO_ROOT = Path(__file__).resolve().parents[2]
SILENT_UPSTREAM = "192.0.2.54"
UPSTREAM_TIMEOUT = 2.0  # the resolver's stated timeout per upstream (nsnet.dns.resolver)
EXAMPLE_ADDRESS = "198.51.100.7"
MANY = 40  # A records of big.test upstream: more than 512 bytes
HOST_FILES = (Path("/etc/resolv.conf"), Path("/etc/hosts"))


def start_upstream(outside: Namespace, address: str, *arguments: str) -> subprocess.Popen:
    """tests.support.dnsupstream in the outside namespace, once it listens."""
    process = outside.popen(
        sys.executable, "-m", "tests.support.dnsupstream", "--address", address, *arguments,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO_ROOT,
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
    answers: list[str]
    output: str


def parse_dig(output: str) -> Dig:
    status = re.search(r"status: (\w+)", output)
    flags = re.search(r"flags: ([a-z ]*);", output)
    answers, in_answer = [], False
    for line in output.splitlines():
        if line.startswith(";; ANSWER SECTION"):
            in_answer = True
        elif in_answer and (not line.strip() or line.startswith(";;")):
            in_answer = False
        elif in_answer:
            answers.append(line.split()[-1])
    return Dig(
        status=status.group(1) if status else "no answer",
        flags=flags.group(1).split() if flags else [],
        answers=answers,
        output=output,
    )


def dig(daemon: Daemon, container: str, *arguments: str, timeout: int = 3) -> Dig:
    """``dig`` inside ``container``, asking the server its /etc/resolv.conf names."""
    completed = daemon.cli(
        "exec", container, "--", "dig", f"+time={timeout}", "+tries=1", *arguments, check=False
    )
    return parse_dig(completed.stdout + completed.stderr)


def addresses(daemon: Daemon, container: str, network: str) -> str:
    settings = daemon.api("GET", f"/containers/{container}/json").json()["NetworkSettings"]
    return settings["Networks"][network]["IPAddress"]


@dataclass
class World:
    daemon: Daemon
    host: HostWithOutside
    upstream_log: Path
    upstream_names: Path  # the name of every query the upstream received, one a line
    address: dict[str, str]  # "name@network" -> address


@pytest.fixture
def world(daemon: Daemon, host: HostWithOutside, tmp_path: Path):
    host_files = {path: path.read_bytes() for path in HOST_FILES}
    for address in (TEST_DNS_SERVER, SILENT_UPSTREAM):
        host.outside.run("ip", "addr", "add", f"{address}/24", "dev", "eth0")
    upstream_log = tmp_path / "upstream-sources"
    upstream_names = tmp_path / "upstream-names"
    start_upstream(
        host.outside, TEST_DNS_SERVER, "--record", f"example.test={EXAMPLE_ADDRESS}",
        "--many", f"big.test={MANY}", "--log", str(upstream_log),
        "--log-names", str(upstream_names),
    )  # fmt: skip
    start_upstream(host.outside, SILENT_UPSTREAM, "--silent")

    daemon.cli("network", "create", "--subnet", "10.88.0.0/24", "front")
    daemon.cli("network", "create", "--subnet", "10.89.0.0/24", "back")
    daemon.cli("network", "create", "--subnet", "10.87.0.0/24", "--internal", "sealed")
    detached = [
        ("alpha", "front", ["--network-alias", "web"]),
        ("beta", "front", ["--network-alias", "web"]),
        ("gamma", "back", ["--network-alias", "db"]),
        ("delta", "front", []),
        ("hermit", "sealed", []),
        ("plain1", "bridge", []),
        ("plain2", "bridge", []),
    ]
    for name, network, flags in detached:
        daemon.cli("run", "-d", "--name", name, "--network", network, *flags, "--",
                   "sleep", "600")  # fmt: skip
    daemon.cli("network", "connect", "--alias", "cache", "back", "delta")
    address = {
        f"{name}@{network}": addresses(daemon, name, network) for name, network, _ in detached
    }
    address["delta@back"] = addresses(daemon, "delta", "back")

    yield World(daemon, host, upstream_log, upstream_names, address)

    names = daemon.cli("ps", "-aq").stdout.split()
    if names:
        daemon.cli("rm", "-f", *names)
    for path, content in host_files.items():
        assert path.read_bytes() == content, f"the machine's {path} changed"


def test_names_and_aliases_resolve_within_shared_networks(world: World) -> None:
    daemon, address = world.daemon, world.address

    assert dig(daemon, "alpha", "beta").answers == [address["beta@front"]]
    assert dig(daemon, "alpha", "delta").answers == [address["delta@front"]]
    assert sorted(dig(daemon, "alpha", "web").answers) == sorted(
        [address["alpha@front"], address["beta@front"]]
    )
    # Scoped: gamma is on back only, so alpha (front) does not see it, nor back's aliases.
    for name in ("gamma", "db", "cache"):
        unseen = dig(daemon, "alpha", name)
        assert unseen.status == "NXDOMAIN" and unseen.answers == [], (name, unseen.output)
    # delta is on both: it sees both sides; gamma sees delta by its back address and alias.
    assert dig(daemon, "delta", "gamma").answers == [address["gamma@back"]]
    assert dig(daemon, "delta", "db").answers == [address["gamma@back"]]
    assert dig(daemon, "gamma", "delta").answers == [address["delta@back"]]
    assert dig(daemon, "gamma", "cache").answers == [address["delta@back"]]
    assert dig(daemon, "gamma", "beta").status == "NXDOMAIN"

    # A real resolver client through /etc/resolv.conf, and TCP.
    found = daemon.cli("exec", "alpha", "--", "busybox", "nslookup", "beta").stdout
    assert address["beta@front"] in found, found
    over_tcp = dig(daemon, "alpha", "+tcp", "beta")
    assert over_tcp.answers == [address["beta@front"]], over_tcp.output

    # PTR for a container's address; AAAA of a name is NODATA until IPv6 exists.
    reverse = dig(daemon, "alpha", "-x", address["beta@front"])
    assert reverse.answers == ["beta.front."], reverse.output
    no_ipv6 = dig(daemon, "alpha", "AAAA", "beta")
    assert (no_ipv6.status, no_ipv6.answers) == ("NOERROR", []), no_ipv6.output


def getent(daemon: Daemon, container: str, name: str) -> list[str]:
    """The addresses glibc's resolver (``getent ahostsv4``) finds for ``name`` in a container."""
    completed = daemon.cli("exec", container, "--", "getent", "ahostsv4", name, check=False)
    return sorted({line.split()[0] for line in completed.stdout.splitlines()})


def asked_upstream(world: World) -> list[str]:
    names = world.upstream_names
    return names.read_text().split() if names.exists() else []


def test_names_qualified_by_a_network_resolve_within_shared_networks(world: World) -> None:
    """Regression: ``getent hosts web.backend`` failed and dig got SERVFAIL for it, although
    ``dig -x`` answered ``other.backend.``; Docker answers ``name.network`` and
    ``alias.network`` on the asker's networks."""
    daemon, address = world.daemon, world.address

    # glibc (getent), as the tester saw it, and dig, over UDP and TCP.
    hosts = daemon.cli("exec", "alpha", "--", "getent", "hosts", "beta.front").stdout
    assert hosts.split()[:2] == [address["beta@front"], "beta.front"], hosts
    assert getent(daemon, "alpha", "beta.front") == [address["beta@front"]]
    assert dig(daemon, "alpha", "beta.front").answers == [address["beta@front"]]
    assert dig(daemon, "alpha", "+tcp", "BETA.Front.").answers == [address["beta@front"]]
    # Aliases, from --network-alias and from network connect --alias.
    both = sorted([address["alpha@front"], address["beta@front"]])
    assert sorted(dig(daemon, "delta", "web.front").answers) == both
    assert getent(daemon, "gamma", "cache.back") == [address["delta@back"]]
    assert dig(daemon, "delta", "db.back").answers == [address["gamma@back"]]
    # A container on two networks: the name of each network picks that network's address.
    assert dig(daemon, "gamma", "delta.back").answers == [address["delta@back"]]
    assert dig(daemon, "delta", "delta.front").answers == [address["delta@front"]]
    # busybox's resolver too.
    found = daemon.cli("exec", "delta", "--", "busybox", "nslookup", "gamma.back").stdout
    assert address["gamma@back"] in found, found

    # Scoped as bare names are: alpha is not on back, gamma not on front.
    for container, name in (
        ("alpha", "gamma.back"),
        ("alpha", "cache.back"),
        ("gamma", "delta.front"),
    ):
        unseen = dig(daemon, container, name)
        assert (unseen.status, unseen.answers) == ("NXDOMAIN", []), (name, unseen.output)
    # AAAA stays NODATA, and the reverse name resolves forward again.
    no_ipv6 = dig(daemon, "alpha", "AAAA", "beta.front")
    assert (no_ipv6.status, no_ipv6.answers) == ("NOERROR", []), no_ipv6.output
    (reverse,) = dig(daemon, "alpha", "-x", address["beta@front"]).answers
    assert dig(daemon, "alpha", reverse).answers == [address["beta@front"]]

    # None of these names left the host; the out-of-scope ones were asked upstream.
    assert sorted(set(asked_upstream(world))) == ["cache.back.", "delta.front.", "gamma.back."]


def test_qualified_names_with_a_search_domain_and_ndots(world: World) -> None:
    """With ``ndots:3`` glibc asks ``gamma.back.test`` first: not ours, so it is forwarded, the
    upstream says NXDOMAIN and the name as given is answered locally; foreign names are still
    forwarded."""
    daemon, address = world.daemon, world.address
    daemon.cli("run", "-d", "--name", "searcher", "--network", "back", "--dns-search", "test",
               "--dns-option", "ndots:3", "--", "sleep", "600")  # fmt: skip

    assert getent(daemon, "searcher", "gamma.back") == [address["gamma@back"]]
    assert getent(daemon, "searcher", "gamma") == [address["gamma@back"]]
    assert getent(daemon, "searcher", "example.test") == [EXAMPLE_ADDRESS]
    searched = daemon.cli("exec", "searcher", "--", "busybox", "nslookup", "db.back").stdout
    assert address["gamma@back"] in searched, searched

    asked = set(asked_upstream(world))
    assert {"gamma.back.test.", "example.test.test.", "example.test."} <= asked, asked
    assert not asked & {"gamma.back.", "gamma.", "db.back."}, asked


def test_an_alias_shared_by_two_containers_is_answered_in_turns(world: World) -> None:
    loop = "for i in $(seq 20); do dig +short +time=3 +tries=1 web | tr '\\n' ' '; echo; done"

    lines = world.daemon.cli("exec", "delta", "--", "sh", "-c", loop).stdout.splitlines()

    both = sorted([world.address["alpha@front"], world.address["beta@front"]])
    assert len(lines) == 20
    assert all(sorted(line.split()) == both for line in lines), lines
    assert len({line.split()[0] for line in lines}) == 2, lines  # the order changes


def test_removal_and_disconnection_stop_resolving_at_once(world: World) -> None:
    daemon, address = world.daemon, world.address

    daemon.cli("rm", "-f", "beta")
    gone = dig(daemon, "alpha", "beta")
    assert (gone.status, gone.answers) == ("NXDOMAIN", []), gone.output
    assert dig(daemon, "alpha", "web").answers == [address["alpha@front"]]

    daemon.cli("network", "disconnect", "back", "delta")
    for name in ("delta", "cache"):
        assert dig(daemon, "gamma", name).status == "NXDOMAIN", name
    assert dig(daemon, "delta", "gamma").status == "NXDOMAIN"  # nor the other way

    daemon.cli("network", "connect", "--alias", "store", "back", "delta")
    again = addresses(daemon, "delta", "back")
    assert dig(daemon, "gamma", "delta").answers == [again]
    assert dig(daemon, "gamma", "store").answers == [again]
    assert dig(daemon, "gamma", "cache").status == "NXDOMAIN"  # the old alias left with it


def test_a_stopped_container_stops_resolving_until_it_starts_again(world: World) -> None:
    daemon, address = world.daemon, world.address

    daemon.cli("stop", "-t", "1", "beta")
    assert dig(daemon, "alpha", "beta").status == "NXDOMAIN"
    assert dig(daemon, "alpha", "web").answers == [address["alpha@front"]]

    daemon.cli("start", "beta")
    assert dig(daemon, "alpha", "beta").answers == [address["beta@front"]]
    assert sorted(dig(daemon, "alpha", "web").answers) == sorted(
        [address["alpha@front"], address["beta@front"]]
    )


def test_other_names_are_forwarded_from_the_host_namespace(world: World) -> None:
    daemon = world.daemon

    forwarded = dig(daemon, "alpha", "example.test")
    assert forwarded.answers == [EXAMPLE_ADDRESS], forwarded.output
    # Asked from the daemon's host namespace (its uplink address), not from the container.
    assert world.upstream_log.read_text().split() == [world.host.host_address]
    unknown = dig(daemon, "alpha", "missing.example.test")
    assert unknown.status == "NXDOMAIN", unknown.output

    # Over 512 bytes: truncated over UDP (TC set), whole over TCP.
    cut = dig(daemon, "alpha", "+noedns", "+ignore", "big.test")
    assert "tc" in cut.flags and len(cut.answers) < MANY, cut.output
    whole = dig(daemon, "alpha", "+tcp", "big.test")
    assert len(whole.answers) == MANY, whole.output

    # The default bridge has no embedded server: the daemon's upstream is asked directly.
    direct = dig(daemon, "plain1", "example.test")
    assert direct.answers == [EXAMPLE_ADDRESS], direct.output

    # An --internal network gets no forwarding.
    asked = len(world.upstream_log.read_text().split())
    sealed = dig(daemon, "hermit", "example.test")
    assert (sealed.status, sealed.answers) == ("SERVFAIL", []), sealed.output
    assert len(world.upstream_log.read_text().split()) == asked


def test_an_upstream_that_never_answers_gives_servfail_in_time(world: World) -> None:
    daemon = world.daemon
    daemon.cli("run", "-d", "--name", "lost", "--network", "front", "--dns", SILENT_UPSTREAM,
               "--", "sleep", "600")  # fmt: skip

    started = time.monotonic()
    answer = dig(daemon, "lost", "example.test", timeout=10)
    elapsed = time.monotonic() - started

    assert answer.status == "SERVFAIL", answer.output
    # The stated timeout, plus the CLI's start-up and exec around dig.
    assert UPSTREAM_TIMEOUT <= elapsed < UPSTREAM_TIMEOUT + 4, elapsed
    # Local names still answer at once for that container.
    assert dig(daemon, "lost", "alpha").answers == [world.address["alpha@front"]]


def test_each_container_gets_its_own_resolv_conf_and_hosts(world: World) -> None:
    daemon = world.daemon

    resolv = daemon.cli("exec", "alpha", "--", "cat", "/etc/resolv.conf").stdout
    assert "nameserver 127.0.0.11" in resolv.splitlines(), resolv
    assert "ndots:0" in resolv, resolv
    assert not any(
        line.startswith("nameserver") and "127.0.0.11" not in line for line in resolv.splitlines()
    ), resolv
    hosts = daemon.cli("exec", "alpha", "--", "cat", "/etc/hosts").stdout
    own = [line.split() for line in hosts.splitlines() if world.address["alpha@front"] in line]
    assert own and "alpha" in own[0], hosts
    assert "localhost" in hosts

    daemon.cli(
        "run", "-d", "--name", "tuned", "--network", "front", "--hostname", "tuned-host",
        "--dns", TEST_DNS_SERVER, "--dns-search", "test", "--dns-option", "timeout:1",
        "--add-host", "printer:203.0.113.9", "--", "sleep", "600",
    )  # fmt: skip
    resolv = daemon.cli("exec", "tuned", "--", "cat", "/etc/resolv.conf").stdout.splitlines()
    assert "nameserver 127.0.0.11" in resolv  # --dns becomes the embedded server's upstream
    assert "search test" in resolv
    options = next(line for line in resolv if line.startswith("options")).split()[1:]
    assert "timeout:1" in options and "ndots:0" in options, resolv
    hosts = daemon.cli("exec", "tuned", "--", "cat", "/etc/hosts").stdout
    assert re.search(r"^203\.0\.113\.9\s+printer$", hosts, re.MULTILINE), hosts
    own = addresses(daemon, "tuned", "front")
    assert re.search(rf"^{re.escape(own)}\s+tuned-host tuned$", hosts, re.MULTILINE), hosts
    # The search domain is used: "example" becomes example.test.
    searched = daemon.cli("exec", "tuned", "--", "busybox", "nslookup", "example").stdout
    assert EXAMPLE_ADDRESS in searched, searched
    host_config = daemon.api("GET", "/containers/tuned/json").json()["HostConfig"]
    assert host_config["Dns"] == [TEST_DNS_SERVER]
    assert host_config["DnsSearch"] == ["test"]
    assert host_config["DnsOptions"] == ["timeout:1"]
    assert host_config["ExtraHosts"] == ["printer:203.0.113.9"]

    # The default bridge: the daemon's upstream itself, and no name resolution.
    resolv = daemon.cli("exec", "plain1", "--", "cat", "/etc/resolv.conf").stdout.splitlines()
    assert f"nameserver {TEST_DNS_SERVER}" in resolv and "nameserver 127.0.0.11" not in resolv
    unresolved = daemon.cli("exec", "plain1", "--", "busybox", "nslookup", "plain2", check=False)
    assert world.address["plain2@bridge"] not in unresolved.stdout, unresolved.stdout
    no_server = dig(daemon, "plain1", "@127.0.0.11", "plain2", timeout=1)
    assert no_server.answers == [] and no_server.status == "no answer", no_server.output


def test_a_running_process_sees_its_files_change_in_place_on_connect(
    world: World, tmp_path: Path
) -> None:
    """The files are bind-mounted once, in the container's mount namespace: a process started
    with ``run -d`` before a ``network connect`` reads the new address and server there."""
    daemon = world.daemon
    trigger, seen = tmp_path / "trigger", tmp_path / "seen"
    script = (
        f"while :; do if [ -e {trigger} ]; then cat /etc/hosts /etc/resolv.conf > {seen}.new"
        f" && mv {seen}.new {seen} && rm {trigger}; fi; sleep 0.05; done"
    )
    daemon.cli("run", "-d", "--name", "reader", "--", "sh", "-c", script)

    def read_again() -> str:
        seen.unlink(missing_ok=True)
        trigger.touch()
        deadline = time.monotonic() + 10
        while not seen.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        return seen.read_text()

    before = read_again()
    assert "nameserver 127.0.0.11" not in before.splitlines(), before
    daemon.cli("network", "connect", "front", "reader")
    address = addresses(daemon, "reader", "front")

    after = read_again()
    assert re.search(rf"^{re.escape(address)}\s+\w+ reader$", after, re.MULTILINE), after
    assert "nameserver 127.0.0.11" in after.splitlines(), after
    assert address not in before


def test_nothing_listens_on_port_53_in_the_host_namespace(world: World) -> None:
    listening = world.daemon.exec_in_host("ss", "-H", "-lntu").stdout
    ports = [line.split()[4].rsplit(":", 1)[1] for line in listening.splitlines()]
    assert "53" not in ports, listening
    # ...while each container on a user network has its own listener at 127.0.0.11:53.
    inside = world.daemon.cli("exec", "alpha", "--", "ss", "-H", "-lntu").stdout
    assert "127.0.0.11:53" in inside, inside
