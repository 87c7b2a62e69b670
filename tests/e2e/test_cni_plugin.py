"""nsnet-cni as a runtime drives it: exec'd per call, the call in CNI_* variables, JSON on stdin.

Each test has a daemon in a throwaway host namespace and "pods": network namespaces made the
way a runtime makes them (``ip netns add``), which the plugin attaches to nsnet networks. What
is checked is what a runtime and its containers see: the result document, interfaces and
addresses inside the pod, traffic between pods and from the outside through a published port,
names in the embedded DNS, and that a refused call changes nothing.
"""

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.daemon import Daemon, program_argv
from tests.support.netns import Namespace, run
from tests.support.topology import HostWithOutside

SERVE_TIMEOUT = 10.0


def cni(
    daemon: Daemon,
    command: str,
    config: dict | str,
    pod: Namespace | str | None = None,
    container_id: str = "pod-1",
    ifname: str = "eth0",
    args: str = "",
) -> tuple[int, dict | None]:
    """One call of the plugin in the host namespace: (exit code, the JSON it printed)."""
    netns = str(pod.path if isinstance(pod, Namespace) else pod or "")
    environment = {
        "CNI_COMMAND": command,
        "CNI_CONTAINERID": container_id,
        "CNI_NETNS": netns,
        "CNI_IFNAME": ifname,
        "CNI_ARGS": args,
        "CNI_PATH": str(Path(sys.executable).parent),
    }
    completed = run(
        daemon.nsenter_argv(*program_argv("nsnet-cni", "nsnet.cni")),
        input=config if isinstance(config, str) else json.dumps(config),
        env=daemon.environment(environment),
        check=False,
    )
    assert not completed.stderr.strip(), completed.stderr
    return completed.returncode, json.loads(completed.stdout) if completed.stdout.strip() else None


def record_name(runtime_id: str) -> str:
    """The name of nsnet's record of a runtime's container."""
    return "cni-" + hashlib.sha256(f"cni:{runtime_id}".encode()).hexdigest()[:12]


def forgotten_for_its_namespace(daemon: Daemon) -> bool:
    """Whether nsnetd forgot a runtime container for its namespace: at an ADD, or in between."""
    logs = daemon.logs()
    return "its namespace is gone, and a new ADD came" in logs or (
        "its namespace went without a DEL" in logs
    )


