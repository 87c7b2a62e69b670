"""nsnet.api.app over a fake engine, through a real server on a unix socket and the client."""

import http.client
import json
import logging
import socket
import struct
import threading
import time
from urllib.parse import quote

import pytest
from fastapi.routing import APIRoute
from test_api_fakes import FakeEngine, served

from nsnet.api.app import create_app, version_problem
from nsnet.client import Client
from nsnet.errors import Conflict, Forbidden, InvalidArgument, NotFound


@pytest.fixture
def engine() -> FakeEngine:
    return FakeEngine()


@pytest.fixture
def client(engine: FakeEngine):
    with served(engine) as path:
        yield Client(path, timeout=10)


def raw(client: Client, method: str, path: str, body: bytes | None = None):
    """One request that returns the answer whatever its status: (status, headers, body)."""
    connection = http.client.HTTPConnection("localhost", timeout=10)
    connection.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    connection.sock.connect(client.socket_path)
    try:
        connection.request(method, path, body=body)
        answer = connection.getresponse()
        return answer.status, dict(answer.getheaders()), answer.read()
    finally:
        connection.close()


def test_ping_answers_ok_with_dockers_headers(client: Client) -> None:
    status, headers, body = raw(client, "GET", "/_ping")

    assert (status, body) == (200, b"OK")
    assert headers["api-version"] == "1.41"
    assert headers["ostype"] == "linux"
    assert headers["docker-experimental"] == "false"
    assert headers["server"].startswith("nsnet/")


def test_ping_answers_head_without_a_body(client: Client) -> None:
    status, headers, body = raw(client, "HEAD", "/_ping")

    assert status == 200 and body == b"" and headers["api-version"] == "1.41"


# Issue 2, point 6: the Docker network endpoints, each with and without a /v1.NN prefix.
DOCKER_NETWORK_ROUTES = {
    ("GET", "/_ping"),
    ("GET", "/version"),
    ("GET", "/networks"),
    ("GET", "/networks/{ref}"),
    ("POST", "/networks/create"),
    ("DELETE", "/networks/{ref}"),
    ("POST", "/networks/{ref}/connect"),
    ("POST", "/networks/{ref}/disconnect"),
    ("POST", "/networks/prune"),
}
PAGE_NOT_FOUND = (404, b'{"message":"page not found"}')


def served_routes() -> list[tuple[str, str]]:
    """Every (method, path template) the application serves, read from the application."""
    application = create_app(FakeEngine()).app
    return sorted(
        (method, route.path)
        for route in application.routes
        if isinstance(route, APIRoute)
        for method in route.methods
    )


def test_the_served_routes_include_dockers_network_endpoints() -> None:
    # The test below covers what served_routes() finds; this keeps it from finding too little.
    assert DOCKER_NETWORK_ROUTES <= set(served_routes())


@pytest.mark.parametrize("prefix", ["/v1.41", "/v1.24", "/v1.12", "/v1.41.0"])
def test_every_route_is_served_with_and_without_a_version_prefix(
    client: Client, prefix: str
) -> None:
    # A request that changes nothing: a container or network that does not exist, a body that
    # is not JSON. Each route answers it from its handler (a 4xx of its own, or its list),
    # never "page not found", and the same with the prefix as without it.
    problems = []
    for method, template in served_routes():
        path = template.replace("{ref}", "ghost")
        body = b"{" if method == "POST" else None
        status, _, answer = raw(client, method, path, body)
        prefixed_status, headers, prefixed_answer = raw(client, method, prefix + path, body)

        if (status, answer) == PAGE_NOT_FOUND:
            problems.append(f"{method} {path}: not served")
        elif (prefixed_status, prefixed_answer) != (status, answer):
            problems.append(
                f"{method} {prefix}{path}: {prefixed_status} {prefixed_answer!r}, "
                f"not {status} {answer!r} as without the prefix"
            )
        if headers.get("api-version") != "1.41":
            problems.append(f"{method} {prefix}{path}: no API-Version header")

    assert not problems, "\n".join(problems)


