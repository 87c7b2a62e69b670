"""nsnet's commands against a real server over a fake engine: output, errors, exit status.

``main()`` runs in this process; ``run`` and ``exec`` spawn the fake engine's argv (``env``),
so output is captured at the file-descriptor level.
"""

import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from test_api_fakes import FakeEngine, served

from nsnet import cli
from nsnet.paths import Paths
from nsnet.sandbox import Sandboxes


@pytest.fixture
def engine() -> FakeEngine:
    return FakeEngine()


@pytest.fixture
def nsnet(engine: FakeEngine, capfd: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch):
    """``nsnet(*args)`` runs one command: (exit status, stdout, stderr)."""
    monkeypatch.setenv("NSNET_AUTOSTART", "0")
    with served(engine) as path:

        def invoke(*args: str) -> tuple[int, str, str]:
            capfd.readouterr()
            status = cli.main(["-H", f"unix://{path}", *args])
            sys.stdout.flush()
            output = capfd.readouterr()
            return status, output.out, output.err

        yield invoke


def test_network_ls_lists_the_builtin_networks(nsnet) -> None:
    status, out, err = nsnet("network", "ls")

    assert status == 0 and err == ""
    lines = out.splitlines()
    assert lines[0] == "NETWORK ID     NAME      DRIVER    SCOPE"
    assert [line.split()[1] for line in lines[1:]] == ["bridge", "host", "none"]


def test_network_create_prints_the_id_and_a_duplicate_is_an_error(nsnet) -> None:
    status, out, _ = nsnet("network", "create", "--subnet", "10.9.0.0/24", "front")
    assert status == 0 and len(out.strip()) == 64

    status, out, err = nsnet("network", "create", "front")
    assert status == 1 and out == ""
    assert err == "Error response from daemon: network with name front already exists\n"


def test_network_inspect_prints_what_it_found_and_names_what_it_did_not(nsnet) -> None:
    status, out, err = nsnet("network", "inspect", "bridge", "nope")

    assert status == 1
    assert out.startswith('[\n    {\n        "Name": "bridge",\n        "Id": ')
    assert err == "Error response from daemon: network nope not found\n"


def test_network_rm_removes_what_it_can_and_fails_for_the_rest(nsnet) -> None:
    nsnet("network", "create", "front")

    status, out, err = nsnet("network", "rm", "front", "bridge")

    assert status == 1 and out == "front\n"
    assert "bridge is a pre-defined network and cannot be removed" in err


def test_network_prune_force_prints_the_deleted_networks(nsnet) -> None:
    nsnet("network", "create", "unused")

    status, out, _ = nsnet("network", "prune", "-f")

    assert status == 0 and out == "Deleted Networks:\nunused\n\n"
    assert nsnet("network", "prune", "-f")[1] == ""


def test_network_prune_passes_its_filters(nsnet) -> None:
    nsnet("network", "create", "--label", "keep=yes", "kept")
    nsnet("network", "create", "--label", "keep=no", "dropped")

    status, out, _ = nsnet("network", "prune", "-f", "--filter", "label!=keep=yes")
    assert status == 0 and out == "Deleted Networks:\ndropped\n\n"
    status, _, err = nsnet("network", "prune", "-f", "--filter", "until=soon")
    assert status == 1 and "invalid filter 'until=soon'" in err
    assert nsnet("network", "ls", "-q", "--filter", "name=kept")[1].strip()


def test_ps_filters_as_docker_ps(nsnet) -> None:
    nsnet("create", "--name", "web", "--label", "tier=web", "--", "true")
    nsnet("create", "--name", "db", "--", "true")

    status, out, _ = nsnet("ps", "-a", "--format", "{{.Names}}", "-f", "label=tier=web")
    assert status == 0 and out == "web\n"
    status, out, _ = nsnet("ps", "--format", "{{.Names}}", "--filter", "status=created")
    assert status == 0 and sorted(out.split()) == ["db", "web"]
    status, _, err = nsnet("ps", "-f", "health=healthy")
    assert status == 1 and "filter 'health' is not supported" in err


