"""nsnetd side by side with Docker 20.10's own dockerd (issue 2, point 6).

One sequence of network operations runs against Debian's dockerd (fixture ``dockerd``, in a
throwaway namespace of its own) and against nsnetd (fixture ``daemon``), both through the real
docker CLI; containers are busybox ones under dockerd (an image imported from busybox-static)
and ``nsnet run -d`` ones under nsnetd. Then ``network ls`` and ``network inspect`` of every
network are compared field by field: the same keys in the same order, the same types and the
same values, ids, creation times and MAC addresses aside.

dockerd is restarted once before the run: a dockerd starting for the very first time leaves
the default bridge's Gateway out of ``IPAM.Config``, every later start (docker0 then exists with
its address) shows it, and so does the article nsnet follows (examples/s8_network_inspect.py).
nsnet's default bridge device is ``nsnet0`` where Docker's is ``docker0``, by design.
"""

import json
import re
import tarfile
from pathlib import Path
from typing import Any

from tests.support.daemon import Daemon
from tests.support.dockerd import Dockerd

IMAGE = "nsnet-busybox:test"
BUSYBOX = "/usr/bin/busybox"
ID = re.compile(r"^[0-9a-f]{64}$")
SHORT_ID = re.compile(r"^[0-9a-f]{12}$")
CREATED = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z$")
MAC = re.compile(r"^([0-9a-f]{2}:){5}[0-9a-f]{2}$")
BRIDGE_NAME_OPTION = "com.docker.network.bridge.name"

NETWORKS = [
    ["plain"],
    ["--subnet", "10.10.0.0/24", "sub"],
    [
        "--subnet", "10.11.0.0/16", "--gateway", "10.11.0.254", "--ip-range", "10.11.5.0/24",
        "--aux-address", "router=10.11.0.2", "--aux-address", "printer=10.11.5.3", "full",
    ],
    ["--internal", "--label", "tier=back", "--label", "owner=test", "--attachable", "inside"],
    [
        "-o", "com.docker.network.bridge.name=brside0",
        "-o", "com.docker.network.driver.mtu=1400",
        "-o", "com.docker.network.bridge.enable_icc=false",
        "-o", "com.docker.network.bridge.enable_ip_masquerade=false",
        "opts",
    ],
    ["-d", "bridge", "--ipam-driver", "default", "--ipam-opt", "kept=yes", "ipamopt"],
    ["--subnet", "192.168.77.0/24", "--gateway", "192.168.77.1", "gated"],
    ["gone"],
]  # fmt: skip

# (container, its run flags): the same under both daemons.
CONTAINERS = [
    ("c1", ["--network", "full", "--ip", "10.11.5.10"]),
    ("c2", ["--network", "sub"]),
    ("c3", []),
    ("c4", ["--network", "inside", "--network-alias", "db"]),
    ("c5", ["--network", "gated"]),
]

CHANGES = [
    ["network", "connect", "--alias", "web", "full", "c2"],
    ["network", "connect", "--ip", "10.10.0.77", "sub", "c1"],
    ["network", "connect", "plain", "c3"],
    ["network", "disconnect", "plain", "c3"],
    ["network", "connect", "opts", "c3"],
    ["network", "connect", "plain", "c5"],
    ["network", "rm", "gone"],
]


def busybox_image(directory: Path) -> Path:
    """A tarball of a root file system holding busybox-static, for ``docker import``."""
    path = directory / "busybox-rootfs.tar"
    with tarfile.open(path, "w") as archive:
        archive.add(BUSYBOX, arcname="bin/busybox")
        for command in ("sh", "sleep"):
            link = tarfile.TarInfo(f"bin/{command}")
            link.type, link.linkname = tarfile.SYMTYPE, "busybox"
            archive.addfile(link)
        for name in ("etc", "proc", "sys", "dev", "tmp"):
            directory_entry = tarfile.TarInfo(name)
            directory_entry.type, directory_entry.mode = tarfile.DIRTYPE, 0o755
            archive.addfile(directory_entry)
    return path