def wait_until(condition, what: str, timeout: float = SERVE_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"{what}: not within {timeout} s"
        time.sleep(0.1)


def conf(name: str = "web", version: str = "1.1.0", **more) -> dict:
    """A network configuration for CNI network ``name`` (the nsnet network of that name,
    unless ``network=`` names another)."""
    return {"cniVersion": version, "name": name, "type": "nsnet-cni", **more}


def added(daemon: Daemon, pod: Namespace, container_id: str = "pod-1", **more) -> dict:
    code, result = cni(daemon, "ADD", conf(**more), pod, container_id)
    assert code == 0, result
    return result


def in_pod(pod: Namespace, *argv: str) -> subprocess.CompletedProcess:
    return pod.run(*argv, check=False)


def attached(daemon: Daemon, network: str = "web") -> dict[str, str]:
    """The network's containers as ``network inspect`` shows them: name -> IPv4Address."""
    document = json.loads(daemon.cli("network", "inspect", network).stdout)[0]
    return {each["Name"]: each["IPv4Address"] for each in document["Containers"].values()}


def host_veths(daemon: Daemon) -> list[str]:
    links = json.loads(daemon.exec_in_host("ip", "-j", "link", "show", "type", "veth").stdout)
    return sorted(link["ifname"] for link in links if link["ifname"].startswith("veth"))


@pytest.fixture
def web(daemon: Daemon) -> Daemon:
    """The daemon, with user-defined network web on 10.50.0.0/24."""
    daemon.cli("network", "create", "--subnet", "10.50.0.0/24", "web")
    return daemon


def test_add_attaches_the_pod_and_del_takes_it_back(web: Daemon, host: HostWithOutside) -> None:
    pod = host.pool.create("pod")
    result = added(web, pod)

    assert result["cniVersion"] == "1.1.0"
    bridge, veth, inside = result["interfaces"]
    assert bridge["name"].startswith("br-") and veth["name"].startswith("veth")
    assert inside == {"name": "eth0", "mac": inside["mac"], "sandbox": str(pod.path)}
    (ip,) = result["ips"]
    assert ip["address"].startswith("10.50.0.") and ip["address"].endswith("/24")
    assert ip["gateway"] == "10.50.0.1" and ip["interface"] == 2
    assert result["routes"] == [{"dst": "0.0.0.0/0", "gw": "10.50.0.1"}]
    assert result["dns"]["nameservers"] == ["127.0.0.11"]
    assert "ndots:0" in result["dns"]["options"]

    shown = in_pod(pod, "ip", "-o", "-4", "addr", "show", "dev", "eth0").stdout
    assert f"inet {ip['address']}" in shown, shown
    link = json.loads(in_pod(pod, "ip", "-j", "link", "show", "eth0").stdout)[0]
    assert link["address"] == inside["mac"]
    assert " 0% packet loss" in in_pod(pod, "ping", "-c", "1", "-W", "2", "10.50.0.1").stdout
    name = record_name("pod-1")
    assert attached(web) == {name: ip["address"]}

    assert cni(web, "DEL", conf(), pod) == (0, None)
    assert in_pod(pod, "ip", "link", "show", "eth0").returncode != 0
    assert attached(web) == {}
    assert host_veths(web) == []
    assert name not in web.cli("ps", "-a").stdout
    assert cni(web, "DEL", conf(), pod) == (0, None)  # a DEL of what is gone succeeds


def test_pods_reach_each_other_and_resolve_aliases(web: Daemon, host: HostWithOutside) -> None:
    db_pod, app_pod = host.pool.create("db"), host.pool.create("app")
    db = added(web, db_pod, "db-1", runtimeConfig={"aliases": {"web": ["db"]}})
    added(web, app_pod, "app-1", runtimeConfig={"aliases": ["app"]})
    db_address = db["ips"][0]["address"].split("/")[0]

    answer = in_pod(app_pod, "dig", "+short", "+time=2", "+tries=1", "@127.0.0.11", "db").stdout
    assert answer.split() == [db_address], answer
    ping = in_pod(app_pod, "ping", "-c", "1", "-W", "2", db_address)
    assert " 0% packet loss" in ping.stdout, ping.stdout
    answer = in_pod(db_pod, "dig", "+short", "+time=2", "+tries=1", "@127.0.0.11", "app").stdout
    assert len(answer.split()) == 1, answer

    assert cni(web, "DEL", conf(), db_pod, "db-1") == (0, None)
    answer = in_pod(app_pod, "dig", "+short", "+time=2", "+tries=1", "@127.0.0.11", "db").stdout
    assert db_address not in answer  # gone at once (and forwarded, to no upstream here)
    answer = in_pod(app_pod, "dig", "+short", "+time=2", "+tries=1", "@127.0.0.11", "app").stdout
    assert len(answer.split()) == 1, answer  # while the pod's own name still resolves
    assert cni(web, "DEL", conf(), app_pod, "app-1") == (0, None)


def serve_once(pod: Namespace, port: int) -> subprocess.Popen:
    """A TCP server in the pod that answers "hello from the pod" to each connection."""
    program = (
        "import socket\n"
        "s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
        f"s.bind(('0.0.0.0', {port})); s.listen(8); print('ready', flush=True)\n"
        "while True:\n"
        "    c, _ = s.accept(); c.sendall(b'hello from the pod'); c.close()\n"
    )
    server = pod.popen(sys.executable, "-c", program, stdout=subprocess.PIPE, text=True)
    assert server.stdout.readline().strip() == "ready"
    return server


def fetch(namespace: Namespace, address: str, port: int) -> str:
    program = (
        "import socket, sys\n"
        "try:\n"
        f"    c = socket.create_connection(({address!r}, {port}), timeout=2)\n"
        "    print(c.recv(100).decode())\n"
        "except OSError as error:\n"
        "    print('no answer', error)\n"
    )
    return namespace.run(sys.executable, "-c", program).stdout.strip()


def test_port_mappings_are_published_through_nsnet(web: Daemon, host: HostWithOutside) -> None:
    pod = host.pool.create("pod")
    mappings = [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}]
    added(web, pod, runtimeConfig={"portMappings": mappings})
    serve_once(pod, 80)

    assert fetch(host.outside, host.host_address, 8080) == "hello from the pod"
    assert web.cli("port", record_name("pod-1")).stdout.strip() == "80/tcp -> 0.0.0.0:8080"

    assert cni(web, "DEL", conf(), pod) == (0, None)
    assert fetch(host.outside, host.host_address, 8080).startswith("no answer")
    assert "8080" not in web.exec_in_host("nft", "list", "table", "inet", "nsnet").stdout