def test_connect_with_ip_and_alias_then_disconnect(nsnet, engine: FakeEngine) -> None:
    nsnet("network", "create", "--subnet", "10.9.0.0/24", "front")
    nsnet("create", "--name", "c1", "--", "true")

    status, _, err = nsnet(
        "network", "connect", "--ip", "10.9.0.7", "--alias", "web", "front", "c1"
    )
    assert status == 0, err
    endpoint = next(e for e in engine.endpoints if str(e.address) == "10.9.0.7")
    assert endpoint.aliases == ["web"] and endpoint.static_address

    assert nsnet("network", "disconnect", "front", "c1")[0] == 0
    status, _, err = nsnet("network", "disconnect", "front", "c1")
    assert status == 1 and "is not connected to network front" in err


def test_run_in_the_foreground_returns_the_commands_status(nsnet, engine: FakeEngine) -> None:
    status, out, err = nsnet(
        "run", "--name", "c1", "sh", "-c", "echo in $NSNET_FAKE_CONTAINER; exit 3"
    )

    assert status == 3, err
    assert out == "in c1\n"
    container = engine.get_container("c1")
    assert container.state == "exited" and container.exit_code == 3
    assert engine.calls.index("attach_process") < engine.calls.index("process_exited")


def test_run_rm_removes_the_container_afterwards(nsnet, engine: FakeEngine) -> None:
    status, _, _ = nsnet("run", "--rm", "--name", "c1", "--", "true")

    assert status == 0 and engine.containers == {}


def test_a_command_killed_by_a_signal_exits_128_plus_the_signal(nsnet) -> None:
    status, _, _ = nsnet("run", "--", "sh", "-c", "kill -TERM $$")

    assert status == 128 + signal.SIGTERM


def test_run_failures_exit_125(nsnet) -> None:
    status, out, err = nsnet("run", "--network", "nonet", "true")

    assert status == 125 and out == ""
    assert err == "Error response from daemon: network nonet not found\n"


def test_run_detached_prints_the_id_and_ps_shows_it(nsnet) -> None:
    status, out, _ = nsnet("run", "-d", "--name", "c1", "-p", "8080:80", "sleep", "100")
    container_id = out.strip()
    assert status == 0 and len(container_id) == 64

    status, out, _ = nsnet("ps")
    assert status == 0
    header, row = out.splitlines()
    assert header.split()[:4] == ["CONTAINER", "ID", "NAMES", "COMMAND"]
    assert row.startswith(container_id[:12] + "   c1 ")
    assert '"sleep 100"' in row and "0.0.0.0:8080->80/tcp" in row

    assert nsnet("ps", "-q")[1] == container_id[:12] + "\n"
    assert nsnet("port", "c1")[1] == "80/tcp -> 0.0.0.0:8080\n"


def test_ps_all_shows_created_containers(nsnet) -> None:
    nsnet("create", "--name", "c1", "true")

    assert nsnet("ps", "-q")[1] == ""
    assert "Created" in nsnet("ps", "-a")[1]


def test_exec_passes_the_exit_status_through(nsnet) -> None:
    nsnet("run", "-d", "--name", "c1", "sleep", "100")

    status, out, _ = nsnet("exec", "c1", "--", "sh", "-c", "echo hi; exit 4")

    assert status == 4 and out == "hi\n"


def test_exec_needs_a_running_container(nsnet) -> None:
    nsnet("create", "--name", "c1", "true")

    status, _, err = nsnet("exec", "c1", "true")

    assert status == 1
    assert err.startswith("Error response from daemon: Container ") and "is not running" in err


def test_commands_stop_parsing_options_at_the_command(nsnet) -> None:
    status, out, _ = nsnet("run", "--rm", "sh", "-c", "echo -n x")

    assert status == 0 and out == "x"


def test_stop_and_rm_print_the_names_they_acted_on(nsnet, engine: FakeEngine) -> None:
    nsnet("run", "-d", "--name", "c1", "sleep", "100")

    status, _, err = nsnet("rm", "c1")
    assert status == 1 and "You cannot remove a running container" in err
    assert nsnet("stop", "c1")[1] == "c1\n"
    assert nsnet("rm", "c1")[1] == "c1\n"
    assert engine.containers == {}


def test_inspect_finds_containers_then_networks(nsnet) -> None:
    nsnet("create", "--name", "c1", "true")

    status, out, err = nsnet("inspect", "c1", "bridge", "zz")

    assert status == 1
    assert '"Name": "/c1"' in out and '"Name": "bridge"' in out
    assert err == "Error: No such object: zz\n"


def test_logs_prints_the_output_as_bytes(nsnet) -> None:
    nsnet("run", "-d", "--name", "c1", "sleep", "100")

    assert nsnet("logs", "c1") == (0, "output of c1\n", "")