def apply_sequence(docker, run_container) -> None:
    """The operations, through the docker CLI (``docker``) and a container runner."""
    for arguments in NETWORKS:
        docker("network", "create", *arguments)
    for name, flags in CONTAINERS:
        run_container(name, flags)
    for arguments in CHANGES:
        docker(*arguments)


def normalised(value: Any, where: str = "") -> Any:
    """``value`` with ids, times and MACs checked for their form and replaced by markers.

    Containers, keyed by container id and so in the order of those random ids (Docker writes
    every map sorted by key), are keyed by container name instead, in name order.
    """
    if isinstance(value, dict):
        if where.endswith("/Containers"):
            assert list(value) == sorted(value), f"{where}: not in the order of their ids"
            result = {}
            for key, endpoint in sorted(value.items(), key=lambda item: item[1]["Name"]):
                assert ID.match(key), f"{where}: container id {key!r}"
                result[endpoint["Name"]] = normalised(endpoint, f"{where}/{endpoint['Name']}")
            return result
        return {key: normalised(item, f"{where}/{key}") for key, item in value.items()}
    if isinstance(value, list):
        return [normalised(item, f"{where}[{position}]") for position, item in enumerate(value)]
    field = where.rsplit("/", 1)[-1]
    if field in ("Id", "EndpointID"):
        assert isinstance(value, str) and ID.match(value), f"{where}: {value!r}"
        return "<id>"
    if field == "Created":
        assert isinstance(value, str) and CREATED.match(value), f"{where}: {value!r}"
        return "<time>"
    if field == "MacAddress":
        assert isinstance(value, str) and MAC.match(value), f"{where}: {value!r}"
        return "<mac>"
    return value


def differences(docker: Any, nsnet: Any, where: str = "") -> list[str]:
    """Every difference in keys, key order, types and values, with its path."""
    if type(docker) is not type(nsnet):
        return [f"{where}: type {type(docker).__name__} vs {type(nsnet).__name__}"]
    if isinstance(docker, dict):
        found = []
        if list(docker) != list(nsnet):
            found.append(f"{where}: keys {list(docker)} vs {list(nsnet)}")
        for key in docker.keys() & nsnet.keys():
            found += differences(docker[key], nsnet[key], f"{where}/{key}")
        return found
    if isinstance(docker, list):
        if len(docker) != len(nsnet):
            return [f"{where}: {docker!r} vs {nsnet!r}"]
        found = []
        for position, (left, right) in enumerate(zip(docker, nsnet, strict=True)):
            found += differences(left, right, f"{where}[{position}]")
        return found
    return [] if docker == nsnet else [f"{where}: {docker!r} vs {nsnet!r}"]


def observed(daemon: Dockerd | Daemon) -> dict[str, Any]:
    """``network ls`` (through the docker CLI, and the API's list) and every inspect."""
    table = daemon.docker("network", "ls").stdout.splitlines()
    assert table[0].split() == ["NETWORK", "ID", "NAME", "DRIVER", "SCOPE"]
    rows = []
    for line in table[1:]:
        short_id, *rest = line.split()
        assert SHORT_ID.match(short_id), line
        rows.append(rest)
    listing = daemon.api("GET", "/networks").json()
    names = [row[0] for row in rows]
    inspected = json.loads(daemon.docker("network", "inspect", *names).stdout)
    return {
        "ls": rows,
        "list": normalised(sorted(listing, key=lambda entry: entry["Name"]), "list"),
        "inspect": {
            entry["Name"]: normalised(entry, f"inspect {entry['Name']}") for entry in inspected
        },
    }


