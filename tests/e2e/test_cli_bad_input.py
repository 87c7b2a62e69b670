"""Bad input through the CLI: a non-zero exit, a message naming what was wrong, no change.

Every refusal of issue 2, point 8, is tried against a daemon holding a user network and
containers in every network mode; a snapshot of everything the daemon owns (links, addresses
and routes in the host namespace, the firewall, namespace files and mounts under the root, and
``network ls`` / ``ps -a`` / inspect as the CLI shows them) must be the same after each.
"""

import json
import subprocess
from pathlib import Path

import pytest

from tests.support.cleanup import mounts_under
from tests.support.daemon import Daemon, program_argv


def host_links(daemon: Daemon) -> list[tuple]:
    entries = json.loads(daemon.exec_in_host("ip", "-d", "-j", "link", "show").stdout)
    return sorted(
        (
            entry["ifname"],
            entry.get("master", ""),
            entry.get("linkinfo", {}).get("info_kind", ""),
            entry.get("address", ""),
        )
        for entry in entries
    )


def host_addresses(daemon: Daemon) -> list[str]:
    # IPv4 only: the kernel adds IPv6 link-local addresses on its own, a while after a link is up.
    entries = json.loads(daemon.exec_in_host("ip", "-4", "-j", "address", "show").stdout)
    return sorted(
        f"{entry['ifname']} {address['local']}/{address['prefixlen']}"
        for entry in entries
        for address in entry.get("addr_info", [])
    )


def host_routes(daemon: Daemon) -> list[str]:
    routes = daemon.exec_in_host("ip", "-4", "route", "show", "table", "all").stdout
    return sorted(routes.splitlines())


def containers(daemon: Daemon) -> list[dict]:
    """``ps -a`` as JSON, without the status text (it counts seconds)."""
    listed = daemon.api("GET", "/containers/json?all=1").json()
    for entry in listed:
        entry.pop("Status")
    return listed


def ruleset(daemon: Daemon) -> list[dict]:
    """The host's whole nftables ruleset, each set's elements sorted, handles left out.

    A set keeps no order: elements removed and added again may be listed in another one.
    """
    listing = json.loads(daemon.exec_in_host("nft", "-j", "list", "ruleset").stdout)["nftables"]
    for item in listing:
        for body in item.values():
            if isinstance(body, dict):
                body.pop("handle", None)
                if "elem" in body:
                    body["elem"] = sorted(body["elem"], key=json.dumps)
    return listing


def snapshot(daemon: Daemon) -> dict:
    """Everything a refused or rolled-back operation must leave as it was."""
    namespace_dirs = (daemon.root / "run" / "netns", daemon.root / "run" / "mntns")
    return {
        "links": host_links(daemon),
        "addresses": host_addresses(daemon),
        "routes": host_routes(daemon),
        "firewall": ruleset(daemon),
        "namespace files": sorted(
            path.name for directory in namespace_dirs for path in directory.iterdir()
        ),
        "mounts": sorted(mount.mount_point for mount in mounts_under(daemon.root)),
        "network ls": daemon.cli("network", "ls", "--no-trunc").stdout,
        "ps -a": daemon.cli("ps", "-a", "-q", "--no-trunc").stdout,
        "containers": containers(daemon),
        "networks": daemon.api("GET", "/networks").json(),
        "endpoints": {
            entry["Name"]: entry["Containers"]
            for entry in (
                daemon.api("GET", f"/networks/{network['Id']}").json()
                for network in daemon.api("GET", "/networks").json()
            )
        },
    }


def assert_unchanged(before: dict, after: dict, what: str) -> None:
    changed = [key for key in before if before[key] != after[key]]
    assert not changed, f"{what} changed {changed}:\n" + "\n".join(
        f"{key}:\n  before {before[key]!r}\n  after  {after[key]!r}" for key in changed
    )


@pytest.fixture
def populated(daemon: Daemon) -> Daemon:
    """A user network and containers in every network mode."""
    daemon.cli("network", "create", "--subnet", "10.80.0.0/24", "front")
    daemon.cli("run", "-d", "--name", "c1", "--network", "front", "--", "sleep", "600")
    daemon.cli("run", "-d", "--name", "cb", "--", "sleep", "600")
    daemon.cli("run", "-d", "--name", "chost", "--network", "host", "--", "sleep", "600")
    daemon.cli("run", "-d", "--name", "cnone", "--network", "none", "--", "sleep", "600")
    daemon.cli("run", "-d", "--name", "cshare", "--network", "container:c1", "--",
               "sleep", "600")  # fmt: skip
    daemon.cli("create", "--name", "idle", "--", "true")
    yield daemon
    daemon.cli("rm", "-f", "cshare", "c1", "cb", "chost", "cnone", "idle")