def test_logs_tail_shows_the_last_lines(nsnet, engine: FakeEngine) -> None:
    nsnet("run", "-d", "--name", "c1", "sleep", "100")
    engine.write_output("c1", "two\nthree \u00e9\n".encode())

    assert nsnet("logs", "--tail", "1", "c1") == (0, "three \u00e9\n", "")
    assert nsnet("logs", "-n", "2", "c1")[1] == "two\nthree \u00e9\n"
    assert nsnet("logs", "--tail", "0", "c1")[1] == ""
    assert nsnet("logs", "--tail", "all", "c1")[1] == "output of c1\ntwo\nthree \u00e9\n"
    status, _, err = nsnet("logs", "--tail", "ten", "c1")
    assert status == 1 and "invalid query parameter 'tail': 'ten'" in err, err


def test_logs_follow_ends_when_the_process_exits(nsnet, engine: FakeEngine) -> None:
    nsnet("run", "-d", "--name", "c1", "sleep", "100")

    def finish() -> None:
        time.sleep(0.5)
        engine.write_output("c1", b"last\n")
        engine.process_exited("c1", 0)

    finisher = threading.Thread(target=finish)
    finisher.start()
    try:
        result = nsnet("logs", "-f", "c1")
    finally:
        finisher.join()

    assert result == (0, "output of c1\nlast\n", "")