def test_network_ls_and_inspect_match_dockerd_field_by_field(
    dockerd: Dockerd, daemon: Daemon, tmp_path: Path
) -> None:
    dockerd.stop()
    dockerd.start()
    dockerd.docker("import", str(busybox_image(tmp_path)), IMAGE)

    def run_under_dockerd(name: str, flags: list[str]) -> None:
        dockerd.docker("run", "-d", "--name", name, *flags, IMAGE, "sleep", "600")

    def run_under_nsnetd(name: str, flags: list[str]) -> None:
        daemon.cli("run", "-d", "--name", name, *flags, "--", "sleep", "600")

    apply_sequence(dockerd.docker, run_under_dockerd)
    apply_sequence(daemon.docker, run_under_nsnetd)
    from_docker, from_nsnet = observed(dockerd), observed(daemon)

    for bridge_of_docker, bridge_of_nsnet in (
        (from_docker["inspect"]["bridge"], from_nsnet["inspect"]["bridge"]),
        (from_docker["list"][0], from_nsnet["list"][0]),
    ):
        assert bridge_of_docker["Options"][BRIDGE_NAME_OPTION] == "docker0"
        assert bridge_of_nsnet["Options"][BRIDGE_NAME_OPTION] == "nsnet0"
        bridge_of_docker["Options"][BRIDGE_NAME_OPTION] = "nsnet0"

    assert from_docker["ls"] == from_nsnet["ls"]
    assert [row[0] for row in from_nsnet["ls"]] == [
        "bridge", "full", "gated", "host", "inside", "ipamopt", "none", "opts", "plain", "sub",
    ]  # fmt: skip
    found = differences(from_docker["list"], from_nsnet["list"], "GET /networks")
    found += differences(from_docker["inspect"], from_nsnet["inspect"], "network inspect")
    assert not found, "nsnetd differs from dockerd 20.10:\n" + "\n".join(found)

    # The comparison saw the interesting parts, not two empty answers.
    full = from_nsnet["inspect"]["full"]
    assert sorted(full["Containers"]) == ["c1", "c2"]
    assert full["Containers"]["c1"]["IPv4Address"] == "10.11.5.10/16"
    assert from_nsnet["inspect"]["ipamopt"]["IPAM"]["Options"] == {"kept": "yes"}
    assert from_nsnet["inspect"]["bridge"]["IPAM"]["Config"] == [
        {"Subnet": "172.17.0.0/16", "Gateway": "172.17.0.1"}
    ]


# Error answers: the status of each refusal, next to dockerd's.

# (what, method, path, body)
REFUSALS = [
    ("duplicate name", "POST", "/networks/create", {"Name": "front", "CheckDuplicate": True}),
    ("overlapping subnet", "POST", "/networks/create",
     {"Name": "ov", "IPAM": {"Config": [{"Subnet": "10.10.0.0/25"}]}}),
    ("CIDR with a bad prefix", "POST", "/networks/create",
     {"Name": "cidr", "IPAM": {"Config": [{"Subnet": "10.0.0.0/33"}]}}),
    ("CIDR that is not one", "POST", "/networks/create",
     {"Name": "cidr", "IPAM": {"Config": [{"Subnet": "nonsense"}]}}),
    ("gateway outside the subnet", "POST", "/networks/create",
     {"Name": "gw", "IPAM": {"Config": [{"Subnet": "10.20.0.0/24", "Gateway": "10.21.0.1"}]}}),
    ("gateway that is no address", "POST", "/networks/create",
     {"Name": "gw", "IPAM": {"Config": [{"Subnet": "10.20.0.0/24", "Gateway": "bogus"}]}}),
    ("aux address outside the subnet", "POST", "/networks/create",
     {"Name": "aux",
      "IPAM": {"Config": [{"Subnet": "10.31.0.0/24", "AuxiliaryAddresses": {"a": "10.23.0.1"}}]}}),
    ("unknown driver", "POST", "/networks/create", {"Name": "drv", "Driver": "nosuch"}),
    ("create bridge", "POST", "/networks/create", {"Name": "bridge"}),
    ("create host", "POST", "/networks/create", {"Name": "host"}),
    ("rm bridge", "DELETE", "/networks/bridge", None),
    ("rm host", "DELETE", "/networks/host", None),
    ("rm none", "DELETE", "/networks/none", None),
    ("rm unknown", "DELETE", "/networks/nosuch", None),
    ("inspect unknown", "GET", "/networks/nosuch", None),
    ("rm with endpoints", "DELETE", "/networks/front", None),
    ("connect unknown container", "POST", "/networks/front/connect", {"Container": "nosuch"}),
    ("connect to unknown network", "POST", "/networks/nosuch/connect", {"Container": "c1"}),
    ("connect twice", "POST", "/networks/front/connect", {"Container": "c1"}),
    ("connect host-mode container", "POST", "/networks/front/connect", {"Container": "chost"}),
    ("connect none-mode container", "POST", "/networks/front/connect", {"Container": "cnone"}),
    ("connect container-mode container", "POST", "/networks/front/connect",
     {"Container": "cshare"}),
    ("connect to host", "POST", "/networks/host/connect", {"Container": "c1"}),
    ("connect to none", "POST", "/networks/none/connect", {"Container": "c1"}),
    ("--ip outside the subnet", "POST", "/networks/front/connect",
     {"Container": "c2", "EndpointConfig": {"IPAMConfig": {"IPv4Address": "10.99.0.5"}}}),
    ("--ip in use", "POST", "/networks/front/connect",
     {"Container": "c2", "EndpointConfig": {"IPAMConfig": {"IPv4Address": "10.10.0.2"}}}),
    ("--ip on the default bridge", "POST", "/networks/bridge/connect",
     {"Container": "c2", "EndpointConfig": {"IPAMConfig": {"IPv4Address": "172.17.0.50"}}}),
    ("disconnect when not connected", "POST", "/networks/back/disconnect", {"Container": "c1"}),
    ("disconnect unknown container", "POST", "/networks/front/disconnect",
     {"Container": "nosuch"}),
]  # fmt: skip