@pytest.mark.parametrize(
    ("version", "message"),
    [
        ("9.99", "client version 9.99 is too new. Maximum supported API version is 1.41"),
        ("1.42", "client version 1.42 is too new. Maximum supported API version is 1.41"),
        ("1.41.1", "client version 1.41.1 is too new. Maximum supported API version is 1.41"),
        ("2", "client version 2 is too new. Maximum supported API version is 1.41"),
        (
            "1.11",
            "client version 1.11 is too old. Minimum supported API version is 1.12,"
            " please upgrade your client to a newer version",
        ),
        (
            "0.9",
            "client version 0.9 is too old. Minimum supported API version is 1.12,"
            " please upgrade your client to a newer version",
        ),
    ],
)
def test_a_version_prefix_out_of_range_is_refused_as_docker_refuses_it(
    client: Client, engine: FakeEngine, version: str, message: str
) -> None:
    """Regression: /v9.99/networks and /v1.11/networks used to answer like /v1.41/networks."""
    for method, path in (
        ("GET", f"/v{version}/networks"),
        ("GET", f"/v{version}/_ping"),
        ("POST", f"/v{version}/networks/create"),
    ):
        status, headers, body = raw(client, method, path, body=b'{"Name": "refused"}')

        assert status == 400, (method, path)
        assert json.loads(body) == {"message": message}
        assert headers["api-version"] == "1.41"  # so that a client can negotiate down
    assert "refused" not in [network.name for network in engine.networks.values()]
    with pytest.raises(InvalidArgument, match=f"client version {version} is too"):
        client.get(f"/v{version}/version")


def test_versions_compare_number_by_number() -> None:
    assert version_problem("1.5") is not None  # 5 < 12: older than the minimum
    assert version_problem("1.12") is None and version_problem("1.41.0") is None
    assert version_problem("1.100") is not None


def test_version_claims_api_1_41(client: Client) -> None:
    version = client.get("/version")

    assert version["ApiVersion"] == "1.41" and version["MinAPIVersion"] == "1.12"
    assert version["Os"] == "linux" and version["Version"]


def test_a_network_is_created_inspected_and_removed(client: Client, engine: FakeEngine) -> None:
    status, body = client.request(
        "POST",
        "/networks/create",
        body={"Name": "front", "IPAM": {"Config": [{"Subnet": "10.9.0.0/24"}]}},
    )
    created = json.loads(body)
    assert status == 201 and created["Warning"] == ""

    network = client.get(f"/networks/{created['Id'][:10]}")
    assert network["Name"] == "front" and network["IPAM"]["Config"] == [{"Subnet": "10.9.0.0/24"}]

    status, _ = client.request("DELETE", "/networks/front")
    assert status == 204
    with pytest.raises(NotFound, match="network front not found"):
        client.get("/networks/front")


def test_errors_carry_the_engines_status_and_message(client: Client) -> None:
    client.post("/networks/create", {"Name": "front"})

    with pytest.raises(Conflict, match="network with name front already exists"):
        client.post("/networks/create", {"Name": "front"})
    with pytest.raises(Forbidden, match="bridge is a pre-defined network and cannot be removed"):
        client.delete("/networks/bridge")
    with pytest.raises(NotFound, match="network nope not found"):
        client.delete("/networks/nope")


@pytest.mark.parametrize(
    "body, message",
    [
        (b'{"Name": "x", "Internal": "yes"}', "field 'Internal'"),
        (b'{"Name": "x", "Labels": {"a": 1}}', "field 'Labels.a'"),
        (b'{"Internal": true}', "field 'Name'"),
        (b'{"Name": "x",', "not valid JSON"),
        (b'{"Name": "x", "IPAM": {"Config": [{"Subnet": "10.1.0.0/99"}]}}', "Subnet"),
    ],
)
def test_bad_bodies_are_400_naming_the_field(client: Client, body: bytes, message: str) -> None:
    status, _, answer = raw(client, "POST", "/networks/create", body)

    assert status == 400
    assert message in json.loads(answer)["message"]


def test_an_unknown_route_is_a_404_message(client: Client) -> None:
    status, _, answer = raw(client, "GET", "/no/such/thing")

    assert status == 404 and json.loads(answer) == {"message": "page not found"}