def test_check_finds_an_attachment_that_lost_its_interface(
    web: Daemon, host: HostWithOutside
) -> None:
    pod = host.pool.create("pod")
    result = added(web, pod)
    check_conf = conf(prevResult=result)
    assert cni(web, "CHECK", check_conf, pod) == (0, None)

    other = host.pool.create("other")
    code, error = cni(web, "CHECK", check_conf, other)
    assert code == 1 and error["code"] == 101 and "not '" in error["msg"], error

    veth = result["interfaces"][1]["name"]
    tampering = [
        (("ip", "route", "del", "default"), "the default route via 10.50.0.1 is gone"),
        (("ip", "addr", "flush", "dev", "eth0"), "lost its address"),
        (("ip", "link", "set", "eth0", "down"), "the interface is down"),
        (("ip", "link", "set", "eth0", "name", "eth9"), "the interface is missing"),
    ]
    web.exec_in_host("ip", "link", "set", veth, "nomaster")
    code, error = cni(web, "CHECK", check_conf, pod)
    assert code == 1 and error["code"] == 101 and "is off bridge" in error["msg"], error
    web.exec_in_host("ip", "link", "set", veth, "master", result["interfaces"][0]["name"])
    for argv, words in tampering:
        in_pod(pod, *argv)
        code, error = cni(web, "CHECK", check_conf, pod)
        assert code == 1 and error["code"] == 101 and words in error["msg"], (argv, error)

    code, error = cni(web, "CHECK", check_conf, pod, container_id="never-added")
    assert code == 1 and error["code"] == 3, error
    assert cni(web, "DEL", conf(), pod) == (0, None)
    assert attached(web) == {} and host_veths(web) == []


def test_gc_detaches_what_the_runtime_no_longer_has(web: Daemon, host: HostWithOutside) -> None:
    keep, lose = host.pool.create("keep"), host.pool.create("lose")
    added(web, keep, "keep-1")
    added(web, lose, "lose-1")
    assert len(attached(web)) == 2

    valid = [{"containerID": "keep-1", "ifname": "eth0"}]
    assert cni(web, "GC", conf(**{"cni.dev/valid-attachments": valid})) == (0, None)
    assert len(attached(web)) == 1
    assert in_pod(lose, "ip", "link", "show", "eth0").returncode != 0
    assert in_pod(keep, "ip", "link", "show", "eth0").returncode == 0
    assert cni(web, "STATUS", conf()) == (0, None)
    assert cni(web, "DEL", conf(), keep, "keep-1") == (0, None)


def test_a_second_network_is_a_second_interface(web: Daemon, host: HostWithOutside) -> None:
    web.cli("network", "create", "--subnet", "10.51.0.0/24", "back")
    pod = host.pool.create("pod")
    added(web, pod, network="web")
    code, back = cni(web, "ADD", conf("back"), pod, ifname="net1")
    assert code == 0, back
    assert back["routes"] == []  # web gave the default route
    assert back["ips"][0]["address"].startswith("10.51.0.")
    assert in_pod(pod, "ip", "link", "show", "net1").returncode == 0
    assert len(attached(web, "web")) == len(attached(web, "back")) == 1

    code, error = cni(web, "ADD", conf("back"), pod, ifname="net2")
    assert code == 1 and error["code"] == 100, error  # one interface per network, as Docker

    assert cni(web, "DEL", conf(), pod, ifname="eth0") == (0, None)
    assert len(attached(web, "back")) == 1  # the container stays while it has an interface
    assert cni(web, "DEL", conf("back"), pod, ifname="net1") == (0, None)
    assert attached(web, "back") == {} and host_veths(web) == []