# (what, CLI arguments, what the message must name)
BAD_INPUT = [
    ("unknown network: inspect", ["network", "inspect", "nowhere"], "nowhere"),
    ("unknown network: rm", ["network", "rm", "nowhere"], "nowhere"),
    ("unknown network: connect", ["network", "connect", "nowhere", "c1"], "nowhere"),
    ("unknown network: disconnect", ["network", "disconnect", "nowhere", "c1"], "nowhere"),
    ("unknown network: run", ["run", "-d", "--network", "nowhere", "--", "sleep", "9"],
     "nowhere"),
    ("unknown container: connect", ["network", "connect", "front", "ghost"], "ghost"),
    ("unknown container: disconnect", ["network", "disconnect", "front", "ghost"], "ghost"),
    ("unknown container: rm", ["rm", "ghost"], "ghost"),
    ("unknown container: stop", ["stop", "ghost"], "ghost"),
    ("unknown container: start", ["start", "ghost"], "ghost"),
    ("unknown container: exec", ["exec", "ghost", "--", "true"], "ghost"),
    ("unknown container: inspect", ["inspect", "ghost"], "ghost"),
    ("unknown container: container mode", ["run", "--network", "container:ghost", "--", "true"],
     "ghost"),
    ("duplicate network name", ["network", "create", "front"], "front"),
    ("duplicate container name: run", ["run", "-d", "--name", "c1", "--", "sleep", "9"], "c1"),
    ("duplicate container name: create", ["create", "--name", "idle", "--", "true"], "idle"),
    ("overlapping subnet", ["network", "create", "--subnet", "10.80.0.0/25", "over"],
     "10.80.0.0/24"),
    ("overlapping default bridge", ["network", "create", "--subnet", "172.17.5.0/24", "over"],
     "172.17.0.0/16"),
    ("invalid CIDR: prefix", ["network", "create", "--subnet", "10.0.0.0/33", "bad"],
     "10.0.0.0/33"),
    ("invalid CIDR: text", ["network", "create", "--subnet", "tennet", "bad"], "tennet"),
    # Docker 20.10 takes such a subnet and masks it (its inspect keeps "10.90.0.1/24"); Docker
    # 25 refuses it (moby#45759), as nsnet does.
    ("invalid CIDR: host bits", ["network", "create", "--subnet", "10.90.0.1/24", "bad"],
     "10.90.0.1/24 has host bits set"),
    # Python's ip_network reads a bare address as a /32; Docker refuses it.
    ("invalid CIDR: no prefix", ["network", "create", "--subnet", "10.90.0.0", "bad"],
     "'10.90.0.0': invalid CIDR address (no /prefix)"),
    ("invalid ip-range", ["network", "create", "--subnet", "10.91.0.0/24", "--ip-range",
                          "10.92.0.0/25", "bad"], "10.92.0.0/25"),
    ("invalid ip-range: host bits", ["network", "create", "--subnet", "10.91.0.0/24",
                                     "--ip-range", "10.91.0.129/25", "bad"],
     "10.91.0.129/25 has host bits set"),
    ("invalid IP: run", ["run", "--network", "front", "--ip", "10.80.0.300", "--", "true"],
     "10.80.0.300"),
    ("invalid IP: connect", ["network", "connect", "--ip", "ten", "front", "cb"], "ten"),
    ("IP outside the subnet", ["run", "--network", "front", "--ip", "10.99.0.5", "--", "true"],
     "10.99.0.5"),
    ("IP in use", ["run", "--network", "front", "--ip", "10.80.0.2", "--", "true"],
     "10.80.0.2"),
    ("IP on the default bridge", ["run", "--ip", "172.17.0.99", "--", "true"],
     "user defined networks"),
    ("invalid MAC", ["run", "--mac-address", "02:42:zz:00:00:01", "--", "true"],
     "02:42:zz:00:00:01"),
    ("multicast MAC", ["run", "--mac-address", "01:00:5e:00:00:01", "--", "true"],
     "01:00:5e:00:00:01"),
    ("all-zero MAC", ["run", "--mac-address", "00:00:00:00:00:00", "--", "true"],
     "00:00:00:00:00:00"),
    ("alias on the default bridge", ["run", "--network-alias", "www", "--", "true"],
     "user defined networks"),
    ("invalid alias: run", ["run", "--network", "front", "--network-alias", "bad alias!", "--",
                            "true"], "invalid alias 'bad alias!'"),
    ("alias ending in a newline: connect", ["network", "connect", "--alias", "al\n", "front",
                                            "cb"], "invalid alias 'al\n'"),
    ("network name ending in a newline", ["network", "create", "nn\n"], "names must match"),
    ("container name ending in a newline", ["run", "-d", "--name", "c9\n", "--", "sleep", "9"],
     "c9"),
    ("hostname ending in a newline", ["run", "--hostname", "h\n", "--", "true"],
     "invalid hostname"),
    ("publish on an address the host lacks", ["run", "-d", "-p", "192.0.2.99:8090:80", "--",
                                              "sleep", "9"], "192.0.2.99 is not an address"),
    ("--dns in host mode", ["run", "--network", "host", "--dns", "192.0.2.53", "--", "true"],
     "network mode 'host'"),
    ("--add-host in host mode", ["run", "--network", "host", "--add-host", "db:192.0.2.9", "--",
                                 "true"], "network mode 'host'"),
    ("--dns in container mode", ["run", "--network", "container:c1", "--dns", "192.0.2.53", "--",
                                 "true"], "conflicting options: dns and the network mode"),
    ("loopback subnet", ["network", "create", "--subnet", "127.0.0.0/24", "bad"], "loopback"),
    ("multicast subnet", ["network", "create", "--subnet", "224.0.0.0/24", "bad"],
     "multicast"),
    ("icc that is no boolean", ["network", "create", "-o",
                                "com.docker.network.bridge.enable_icc=nah", "bad"], "'nah'"),
    ("masquerade that is no boolean", ["network", "create", "-o",
     "com.docker.network.bridge.enable_ip_masquerade=maybe", "bad"], "'maybe'"),
    ("host binding that is no address", ["network", "create", "-o",
     "com.docker.network.bridge.host_binding_ipv4=notip", "bad"], "'notip'"),
    ("bridge name with a slash", ["network", "create", "-o",
                                  "com.docker.network.bridge.name=a/b", "bad"], "'a/b'"),
    ("invalid --aux-address", ["network", "create", "--subnet", "10.93.0.0/24",
                               "--aux-address", "r=10.94.0.1", "bad"], "10.94.0.1"),
    ("gateway outside the subnet", ["network", "create", "--subnet", "10.95.0.0/24",
                                    "--gateway", "10.96.0.1", "bad"], "10.96.0.1"),
    ("gateway that is no address", ["network", "create", "--subnet", "10.95.0.0/24",
                                    "--gateway", "gw", "bad"], "gw"),
    ("invalid --dns", ["run", "--dns", "resolver", "--", "true"], "resolver"),
    ("invalid --add-host", ["run", "--add-host", "db:nowhere", "--", "true"], "nowhere"),
    ("connect a none-mode container", ["network", "connect", "front", "cnone"], "none"),
    ("connect a host-mode container", ["network", "connect", "front", "chost"], "host"),
    ("connect a container-mode container", ["network", "connect", "front", "cshare"],
     "sharing network namespace"),
    ("connect to the host network", ["network", "connect", "host", "c1"], "host"),
    ("connect to the none network", ["network", "connect", "none", "c1"], "none"),
    ("connect twice", ["network", "connect", "front", "c1"], "c1"),
    ("disconnect when not connected", ["network", "disconnect", "front", "cb"], "cb"),
    ("rm bridge", ["network", "rm", "bridge"], "bridge"),
    ("rm host", ["network", "rm", "host"], "host"),
    ("rm none", ["network", "rm", "none"], "none"),
    ("rm a network with endpoints", ["network", "rm", "front"], "c1"),
    ("rm a running container", ["rm", "c1"], "running"),
    ("rm a container whose namespace is shared", ["rm", "-f", "c1"], "cshare"),
    ("create a built-in network", ["network", "create", "bridge"], "bridge"),
    ("unknown driver", ["network", "create", "-d", "overlay9", "bad"], "overlay9"),
    ("IPv6", ["network", "create", "--ipv6", "six"], "IPv6 is not supported yet"),
    ("IPv6 subnet", ["network", "create", "--subnet", "fd00::/64", "six"],
     "IPv6 is not supported yet"),
    ("exec in a container that is not running", ["exec", "idle", "--", "true"], "not running"),
    ("container mode on a container that is not running",
     ["run", "--network", "container:idle", "--", "true"], "idle"),
]  # fmt: skip