def test_logs_from_a_docker_daemon_split_stdout_and_stderr(
    capfd: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Against a daemon that keeps the streams apart (dockerd), frames of stream 2 go to
    stderr, as with the docker CLI; the last frame may come in pieces."""
    from nsnet.logstream import STDERR, STDOUT, frame

    body = frame(STDOUT, b"out\n") + frame(STDERR, b"err\n") + frame(STDOUT, b"end\n")
    answers = {
        "/containers/web/json": b'{"Id": "' + b"f" * 64 + b'", "Config": {"Tty": false}}',
        f"/containers/{'f' * 64}/logs": body,
    }
    path = str(tmp_path / "docker.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(2)
    asked = []

    def serve() -> None:
        for _ in answers:
            connection, _ = listener.accept()
            with connection:
                target = connection.recv(65536).split(b" ")[1].decode()
                asked.append(target)
                answer = answers[target.split("?")[0]]
                connection.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
                for start in range(0, len(answer), 5):
                    piece = answer[start : start + 5]
                    connection.sendall(b"%x\r\n%s\r\n" % (len(piece), piece))
                connection.sendall(b"0\r\n\r\n")

    monkeypatch.setenv("NSNET_AUTOSTART", "0")
    server = threading.Thread(target=serve)
    server.start()
    try:
        capfd.readouterr()
        status = cli.main(["-H", f"unix://{path}", "logs", "web"])
    finally:
        server.join(timeout=5)
        listener.close()
    output = capfd.readouterr()

    assert (status, output.out, output.err) == (0, "out\nend\n", "err\n")
    assert asked[1] == f"/containers/{'f' * 64}/logs?stdout=1&stderr=1&tail=all"


def test_logs_of_what_nsnet_does_not_keep_is_the_daemons_error(nsnet) -> None:
    nsnet("run", "-d", "--name", "c1", "sleep", "100")

    status, out, err = nsnet("logs", "-t", "c1")

    assert (status, out) == (1, "")
    assert err.startswith("Error response from daemon: cannot show timestamps"), err
    assert nsnet("logs", "nobody")[2] == "Error response from daemon: No such container: nobody\n"


def test_a_flag_error_exits_125_as_docker_does(nsnet) -> None:
    status, _, err = nsnet("network", "ls", "--bogus")

    assert status == 125
    assert err == "Error: No such option '--bogus'.\nSee 'nsnet network ls --help'.\n"


def test_info_shows_the_daemons_paths(nsnet) -> None:
    status, out, _ = nsnet("info")

    assert status == 0
    assert " State directory: /fake/lib" in out and " API version: 1.41" in out


def test_info_shows_the_firewall_and_every_warning(nsnet) -> None:
    status, out, err = nsnet("info")

    assert status == 0
    assert "  Tables: inet nsnet, bridge nsnet\n" in out
    assert "  Rules: 12\n" in out
    assert "   inet nsnet bridges: 1\n" in out
    assert " Warnings: 1\n" in out
    assert err == "WARNING: a fake warning\n"


def test_without_a_daemon_the_error_names_the_socket(
    tmp_path: Path, capfd: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NSNET_AUTOSTART", "0")

    status = cli.main(["-H", f"unix://{tmp_path}/absent.sock", "network", "ls"])

    assert status == 1
    assert capfd.readouterr().err.startswith(
        f"Error: cannot connect to nsnetd at unix://{tmp_path}/absent.sock"
    )


FAKE_DAEMON = textwrap.dedent(
    """
    import os, socket, sys
    sys.path.insert(0, {tests!r})
    import uvicorn
    from test_api_fakes import FakeEngine
    from nsnet.api.app import create_app

    path, pid_file, log_dir = sys.argv[1], sys.argv[2], sys.argv[3]
    with open(pid_file, "w") as file:
        file.write(str(os.getpid()))
    print("fake nsnetd starting", flush=True)
    if os.path.exists(path):
        os.unlink(path)  # a stale socket, as the real nsnetd replaces it
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(16)
    application = create_app(FakeEngine(log_dir=log_dir))
    config = uvicorn.Config(application, log_config=None, lifespan="on")
    uvicorn.Server(config).run(sockets=[listener])
    """
)


@pytest.mark.parametrize("socket_left", [False, True], ids=["no socket", "stale socket"])
def test_an_absent_daemon_is_started_in_the_background(
    tmp_path: Path, capfd: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch, socket_left
) -> None:
    """Also when a daemon killed with SIGKILL left its socket file, which now refuses."""
    monkeypatch.setenv("NSNET_ROOT", str(tmp_path / "root"))
    monkeypatch.delenv("NSNET_AUTOSTART", raising=False)
    socket_path = tmp_path / "nsnetd.sock"
    pid_file = tmp_path / "fake.pid"
    script = FAKE_DAEMON.format(tests=str(Path(__file__).parent))
    repository = str(Path(__file__).resolve().parents[2])
    monkeypatch.setenv("PYTHONPATH", repository)
    monkeypatch.setattr(
        cli,
        "daemon_argv",
        lambda path, paths: [sys.executable, "-c", script, path, str(pid_file), str(tmp_path)],
    )
    if socket_left:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as dead:
            dead.bind(str(socket_path))
        assert socket_path.exists()

    try:
        status = cli.main(["-H", f"unix://{socket_path}", "network", "ls", "-q"])
        output = capfd.readouterr()
    finally:
        stop_fake_daemon(pid_file)

    log_path = tmp_path / "root" / "lib" / "nsnetd.log"
    assert status == 0, output.err
    assert output.err == f"nsnetd is not running: starting it (log: {log_path})\n"
    assert len(output.out.splitlines()) == 3
    assert "fake nsnetd starting" in log_path.read_text()


def stop_fake_daemon(pid_file: Path) -> None:
    """Stop the fake daemon the test started (by the pid it wrote), waiting for it to go."""
    deadline = time.monotonic() + 5
    while not pid_file.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    if not pid_file.exists():
        return
    pid = int(pid_file.read_text())
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    # The CLI started it as our child: reap it, or it would linger as a zombie.
    while time.monotonic() < deadline + 5:
        try:
            if os.waitpid(pid, os.WNOHANG) != (0, 0):
                return
        except ChildProcessError:
            return
        time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)


def test_programs_started_from_a_directory_with_an_nsnet_folder_are_still_nsnet(
    tmp_path: Path,
) -> None:
    """An 'nsnet' package in the current directory must not replace the installed one."""
    impostor = tmp_path / "nsnet"
    impostor.mkdir()
    (impostor / "__init__.py").write_text("")
    for module in ("daemon", "enter"):
        (impostor / f"{module}.py").write_text("import sys\nprint('impostor')\nsys.exit(3)\n")
    paths = Paths(state_dir=tmp_path / "lib", run_dir=tmp_path / "run")
    repository = str(Path(__file__).resolve().parents[2])
    environment = {**os.environ, "PYTHONPATH": repository}

    for argv in (
        cli.daemon_argv(str(tmp_path / "nsnetd.sock"), paths) + ["--help"],
        Sandboxes(paths).enter_argv(["true"])[:-2] + ["--help"],
    ):
        completed = subprocess.run(
            argv, cwd=tmp_path, env=environment, capture_output=True, text=True, timeout=30
        )
        assert "impostor" not in completed.stdout, argv
        assert completed.returncode == 0, completed.stderr