def test_bad_calls_get_the_spec_codes_and_change_nothing(
    web: Daemon, host: HostWithOutside, tmp_path: Path
) -> None:
    pod = host.pool.create("pod")
    pod.run("ip", "link", "add", "taken0", "type", "veth", "peer", "name", "taken1")
    not_a_namespace = tmp_path / "plain-file"
    not_a_namespace.write_text("")
    fifo = tmp_path / "fifo"  # opening one for reading would wait for a writer
    os.mkfifo(fifo)
    web.cli("create", "--name", "box", "--network", "web", "--", "true")
    box_netns = json.loads(web.cli("inspect", "box").stdout)[0]["NetworkSettings"]["SandboxKey"]
    twice = [
        {"hostPort": 8080, "containerPort": 80},
        {"hostPort": 8080, "containerPort": 81},
    ]
    before = (attached(web), host_veths(web), web.cli("ps", "-a", "-q").stdout)

    cases = [
        ("ADD", "{not json", pod, "eth0", "", 6, "cannot decode"),
        ("ADD", conf(version="0.2.0"), pod, "eth0", "", 1, "not supported"),
        ("ADD", {"cniVersion": "1.1.0"}, pod, "eth0", "", 7, "no 'name'"),
        ("ADD", conf(), "", "eth0", "", 4, "CNI_NETNS"),
        ("ADD", conf("nosuch"), pod, "eth0", "", 7, "nosuch"),
        ("ADD", conf("host"), pod, "eth0", "", 7, "only bridge networks"),
        ("ADD", conf(), not_a_namespace, "eth0", "", 7, "is not a network namespace"),
        ("ADD", conf(), pod, "a/b", "", 7, "not valid"),
        ("ADD", conf(), pod, "sixteen-chars-xx", "", 7, "1 to 15 bytes"),
        ("ADD", conf(), pod, "é" * 9, "", 7, "1 to 15 bytes"),
        ("ADD", conf(), fifo, "eth0", "", 7, "is not a network namespace"),
        ("ADD", conf(), "/proc/self/ns/uts", "eth0", "", 7, "is not a network namespace"),
        ("ADD", conf(), "/proc/self/ns/net", "eth0", "", 7, "the namespace nsnetd runs in"),
        ("ADD", conf(), box_netns, "eth0", "", 7, "the namespace of nsnet container box"),
        ("ADD", conf(prevResult="garbage"), pod, "eth0", "", 7, "'prevResult' must be"),
        ("ADD", conf(prevResult={"ips": 5}), pod, "eth0", "", 7, "prevResult.ips"),
        ("ADD", conf(), pod, "taken0", "", 100, "interface taken0 exists"),
        ("ADD", conf(), pod, "eth0", "K8S_POD_NAME=x", 4, "IgnoreUnknown"),
        ("ADD", conf(), pod, "eth0", "IP=10.99.0.5", 7, "10.99.0.5"),
        ("ADD", conf(), pod, "eth0", "MAC=01:00:00:00:00:01", 7, "multicast"),
        ("ADD", conf(runtimeConfig={"ips": ["10.50.0.9/16"]}), pod, "eth0", "", 7, "does not fit"),
        ("ADD", conf(runtimeConfig={"portMappings": twice}), pod, "eth0", "", 7, "given twice"),
        (
            "ADD",
            conf(runtimeConfig={"portMappings": [{"hostPort": 0, "containerPort": 80}]}),
            pod,
            "eth0",
            "",
            7,
            "hostPort 0",
        ),
        ("CHECK", conf(version="0.3.1"), pod, "eth0", "", 1, "CHECK came in CNI 0.4.0"),
        ("GC", conf(**{"cni.dev/valid-attachments": "all"}), None, "", "", 7, "must be a list"),
        ("FROB", conf(), pod, "eth0", "", 4, "CNI_COMMAND 'FROB'"),
        ("STATUS", conf("nosuch"), None, "", "", 50, "nosuch"),
        ("STATUS", conf("host"), None, "", "", 50, "is a host network"),
    ]
    for command, config, netns, ifname, args, code, words in cases:
        exit_code, error = cni(web, command, config, netns, ifname=ifname, args=args)
        assert exit_code == 1 and error["code"] == code, (command, config, ifname, args, error)
        assert words in error["msg"], (command, config, ifname, args, error)
    assert (attached(web), host_veths(web), web.cli("ps", "-a", "-q").stdout) == before
    code, answer = cni(web, "VERSION", '{"cniVersion": {"a": 1}}')
    assert code == 0 and answer["cniVersion"] == "1.1.0", answer
    names = [link["ifname"] for link in json.loads(in_pod(pod, "ip", "-j", "link").stdout)]
    assert sorted(names) == ["lo", "taken0", "taken1"]

    code, result = cni(
        web, "ADD", conf(), pod, args="IgnoreUnknown=1;K8S_POD_NAME=x;IP=10.50.0.77"
    )
    assert code == 0, result
    web.restart()
    assert attached(web)[record_name("pod-1")] == "10.50.0.77/24"
    # A runtime that lost the answer (nsnetd restarted meanwhile) sends the same ADD again.
    assert cni(web, "ADD", conf(), pod) == (0, result)
    assert cni(web, "DEL", conf(), pod) == (0, None)