def test_bad_input_is_refused_naming_it_and_changes_nothing(populated: Daemon) -> None:
    daemon = populated
    before = snapshot(daemon)
    problems = []

    for what, args, named in BAD_INPUT:
        result: subprocess.CompletedProcess = daemon.cli(*args, check=False)
        if result.returncode == 0:
            problems.append(f"{what}: `nsnet {' '.join(args)}` succeeded: {result.stdout!r}")
        elif named not in result.stderr:
            problems.append(f"{what}: the message does not name {named!r}: {result.stderr!r}")
        after = snapshot(daemon)
        if after != before:
            changed = [key for key in before if before[key] != after[key]]
            problems.append(f"{what}: changed {changed}")
            before = after  # report each change once

    assert not problems, "\n".join(problems)


def test_a_control_character_in_a_bridge_name_is_a_bad_request(populated: Daemon) -> None:
    daemon = populated
    before = snapshot(daemon)
    body = {"Name": "bad", "Options": {"com.docker.network.bridge.name": "x\u0000y"}}

    answer = daemon.api("POST", "/networks/create", body=body)

    assert answer.status == 400, answer.text
    assert "not a valid interface name" in answer.json()["message"]
    assert_unchanged(before, snapshot(daemon), "a bridge name with a NUL")


@pytest.mark.parametrize(
    ("command", "status", "reason"),
    [
        ("/no/such", 127, 'exec: "/no/such": no such file or directory'),
        ("{plain_file}", 126, 'exec: "{plain_file}": permission denied'),
    ],
)
def test_a_detached_command_that_cannot_start_fails_the_run(
    daemon: Daemon, tmp_path: Path, command: str, status: int, reason: str
) -> None:
    """Regression: run -d printed an id and exited 0; the container then showed Exited (127)."""
    plain_file = tmp_path / "not-a-program"
    plain_file.write_text("data\n")
    plain_file.chmod(0o644)
    command, reason = (text.format(plain_file=plain_file) for text in (command, reason))

    failed = daemon.cli("run", "-d", "--name", "broken", "--", command, check=False)

    assert failed.returncode == status, failed
    assert failed.stdout == ""
    assert reason in failed.stderr, failed.stderr
    # As Docker leaves it: created, never started.
    shown = json.loads(daemon.cli("inspect", "broken").stdout)[0]["State"]
    assert shown["Status"] == "created" and shown["Pid"] == 0, shown
    daemon.cli("rm", "broken")