def test_an_unexpected_engine_failure_is_a_500_message(client: Client, engine: FakeEngine) -> None:
    def broken() -> list:
        raise RuntimeError("the store is on fire")

    engine.list_networks = broken

    status, _, answer = raw(client, "GET", "/networks")

    assert status == 500
    assert "the store is on fire" in json.loads(answer)["message"]


def test_list_filters_are_applied(client: Client) -> None:
    client.post("/networks/create", {"Name": "front", "Labels": {"tier": "web"}})

    def listed(filters: dict) -> list[str]:
        answer = client.get("/networks", {"filters": json.dumps(filters)})
        return sorted(network["Name"] for network in answer)

    assert listed({"type": {"custom": True}}) == ["front"]
    assert listed({"label": ["tier=web"]}) == ["front"]
    assert listed({"driver": {"null": True}}) == ["none"]
    with pytest.raises(InvalidArgument, match="invalid filter 'colour'"):
        listed({"colour": ["red"]})


def test_the_list_leaves_containers_empty_and_inspect_fills_them(client: Client) -> None:
    client.post("/containers/create", {"Cmd": ["sleep", "5"]}, query={"name": "c1"})

    listed = {network["Name"]: network for network in client.get("/networks")}
    inspected = client.get("/networks/bridge")

    assert listed["bridge"]["Containers"] == {}
    assert [entry["Name"] for entry in inspected["Containers"].values()] == ["c1"]


def test_connect_and_disconnect(client: Client, engine: FakeEngine) -> None:
    client.post(
        "/networks/create", {"Name": "front", "IPAM": {"Config": [{"Subnet": "10.9.0.0/24"}]}}
    )
    client.post("/containers/create", {"Cmd": ["true"]}, query={"name": "c1"})

    endpoint_config = {"IPAMConfig": {"IPv4Address": "10.9.0.50"}, "Aliases": ["web"]}
    client.post("/networks/front/connect", {"Container": "c1", "EndpointConfig": endpoint_config})
    endpoint = client.get("/containers/c1/json")["NetworkSettings"]["Networks"]["front"]
    assert endpoint["IPAddress"] == "10.9.0.50" and endpoint["Aliases"] == ["web"]

    client.post("/networks/front/disconnect", {"Container": "c1", "Force": False})
    assert "front" not in client.get("/containers/c1/json")["NetworkSettings"]["Networks"]
    with pytest.raises(NotFound, match="not connected"):
        client.post("/networks/front/disconnect", {"Container": "c1"})


def test_prune_reports_the_names_it_removed(client: Client) -> None:
    client.post("/networks/create", {"Name": "unused"})

    assert client.post("/networks/prune") == {"NetworksDeleted": ["unused"]}
    assert client.post("/networks/prune") == {"NetworksDeleted": []}


def create_stubborn_container(client: Client) -> None:
    """A running fake container whose process ignores SIGTERM."""
    client.post(
        "/containers/create",
        {"Cmd": ["sleep", "100"], "Labels": {"fake.ignores": "SIGTERM"}},
        query={"name": "stubborn"},
    )
    client.request("POST", "/containers/stubborn/start")


def sent_signals(engine: FakeEngine) -> list[str]:
    return [call for call in engine.calls if call.startswith("signal_container")]


def test_stop_kills_after_the_timeout(
    client: Client, engine: FakeEngine, caplog: pytest.LogCaptureFixture
) -> None:
    create_stubborn_container(client)
    caplog.set_level(logging.INFO, logger="nsnet.api.app")

    started = time.monotonic()
    status, _ = client.request("POST", "/containers/stubborn/stop", query={"t": "1"})
    elapsed = time.monotonic() - started

    assert status == 204
    assert client.get("/containers/stubborn/json")["State"]["ExitCode"] == 137
    assert "stop_container" not in engine.calls
    assert sent_signals(engine) == ["signal_container 15", "signal_container 9"]
    # The SIGKILL waited the grace period asked for (t=1), not the default of 10 s.
    assert elapsed >= 1
    assert "no exit 1 s after SIGTERM, killing it" in caplog.text