def test_a_daemon_that_does_not_answer_is_try_again_later(
    web: Daemon, host: HostWithOutside
) -> None:
    pod = host.pool.create("pod")
    elsewhere = str(web.root / "run" / "nobody.sock")
    code, error = cni(web, "ADD", conf(socket=elsewhere), pod)
    assert code == 1 and error["code"] == 11 and elsewhere in error["msg"], error
    code, error = cni(web, "STATUS", conf(socket=elsewhere))
    assert code == 1 and error["code"] == 50, error
    assert in_pod(pod, "ip", "link", "show", "eth0").returncode != 0


def test_a_pod_removed_without_del_is_forgotten(web: Daemon, host: HostWithOutside) -> None:
    gone, stays = host.pool.create("gone"), host.pool.create("stays")
    added(web, gone, "gone-1")
    added(web, stays, "stays-1", runtimeConfig={"portMappings": [
        {"hostPort": 8081, "containerPort": 80}
    ]})  # fmt: skip
    run(["ip", "netns", "delete", gone.name])

    web.restart()
    assert list(attached(web)) == [record_name("stays-1")]
    assert "its namespace went while nsnetd was away" in web.logs()
    serve_once(stays, 80)
    assert fetch(host.outside, host.host_address, 8081) == "hello from the pod"
    assert cni(web, "DEL", conf(), stays, "stays-1") == (0, None)
    assert attached(web) == {} and host_veths(web) == []


def test_an_id_reused_after_its_namespace_went_replaces_the_stale_record(
    web: Daemon, host: HostWithOutside
) -> None:
    first = host.pool.create("first")
    added(web, first, "reused")
    run(["ip", "netns", "delete", first.name])
    deadline = time.monotonic() + SERVE_TIMEOUT
    second = host.pool.create("second")
    while True:  # the kernel frees a namespace, and its veth pairs, in the background
        code, result = cni(web, "ADD", conf(), second, "reused")
        if code == 0 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert code == 0, result
    assert forgotten_for_its_namespace(web), web.logs()
    assert len(attached(web)) == 1
    assert cni(web, "DEL", conf(), second, "reused") == (0, None)
    assert attached(web) == {} and host_veths(web) == []


def test_a_namespace_with_a_default_route_keeps_it(web: Daemon, host: HostWithOutside) -> None:
    pod = host.pool.create("pod")  # as another plugin left it: eth0 with the default route
    pod.run("ip", "link", "add", "eth0", "type", "veth", "peer", "name", "peer0")
    pod.run("ip", "addr", "add", "203.0.113.10/24", "dev", "eth0")
    pod.run("ip", "link", "set", "eth0", "up")
    pod.run("ip", "link", "set", "peer0", "up")
    pod.run("ip", "route", "add", "default", "via", "203.0.113.1")

    code, result = cni(web, "ADD", conf(), pod, ifname="net1")
    assert code == 0, result
    assert result["routes"] == []
    routes = json.loads(in_pod(pod, "ip", "-j", "route", "show", "default").stdout)
    assert [(route["gateway"], route["dev"]) for route in routes] == [("203.0.113.1", "eth0")]
    assert cni(web, "CHECK", conf(prevResult=result), pod, ifname="net1") == (0, None)
    assert cni(web, "DEL", conf(), pod, ifname="net1") == (0, None)


def test_a_namespace_made_again_at_the_same_path_is_a_new_one(
    web: Daemon, host: HostWithOutside
) -> None:
    pod = host.pool.create("pod")
    ports = {"portMappings": [{"hostPort": 8082, "containerPort": 80}]}
    added(web, pod, "reborn", runtimeConfig=ports)
    run(["ip", "netns", "delete", pod.name])
    run(["ip", "netns", "add", pod.name])  # the pool still removes it at the end

    result = added(web, pod, "reborn")
    assert forgotten_for_its_namespace(web), web.logs()
    assert result["interfaces"][2]["sandbox"] == str(pod.path)
    assert in_pod(pod, "ip", "link", "show", "eth0").returncode == 0
    assert len(attached(web)) == 1
    assert web.cli("port", record_name("reborn")).stdout.strip() == ""  # the old ADD's ports
    assert len(host_veths(web)) == 1, host_veths(web)  # the old pair went with its namespace
    assert cni(web, "DEL", conf(), pod, "reborn") == (0, None)