def test_a_failed_run_leaves_no_container_and_its_name_free(populated: Daemon) -> None:
    daemon = populated
    before = snapshot(daemon)

    refused = daemon.cli("run", "--name", "fresh", "--network", "front", "--ip", "10.80.0.2",
                         "--", "true", check=False)  # fmt: skip

    assert refused.returncode == 125 and "10.80.0.2" in refused.stderr
    assert_unchanged(before, snapshot(daemon), "a refused run")
    daemon.cli("run", "--rm", "--name", "fresh", "--network", "front", "--", "true")
    assert_unchanged(before, snapshot(daemon), "run --rm")


def test_the_snapshot_sees_changes(populated: Daemon, tmp_path: Path) -> None:
    # The comparison would prove nothing if it could not tell a change.
    daemon = populated
    before = snapshot(daemon)

    daemon.cli("network", "create", "seen")

    after = snapshot(daemon)
    assert after["links"] != before["links"] and after["network ls"] != before["network ls"]
    assert after["routes"] != before["routes"] and after["firewall"] != before["firewall"]
    daemon.cli("network", "rm", "seen")
    assert_unchanged(before, snapshot(daemon), "create and rm of a network")


def test_a_second_daemon_in_the_same_host_refuses_to_start_and_leaves_nothing(
    daemon: Daemon, tmp_path: Path
) -> None:
    """Regression: its failed start left its namespace directories mounted."""
    other_root = tmp_path / "other"
    environment = daemon.environment() | {"NSNET_ROOT": str(other_root)}
    argv = daemon.nsenter_argv(*program_argv("nsnetd", "nsnet.daemon"), *daemon.dns_flags())

    refused = subprocess.run(argv, env=environment, capture_output=True, text=True, timeout=60)

    assert refused.returncode != 0
    assert "a link named 'nsnet0' already exists and is not nsnet's" in refused.stderr
    assert mounts_under(other_root) == []
    assert daemon.cli("network", "ls", "-q").stdout.count("\n") == 3  # the first one is fine