def test_a_stop_waiting_for_the_process_serves_other_requests_meanwhile(
    client: Client, engine: FakeEngine
) -> None:
    """The wait is the event loop's, not the engine thread's: other requests go on.

    With ``t=-1`` a stop waits for ever for a process that ignores SIGTERM; here it can only
    end because a request sent while it waits (the process's exit) is served.
    """
    create_stubborn_container(client)
    stopped: list[int] = []

    def stop() -> None:
        stopped.append(client.request("POST", "/containers/stubborn/stop", query={"t": "-1"})[0])

    stopper = threading.Thread(target=stop)
    stopper.start()
    try:
        deadline = time.monotonic() + 10
        while "signal_container 15" not in engine.calls and time.monotonic() < deadline:
            time.sleep(0.01)
        assert sent_signals(engine) == ["signal_container 15"], "the stop never began"

        assert client.ping()
        assert client.get("/containers/stubborn/json")["State"]["Running"] is True
        assert stopped == [], "the stop returned while the process still ran"
    finally:
        client.post("/nsnet/containers/stubborn/exited", {"ExitCode": 143})
        stopper.join(timeout=10)

    assert stopped == [204]
    assert client.get("/containers/stubborn/json")["State"]["ExitCode"] == 143
    assert sent_signals(engine) == ["signal_container 15"]


def test_info_carries_the_engines_warnings_and_firewall(client: Client) -> None:
    info = client.get("/info")

    assert info["Warnings"] == ["a fake warning"]
    assert info["Nsnet"]["StateDirectory"] == "/fake/lib"
    assert info["Nsnet"]["Firewall"] == {
        "Tables": ["inet nsnet", "bridge nsnet"],
        "Rules": 12,
        "Elements": {"inet nsnet bridges": 1},
    }


@pytest.mark.parametrize(
    "body, message",
    [
        (b'{"Image": "busybox", "Cmd": ["true"]}', "nsnet has no images"),
        (b'{"Cmd": [""]}', "the program to run is an empty string"),
    ],
)
def test_containers_that_cannot_be_made_are_refused_at_create(
    client: Client, engine: FakeEngine, body: bytes, message: str
) -> None:
    status, _, answer = raw(client, "POST", "/containers/create?name=c1", body)

    assert status == 400 and message in json.loads(answer)["message"]
    assert engine.containers == {}


def test_container_list_filters(client: Client) -> None:
    client.post("/containers/create", {"Cmd": ["true"], "Labels": {"tier": "web"}}, {"name": "w"})
    client.post("/containers/create", {"Cmd": ["sleep", "5"]}, query={"name": "db"})
    client.request("POST", "/containers/db/start")

    def listed(filters, all: bool = False) -> list[str]:
        query = {"filters": json.dumps(filters), "all": "1" if all else None}
        return sorted(entry["Names"][0] for entry in client.get("/containers/json", query))

    assert listed({"name": ["db"]}) == ["/db"]
    assert listed({"name": ["^/w$"]}, all=True) == ["/w"]
    assert listed({"label": ["tier=web"]}, all=True) == ["/w"]
    assert listed({"status": ["created"]}) == ["/w"]  # a status filter lists every state
    assert listed({"network": ["bridge"]}, all=True) == ["/db", "/w"]
    assert listed({"network": ["front"]}, all=True) == []
    for filters, message in [
        ("garbage", "invalid filters 'garbage'"),
        ('{"colour": ["red"]}', "invalid filter 'colour'"),
        ('{"ancestor": ["busybox"]}', "filter 'ancestor' is not supported"),
        ('{"status": ["sleeping"]}', "Unrecognised filter value for status: sleeping"),
        ('{"exited": ["zero"]}', "invalid filter 'exited=zero'"),
    ]:
        status, _, answer = raw(client, "GET", f"/containers/json?filters={quote(filters)}")
        assert status == 400 and message in json.loads(answer)["message"], answer


def test_a_container_life_cycle(client: Client) -> None:
    created = client.post("/containers/create", {"Cmd": ["sleep", "5"]}, query={"name": "c1"})
    assert created["Warnings"] == []

    assert client.request("POST", "/containers/c1/start")[0] == 204
    assert client.request("POST", "/containers/c1/start")[0] == 304
    assert client.get("/containers/json")[0]["State"] == "running"
    assert client.request("POST", "/containers/c1/stop", query={"t": "1"})[0] == 204
    assert client.request("POST", "/containers/c1/stop")[0] == 304
    assert client.get("/containers/json") == []
    assert len(client.get("/containers/json", {"all": "1"})) == 1
    logs = client.request("GET", "/containers/c1/logs", query={"stdout": "1", "stderr": "1"})
    assert frames(logs[1]) == [(1, b"output of c1\n")]

    client.delete("/containers/c1")
    with pytest.raises(NotFound, match="No such container: c1"):
        client.get("/containers/c1/json")


