"""The real docker CLI pointed at nsnetd's socket (issue 2, point 6, acceptance).

``docker -H unix://SOCKET network ls|create|inspect|rm|connect|disconnect|prune -f`` must work
and show exactly what nsnet's own CLI shows for the same state: the same tables, the same JSON,
the same errors. Both clients run inside the throwaway host namespace against one nsnetd.
"""

import json
import select
import subprocess
import time
from pathlib import Path

from tests.support.daemon import Daemon, docker_cli_environment, program_argv

# The docker CLI 28 adds this line after a daemon error in `network rm`; nsnet's CLI does not.
DOCKER_EXIT_LINE = "exit status 1\n"


def docker_stderr(completed: subprocess.CompletedProcess) -> str:
    return completed.stderr.removesuffix(DOCKER_EXIT_LINE)


def same_output(daemon: Daemon, *args: str) -> subprocess.CompletedProcess:
    """Run ``args`` through both clients; assert equal status, stdout and stderr."""
    through_docker = daemon.docker(*args, check=False)
    through_nsnet = daemon.cli(*args, check=False)

    assert through_docker.returncode == through_nsnet.returncode, (
        args,
        through_docker.stderr,
        through_nsnet.stderr,
    )
    assert through_docker.stdout == through_nsnet.stdout, args
    assert docker_stderr(through_docker) == through_nsnet.stderr, args
    return through_docker


def names_listed(daemon: Daemon) -> list[str]:
    return [line.split()[1] for line in daemon.cli("network", "ls").stdout.splitlines()[1:]]


def test_docker_network_commands_show_what_nsnet_shows(daemon: Daemon) -> None:
    created = daemon.docker(
        "network", "create", "--subnet", "10.60.0.0/24", "--gateway", "10.60.0.254",
        "--ip-range", "10.60.0.128/25", "--aux-address", "router=10.60.0.2",
        "--label", "tier=front", "--attachable", "front",
    ).stdout.strip()  # fmt: skip
    daemon.cli("network", "create", "--internal", "-o", "com.docker.network.driver.mtu=1400",
               "back")  # fmt: skip

    assert len(created) == 64
    assert names_listed(daemon) == ["back", "bridge", "front", "host", "none"]
    inspected = json.loads(daemon.cli("network", "inspect", "front").stdout)[0]
    assert inspected["Id"] == created
    assert inspected["IPAM"]["Config"] == [
        {
            "Subnet": "10.60.0.0/24",
            "IPRange": "10.60.0.128/25",
            "Gateway": "10.60.0.254",
            "AuxiliaryAddresses": {"router": "10.60.0.2"},
        }
    ]

    for args in (
        ["network", "ls"],
        ["network", "ls", "--no-trunc"],
        ["network", "ls", "-q"],
        ["network", "ls", "-f", "driver=bridge"],
        ["network", "ls", "-f", "name=front"],
        ["network", "ls", "-f", "type=custom"],
        ["network", "ls", "-f", "label=tier=front"],
        ["network", "inspect", "bridge", "host", "none", "front", "back"],
    ):
        same_output(daemon, *args)

    daemon.cli("run", "-d", "--name", "web", "--network", "front", "--", "sleep", "300")
    daemon.docker("network", "connect", "--alias", "db", "--ip", "172.18.0.50", "back", "web")
    same_output(daemon, "network", "inspect", "front", "back")
    back = json.loads(daemon.cli("network", "inspect", "back").stdout)[0]
    (endpoint,) = back["Containers"].values()
    assert (endpoint["Name"], endpoint["IPv4Address"]) == ("web", "172.18.0.50/16")
    settings = json.loads(daemon.cli("inspect", "web").stdout)[0]["NetworkSettings"]
    assert settings["Networks"]["back"]["Aliases"] == ["db"]
    same_output(daemon, "inspect", "web")

    daemon.docker("network", "disconnect", "back", "web")
    same_output(daemon, "network", "inspect", "back")
    assert json.loads(daemon.cli("network", "inspect", "back").stdout)[0]["Containers"] == {}

    removed = daemon.docker("network", "rm", "back")
    assert removed.stdout == "back\n"
    assert names_listed(daemon) == ["bridge", "front", "host", "none"]

    daemon.cli("rm", "-f", "web")