def test_a_record_disconnected_from_its_last_network_goes(
    web: Daemon, host: HostWithOutside
) -> None:
    pod = host.pool.create("pod")
    ports = {"portMappings": [{"hostPort": 8083, "containerPort": 80}]}
    added(web, pod, runtimeConfig=ports)
    web.cli("network", "disconnect", "web", record_name("pod-1"))
    assert record_name("pod-1") in web.cli("ps", "-a").stdout

    added(web, pod, runtimeConfig=ports)  # the record with no interface is made anew
    assert web.cli("port", record_name("pod-1")).stdout.strip() == "80/tcp -> 0.0.0.0:8083"
    web.cli("network", "disconnect", "web", record_name("pod-1"))
    assert cni(web, "DEL", conf(), pod) == (0, None)
    assert record_name("pod-1") not in web.cli("ps", "-a").stdout


def test_a_del_for_another_network_leaves_the_attachment_alone(
    web: Daemon, host: HostWithOutside
) -> None:
    web.cli("network", "create", "--subnet", "10.51.0.0/24", "back")
    pod = host.pool.create("pod")
    result = added(web, pod)
    code, error = cni(web, "ADD", conf("back"), pod)  # eth0 is web's
    assert code == 1 and error["code"] == 100, error
    assert cni(web, "DEL", conf("back"), pod) == (0, None)  # the runtime cleans up its failure
    assert attached(web) == {record_name("pod-1"): result["ips"][0]["address"]}
    assert cni(web, "CHECK", conf(prevResult=result), pod) == (0, None)
    assert cni(web, "DEL", conf(), pod) == (0, None)


def test_del_leaves_an_interface_it_did_not_make(web: Daemon, host: HostWithOutside) -> None:
    pod = host.pool.create("pod")
    added(web, pod)
    pod.run("ip", "link", "del", "eth0")  # the runtime's own eth0 takes the name
    pod.run("ip", "link", "add", "eth0", "type", "veth", "peer", "name", "mine0")
    pod.run("ip", "addr", "add", "203.0.113.7/24", "dev", "eth0")
    pod.run("ip", "link", "set", "eth0", "up")

    assert cni(web, "DEL", conf(), pod) == (0, None)
    link = json.loads(in_pod(pod, "ip", "-j", "addr", "show", "eth0").stdout)[0]
    assert "UP" in link["flags"], link
    assert [a["local"] for a in link["addr_info"] if a["family"] == "inet"] == ["203.0.113.7"]
    assert attached(web) == {} and host_veths(web) == []


def test_gc_collects_only_its_own_cni_networks_attachments(
    web: Daemon, host: HostWithOutside
) -> None:
    first, second = host.pool.create("first"), host.pool.create("second")
    added(web, first, "a")  # CNI network web
    code, result = cni(web, "ADD", conf("other-name", network="web"), second, "b")
    assert code == 0, result
    gc = conf("other-name", network="web", **{"cni.dev/valid-attachments": []})
    assert cni(web, "GC", gc) == (0, None)
    assert list(attached(web)) == [record_name("a")]
    assert cni(web, "DEL", conf(), first, "a") == (0, None)


def test_a_namespace_gone_without_del_is_forgotten_within_seconds(
    web: Daemon, host: HostWithOutside
) -> None:
    pod = host.pool.create("pod")
    ports = {"portMappings": [{"hostPort": 8084, "containerPort": 80}]}
    added(web, pod, "vanishing", runtimeConfig=ports)
    run(["ip", "netns", "delete", pod.name])  # nsnet's own sockets would keep it alive

    wait_until(lambda: attached(web) == {}, "the record goes")
    assert "its namespace went without a DEL" in web.logs()
    wait_until(lambda: host_veths(web) == [], "its veth goes")
    assert "8084" not in web.exec_in_host("nft", "list", "table", "inet", "nsnet").stdout
    run(["ip", "netns", "add", pod.name])  # a new pod at the same path, under a new id
    added(web, pod, "newcomer")
    assert cni(web, "DEL", conf(), pod, "newcomer") == (0, None)