def frames(body: bytes) -> list[tuple[int, bytes]]:
    """Docker's multiplexed stream read by hand: 8-byte headers (type, 0, 0, 0, length)."""
    found = []
    while body:
        assert body[1:4] == b"\0\0\0", body[:8]
        stream, length = body[0], struct.unpack(">I", body[4:8])[0]
        found.append((stream, body[8 : 8 + length]))
        assert len(body) >= 8 + length, "a frame cut short"
        body = body[8 + length :]
    return found


BOTH_STREAMS = {"stdout": "1", "stderr": "1"}


@pytest.fixture
def talker(client: Client, engine: FakeEngine) -> str:
    """A running container ``talker`` that wrote three lines, the last without its newline."""
    client.post("/containers/create", {"Cmd": ["talk"]}, query={"name": "talker"})
    client.post("/containers/talker/start")  # writes "output of talker\n"
    engine.write_output("talker", b"second line\nthird")
    return "talker"


def test_logs_without_a_tty_are_dockers_multiplexed_stream(client: Client, talker: str) -> None:
    """Regression: raw bytes made the docker CLI fail with 'Unrecognized input header: 111'."""
    status, headers, body = raw(client, "GET", "/v1.41/containers/talker/logs?stdout=1&stderr=1")

    assert status == 200
    assert headers["content-type"] == "application/vnd.docker.multiplexed-stream"
    assert body[:8] == b"\x01\0\0\0" + struct.pack(">I", len(body) - 8)
    assert frames(body) == [(1, b"output of talker\nsecond line\nthird")]


@pytest.mark.parametrize(
    ("tail", "shown"),
    [
        ("all", b"output of talker\nsecond line\nthird"),
        ("", b"output of talker\nsecond line\nthird"),
        ("-1", b"output of talker\nsecond line\nthird"),
        ("3", b"output of talker\nsecond line\nthird"),
        ("10", b"output of talker\nsecond line\nthird"),
        ("2", b"second line\nthird"),
        ("1", b"third"),
        ("0", b""),
    ],
)
def test_logs_tail_shows_the_last_lines(client: Client, talker: str, tail: str, shown: bytes):
    body = client.request("GET", "/containers/talker/logs", query={**BOTH_STREAMS, "tail": tail})

    assert b"".join(payload for _, payload in frames(body[1])) == shown


def test_logs_of_stdout_alone_carry_all_the_output_as_stdout(client: Client, talker: str) -> None:
    body = client.request("GET", "/containers/talker/logs", query={"stdout": "1", "tail": "1"})

    assert frames(body[1]) == [(1, b"third")]


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({}, "Bad parameters: you must choose at least one stream"),
        ({"stdout": "0", "stderr": "false"}, "Bad parameters: you must choose at least one"),
        ({"stderr": "1"}, "cannot show stderr alone: nsnet keeps a container's stdout and"),
        ({**BOTH_STREAMS, "timestamps": "1"}, "cannot show timestamps: nsnet does not record"),
        ({**BOTH_STREAMS, "since": "1700000000"}, "cannot select logs by time ('since')"),
        ({**BOTH_STREAMS, "until": "1700000000.5"}, "cannot select logs by time ('until')"),
        ({**BOTH_STREAMS, "since": "2026-01-01T00:00:00Z"}, "cannot select logs by time"),
        ({**BOTH_STREAMS, "tail": "ten"}, "invalid query parameter 'tail': 'ten' is neither"),
        ({**BOTH_STREAMS, "tail": "1.5"}, "invalid query parameter 'tail': '1.5' is neither"),
    ],
)
def test_logs_refuse_what_the_kept_output_cannot_give(
    client: Client, talker: str, query: dict, message: str
) -> None:
    with pytest.raises(InvalidArgument) as refused:
        client.request("GET", "/containers/talker/logs", query=query)

    assert str(refused.value).startswith(message)