def test_docker_network_prune_prints_what_nsnet_prune_prints(daemon: Daemon) -> None:
    def make_unused_networks() -> None:
        for name in ("unused-a", "unused-b"):
            daemon.cli("network", "create", name)

    daemon.cli("network", "create", "kept")
    daemon.cli("run", "-d", "--name", "holder", "--network", "kept", "--", "sleep", "300")

    make_unused_networks()
    through_docker = daemon.docker("network", "prune", "-f")
    assert names_listed(daemon) == ["bridge", "host", "kept", "none"]
    make_unused_networks()
    through_nsnet = daemon.cli("network", "prune", "-f")

    assert through_docker.stdout == through_nsnet.stdout
    assert sorted(through_docker.stdout.splitlines()) == sorted(
        ["Deleted Networks:", "unused-a", "unused-b", ""]
    )
    assert names_listed(daemon) == ["bridge", "host", "kept", "none"]
    same_output(daemon, "network", "prune", "-f")  # nothing left to prune: no output

    daemon.cli("network", "create", "--label", "stay", "labelled")
    daemon.cli("network", "create", "young")
    pruned = daemon.docker("network", "prune", "-f", "--filter", "until=1h")
    assert pruned.stdout == ""  # both were made less than an hour ago
    pruned = daemon.docker("network", "prune", "-f", "--filter", "label!=stay")
    assert pruned.stdout == "Deleted Networks:\nyoung\n\n"
    assert names_listed(daemon) == ["bridge", "host", "kept", "labelled", "none"]
    daemon.cli("network", "rm", "labelled")
    daemon.cli("rm", "-f", "holder")


def test_docker_cli_errors_read_as_nsnets(daemon: Daemon) -> None:
    daemon.cli("network", "create", "--subnet", "10.61.0.0/24", "front")
    daemon.cli("run", "-d", "--name", "web", "--network", "front", "--", "sleep", "300")
    daemon.cli("run", "-d", "--name", "hosted", "--network", "host", "--", "sleep", "300")
    before = daemon.cli("network", "ls", "--no-trunc").stdout

    cases = {
        ("network", "inspect", "nowhere"): "network nowhere not found",
        ("network", "rm", "bridge"): "bridge is a pre-defined network and cannot be removed",
        ("network", "rm", "front"): "has active endpoints (web)",
        ("network", "create", "front"): "network with name front already exists",
        ("network", "create", "--subnet", "10.61.0.0/25", "overlap"): "overlaps",
        ("network", "create", "--ipv6", "six"): "IPv6 is not supported yet",
        ("network", "connect", "front", "nobody"): "No such container: nobody",
        ("network", "connect", "nowhere", "web"): "network nowhere not found",
        ("network", "connect", "front", "hosted"): "host network",
        ("network", "disconnect", "bridge", "web"): "is not connected to network bridge",
    }
    for args, message in cases.items():
        failed = same_output(daemon, *args)
        assert failed.returncode != 0 and message in failed.stderr, (args, failed.stderr)

    assert daemon.cli("network", "ls", "--no-trunc").stdout == before
    daemon.cli("rm", "-f", "web", "hosted")


def test_inspect_format_templates_print_what_dockers_print(daemon: Daemon) -> None:
    daemon.cli("network", "create", "--subnet", "10.62.0.0/24", "--label", "tier=front",
               "-o", "com.docker.network.driver.mtu=1400", "front")  # fmt: skip
    for name in ("web", "db"):
        daemon.cli("run", "-d", "--name", name, "--network", "front", "--", "sleep", "300")

    network_templates = [
        "{{.Name}} {{.Driver}} {{.Scope}} {{.Internal}}",
        "{{json .IPAM}}",
        "{{range .IPAM.Config}}{{.Subnet}}{{end}}",
        "{{range .Containers}}{{.Name}}={{.IPv4Address}} {{end}}",
        '{{index .Options "com.docker.network.driver.mtu"}}',
        "{{.Labels}} {{len .Containers}}",
        "{{json .Labels}}",
        "{{if .Internal}}internal{{else}}routed{{end}}",
    ]
    for template in network_templates:
        shown = same_output(daemon, "network", "inspect", "-f", template, "front", "bridge")
        assert shown.returncode == 0 and shown.stdout.count("\n") == 2, (template, shown)

    container_templates = [
        "{{.Name}} {{.State.Status}} {{.State.Running}}",
        "{{.NetworkSettings.Networks.front.IPAddress}}",
        "{{range $name, $settings := .NetworkSettings.Networks}}{{$name}}"
        " {{$settings.IPAddress}}/{{$settings.IPPrefixLen}}{{end}}",
        "{{.HostConfig.NetworkMode}} {{json .Config.Cmd}}",
    ]
    for template in container_templates:
        shown = same_output(daemon, "inspect", "--type", "container", "-f", template, "web", "db")
        assert shown.returncode == 0 and shown.stdout.count("\n") == 2, (template, shown)

    daemon.cli("rm", "-f", "web", "db")


def test_the_docker_cli_negotiates_down_and_versions_out_of_range_are_refused(
    daemon: Daemon,
) -> None:
    """Regression: any /vN.NN prefix was served, 9.99 and 1.11 alike."""
    negotiated = daemon.docker("version", "--format", "{{.Client.APIVersion}}")
    assert negotiated.stdout.strip() == "1.41", negotiated.stdout
    assert daemon.docker("network", "ls", "-q").stdout.count("\n") == 3

    pinned = daemon.docker("network", "ls", env={"DOCKER_API_VERSION": "9.99"}, check=False)
    assert pinned.returncode != 0
    assert (
        "Error response from daemon: client version 9.99 is too new."
        " Maximum supported API version is 1.41"
    ) in pinned.stderr, pinned.stderr
    assert daemon.docker("network", "ls", env={"DOCKER_API_VERSION": "1.24"}).returncode == 0

    too_old = daemon.api("GET", "/v1.11/networks")
    assert too_old.status == 400
    assert too_old.json()["message"].startswith(
        "client version 1.11 is too old. Minimum supported API version is 1.12"
    ), too_old.json()