# Where nsnetd answers another status than dockerd 20.10, and why (docker's, nsnet's).
STATUS_DIFFERENCES = {
    # dockerd answers 500 (an internal error) for input that is simply invalid; nsnet says 400.
    "CIDR with a bad prefix": (500, 400),
    "CIDR that is not one": (500, 400),
    "gateway outside the subnet": (500, 400),
    "gateway that is no address": (500, 400),
    "--ip outside the subnet": (500, 400),
    "disconnect when not connected": (500, 404),
    # Docker's own category for an address outside the pool is 403; nsnet's is 400.
    "aux address outside the subnet": (403, 400),
}


def refusal_setup(docker, run_container) -> None:
    docker("network", "create", "--subnet", "10.10.0.0/24", "front")
    docker("network", "create", "back")
    run_container("c1", ["--network", "front"])
    run_container("c2", ["--network", "back"])
    run_container("chost", ["--network", "host"])
    run_container("cnone", ["--network", "none"])
    run_container("cshare", ["--network", "container:c2"])


def test_refusals_answer_dockers_status_codes(
    dockerd: Dockerd, daemon: Daemon, tmp_path: Path
) -> None:
    dockerd.docker("import", str(busybox_image(tmp_path)), IMAGE)
    refusal_setup(
        dockerd.docker,
        lambda name, flags: dockerd.docker("run", "-d", "--name", name, *flags, IMAGE, "sleep",
                                           "600"),
    )  # fmt: skip
    refusal_setup(
        daemon.docker,
        lambda name, flags: daemon.cli("run", "-d", "--name", name, *flags, "--", "sleep", "600"),
    )
    before = daemon.api("GET", "/networks").json()

    found = []
    for what, method, path, body in REFUSALS:
        from_docker = dockerd.api(method, path, body=body)
        from_nsnet = daemon.api(method, path, body=body)
        assert from_docker.status >= 400, (what, from_docker.text)
        assert from_nsnet.status >= 400, (what, from_nsnet.text)
        assert set(from_nsnet.json()) == {"message"}, (what, from_nsnet.text)
        expected = STATUS_DIFFERENCES.get(what, (from_docker.status, from_docker.status))
        if (from_docker.status, from_nsnet.status) != expected:
            found.append(
                f"{what}: dockerd {from_docker.status} {from_docker.json()['message']!r},"
                f" nsnetd {from_nsnet.status} {from_nsnet.json()['message']!r}"
            )
    assert not found, "status codes differ from what is known:\n" + "\n".join(found)
    assert daemon.api("GET", "/networks").json() == before