def test_logs_accept_dockers_no_op_values(client: Client, talker: str) -> None:
    query = {**BOTH_STREAMS, "since": "0", "until": "0.000000000", "timestamps": "0"}

    body = client.request("GET", "/containers/talker/logs", query=query)[1]

    assert len(frames(body)) == 1


def test_logs_of_a_missing_container_or_one_that_never_ran(client: Client) -> None:
    with pytest.raises(NotFound, match="No such container: nobody"):
        client.request("GET", "/containers/nobody/logs", query=BOTH_STREAMS)

    client.post("/containers/create", {"Cmd": ["true"]}, query={"name": "quiet"})
    for follow in ("0", "1"):  # nothing runs, so nothing to follow: the answer ends at once
        query = {**BOTH_STREAMS, "follow": follow}
        assert client.request("GET", "/containers/quiet/logs", query=query)[1] == b""


def test_logs_with_a_tty_are_the_raw_output(client: Client, engine: FakeEngine) -> None:
    client.post("/containers/create", {"Cmd": ["sh"], "Tty": True}, query={"name": "term"})
    client.post("/containers/term/start")
    engine.write_output("term", b"$ ")

    status, headers, body = raw(client, "GET", "/containers/term/logs?stdout=1&stderr=1")

    assert client.get("/containers/term/json")["Config"]["Tty"] is True
    assert (status, body) == (200, b"output of term\n$ ")
    assert headers["content-type"] == "application/vnd.docker.raw-stream"


def test_inspect_says_when_a_container_has_no_tty(client: Client, talker: str) -> None:
    assert client.get("/containers/talker/json")["Config"]["Tty"] is False


def test_following_logs_streams_new_output_until_the_process_exits(
    client: Client, engine: FakeEngine, talker: str
) -> None:
    status, pieces = client.stream(
        "GET", "/containers/talker/logs", query={**BOTH_STREAMS, "follow": "1", "tail": "1"}
    )
    received = bytearray()

    def receive_until(wanted: bytes) -> None:
        while wanted not in b"".join(payload for _, payload in frames(bytes(received))):
            received.extend(next(pieces))

    receive_until(b"third")
    engine.write_output("talker", b" and more\n")
    receive_until(b"third and more\n")
    engine.write_output("talker", b"last words\n")
    started = time.monotonic()
    client.post("/nsnet/containers/talker/exited", {"ExitCode": 0})
    received.extend(b"".join(pieces))  # the answer ends by itself
    ended = time.monotonic() - started

    assert status == 200
    assert b"".join(payload for _, payload in frames(bytes(received))) == (
        b"third and more\nlast words\n"
    )
    assert {stream for stream, _ in frames(bytes(received))} == {1}
    assert ended < 2, ended


def test_a_foreground_process_is_entered_attached_and_reported(client: Client) -> None:
    client.post("/containers/create", {"Cmd": ["sh"]}, query={"name": "c1"})

    argv = client.post("/nsnet/containers/c1/enter", {"Cmd": ["sh", "-c", "exit 3"]})["Argv"]
    client.post("/nsnet/containers/c1/attach", {"Pid": 1234})
    running = client.get("/containers/c1/json")["State"]
    client.post("/nsnet/containers/c1/exited", {"ExitCode": 3})
    exited = client.get("/containers/c1/json")["State"]

    assert argv[-3:] == ["sh", "-c", "exit 3"]
    assert running["Status"] == "running" and running["Pid"] == 1234
    assert exited["Status"] == "exited" and exited["ExitCode"] == 3


def test_every_engine_call_runs_on_one_thread_and_reap_runs_periodically(
    engine: FakeEngine,
) -> None:
    with served(engine, reap_interval=0.02) as path:
        client = Client(path, timeout=10)
        workers = [
            threading.Thread(target=client.post, args=("/networks/create", {"Name": f"n{i}"}))
            for i in range(8)
        ]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        time.sleep(0.2)

    assert engine.opened and engine.closed
    assert engine.calls[0] == "open" and engine.calls[-1] == "close"
    assert engine.calls.count("create_network") == 8
    assert engine.reaps >= 2
    assert len(engine.threads) == 1
    assert threading.get_ident() not in engine.threads