def wait_for_output(daemon: Daemon, name: str, wanted: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while wanted not in daemon.cli("logs", name).stdout:
        assert time.monotonic() < deadline, f"{name} did not print {wanted!r}"
        time.sleep(0.1)


def test_docker_logs_prints_what_nsnet_logs_prints(daemon: Daemon) -> None:
    """Regression: ``docker logs`` failed with 'Unrecognized input header: 111' (raw bytes
    where Docker's multiplexed frames belong)."""
    script = "echo one; echo two >&2; printf 'three\\nfour'; sleep 600"
    daemon.cli("run", "-d", "--name", "talker", "--", "sh", "-c", script)
    wait_for_output(daemon, "talker", "four")

    # stdout and stderr are kept in one file: all of it comes as stdout, in the order written.
    shown = same_output(daemon, "logs", "talker")
    assert (shown.returncode, shown.stdout, shown.stderr) == (0, "one\ntwo\nthree\nfour", "")
    for tail, expected in (
        ("1", "four"),
        ("2", "three\nfour"),
        ("0", ""),
        ("all", "one\ntwo\nthree\nfour"),
    ):
        shown = same_output(daemon, "logs", "--tail", tail, "talker")
        assert shown.stdout == expected, tail
    assert same_output(daemon, "logs", "-n", "3", "talker").stdout == "two\nthree\nfour"

    # What is not kept is refused in the daemon's words, through both clients.
    refused = same_output(daemon, "logs", "--timestamps", "talker")
    assert refused.returncode == 1 and "cannot show timestamps" in refused.stderr
    missing = same_output(daemon, "logs", "nobody")
    assert "No such container: nobody" in missing.stderr

    daemon.cli("rm", "-f", "talker")


def start_following(daemon: Daemon, client: str, name: str) -> subprocess.Popen:
    """``docker logs -f NAME`` or ``nsnet logs -f NAME`` in the background."""
    if client == "docker":
        argv = ["docker", "-H", f"unix://{daemon.socket}", "logs", "-f", name]
        environment = docker_cli_environment()
    else:
        argv = daemon.nsenter_argv(*program_argv("nsnet", "nsnet.cli"), "logs", "-f", name)
        environment = daemon.environment()
    return subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=environment, text=True
    )


def read_line(process: subprocess.Popen, timeout: float = 10) -> str:
    ready, _, _ = select.select([process.stdout], [], [], timeout)
    assert ready, f"no output from {process.args} in {timeout} s"
    return process.stdout.readline()


def test_logs_follow_streams_until_the_container_exits(daemon: Daemon, tmp_path: Path) -> None:
    """``docker logs -f`` and ``nsnet logs -f`` show new output as it comes and end by
    themselves once the container's process has exited."""
    go = tmp_path / "go"
    script = f"echo start; while [ ! -e {go} ]; do sleep 0.1; done; echo done; exit 3"
    daemon.cli("run", "-d", "--name", "waiter", "--", "sh", "-c", script)
    wait_for_output(daemon, "waiter", "start")

    followers = {
        client: start_following(daemon, client, "waiter") for client in ("docker", "nsnet")
    }
    try:
        for client, process in followers.items():
            assert read_line(process) == "start\n", client
            time.sleep(0.5)
            assert process.poll() is None, f"{client} logs -f ended while the container ran"

        go.touch()
        for client, process in followers.items():
            assert read_line(process) == "done\n", client
            stdout, stderr = process.communicate(timeout=10)
            assert (process.returncode, stdout, stderr) == (0, "", ""), client
    finally:
        for process in followers.values():
            if process.poll() is None:
                process.kill()
                process.wait()

    state = json.loads(daemon.cli("inspect", "waiter").stdout)[0]["State"]
    assert (state["Status"], state["ExitCode"]) == ("exited", 3)
    # A stopped container has nothing to follow: the answer ends at once with what was kept.
    assert daemon.docker("logs", "-f", "--tail", "1", "waiter", timeout=10).stdout == "done\n"
    daemon.cli("rm", "-f", "waiter")


def test_a_followed_log_ends_when_the_daemon_stops(daemon: Daemon) -> None:
    daemon.cli("run", "-d", "--name", "sleeper", "--", "sh", "-c", "echo up; sleep 600")
    wait_for_output(daemon, "sleeper", "up")
    follower = start_following(daemon, "docker", "sleeper")
    try:
        assert read_line(follower) == "up\n"

        started = time.monotonic()
        daemon.stop()
        follower.communicate(timeout=10)
        # Without ending the stream, the daemon would wait its 5 s grace time for it.
        assert time.monotonic() - started < 4
    finally:
        if follower.poll() is None:
            follower.kill()
            follower.wait()