def test_nsnetd_starts_when_a_pod_took_its_interface_name(
    web: Daemon, host: HostWithOutside
) -> None:
    pod, other = host.pool.create("pod"), host.pool.create("other")
    added(web, pod)
    added(web, other, "other-1")
    web.stop()
    pod.run("ip", "link", "del", "eth0")  # deleting it took nsnet's host end too
    pod.run("ip", "link", "add", "eth0", "type", "veth", "peer", "name", "mine0")

    web.start()
    assert list(attached(web)) == [record_name("other-1")]
    assert "interface eth0 is gone; forgetting it" in web.logs()
    assert in_pod(pod, "ip", "link", "show", "mine0").returncode == 0  # untouched
    assert cni(web, "DEL", conf(), pod) == (0, None)
    assert cni(web, "DEL", conf(), other, "other-1") == (0, None)


def test_ports_come_back_with_the_first_network(web: Daemon, host: HostWithOutside) -> None:
    web.cli("network", "create", "--subnet", "10.51.0.0/24", "back")
    pod = host.pool.create("pod")
    ports = {"portMappings": [{"hostPort": 8085, "containerPort": 80}]}
    added(web, pod, runtimeConfig=ports)
    code, result = cni(web, "ADD", conf("back"), pod, ifname="net1")
    assert code == 0, result
    serve_once(pod, 80)
    assert cni(web, "DEL", conf(), pod) == (0, None)  # off its first network: unpublished
    assert fetch(host.outside, host.host_address, 8085).startswith("no answer")

    added(web, pod, runtimeConfig=ports)
    assert fetch(host.outside, host.host_address, 8085) == "hello from the pod"
    assert cni(web, "DEL", conf(), pod) == (0, None)
    assert cni(web, "DEL", conf("back"), pod, ifname="net1") == (0, None)


def test_a_crash_between_making_a_pair_and_marking_it_leaves_nothing(
    web: Daemon, host: HostWithOutside
) -> None:
    pod = host.pool.create("pod")
    web.restart(env={"NSNET_FAILPOINTS": "crash:connect.veth.mark"})
    code, error = cni(web, "ADD", conf(), pod)
    assert code == 1 and error["code"] == 11, error  # nsnetd died mid-ADD
    assert web.pid is None
    web.restart(env={})
    assert "removing half-made veth pair" in web.logs()
    wait_until(lambda: in_pod(pod, "ip", "link", "show", "eth0").returncode != 0, "eth0 goes")
    assert host_veths(web) == [] and attached(web) == {}
    result = added(web, pod)  # the retry that code 11 invites
    assert result["interfaces"][2]["name"] == "eth0"
    assert cni(web, "DEL", conf(), pod) == (0, None)


def test_a_pod_serving_dns_itself_is_told_the_upstream_servers(
    web: Daemon, host: HostWithOutside
) -> None:
    pod = host.pool.create("pod")
    program = (
        "import socket, time\n"
        "u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind(('0.0.0.0', 53))\n"
        "t = socket.socket(); t.bind(('0.0.0.0', 53)); t.listen(1)\n"
        "print('ready', flush=True); time.sleep(600)\n"
    )
    server = pod.popen(sys.executable, "-c", program, stdout=subprocess.PIPE, text=True)
    assert server.stdout.readline().strip() == "ready"
    result = added(web, pod)
    assert result["dns"]["nameservers"] == ["192.0.2.53"], result["dns"]  # the daemon's --dns
    assert cni(web, "DEL", conf(), pod) == (0, None)


def test_a_repeated_add_that_asks_for_something_else_is_refused(
    web: Daemon, host: HostWithOutside
) -> None:
    pod = host.pool.create("pod")
    result = added(web, pod)
    taken = result["ips"][0]["address"].split("/")[0]
    code, error = cni(web, "ADD", conf(), pod, args="IP=10.50.0.200")
    assert code == 1 and error["code"] == 100 and taken in error["msg"], error
    code, error = cni(web, "ADD", conf("other-name", network="web"), pod)
    assert code == 1 and error["code"] == 100 and "'web'" in error["msg"], error
    code, error = cni(web, "CHECK", conf("other-name", network="web", prevResult=result), pod)
    assert code == 1 and error["code"] == 3, error
    assert cni(web, "ADD", conf(), pod) == (0, result)
    assert cni(web, "DEL", conf(), pod) == (0, None)
