"""The benchmark's agent: a process inside one network namespace that does and times work there.

Started by ``world.Agent`` as ``nsenter --net=PATH python -m bench.agent``, so only the agent's
network namespace differs from the suite's (the mount namespace, and so /run/netns, is shared).
It reads one JSON request per line on stdin and answers one JSON line on its protocol channel
(the original stdout; anything else printed goes to stderr). Times are taken here, around the
work alone, so the pipe to the suite costs nothing in a figure.

Requests (``op``):

    ping                                      -> {}
    exec        argv, env?, input?, timeout?  -> returncode, stdout, stderr, seconds
    netns_create name                         -> seconds   (as a runtime does: unshare + bind)
    netns_delete name                         -> seconds
    listen      ports                         -> {}        (accept and close, until killed)
    tcp_connect targets, rounds, timeout      -> samples {"address:port": [seconds...]}
    dns_rate    server, name, seconds, window -> answers, lost, failures, latencies (seconds)
    engine_open root, profile?                -> seconds   (nsnet's Engine, in this process;
                                                          with a cProfile of every call)
    engine      call, arguments               -> seconds, result
    engine_close                              -> problems
"""

import contextlib
import ctypes
import json
import os
import selectors
import socket
import struct
import subprocess
import sys
import threading
import time
import traceback
from pathlib import Path

CLONE_NEWNET = 0x40000000
MS_BIND = 0x1000
MNT_DETACH = 0x2
NETNS_DIRECTORY = Path("/run/netns")

_libc = ctypes.CDLL("libc.so.6", use_errno=True)
_libc.mount.argtypes = [
    ctypes.c_char_p,
    ctypes.c_char_p,
    ctypes.c_char_p,
    ctypes.c_ulong,
    ctypes.c_void_p,
]


class AgentError(Exception):
    """A request that could not be served; the message goes back to the suite."""


def _libc_check(result: int, what: str) -> None:
    if result != 0:
        code = ctypes.get_errno()
        raise OSError(code, f"{what}: {os.strerror(code)}")


# Process execution


def run_exec(request: dict) -> dict:
    """Run a program (as a runtime runs a CNI plugin or a user a CLI) and time it."""
    environment = dict(os.environ)
    if request.get("clean_env"):
        environment = {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")}
    environment.update(request.get("env") or {})
    text = request.get("input")

    started = time.perf_counter()
    completed = subprocess.run(
        request["argv"],
        input=text.encode() if text is not None else None,
        stdin=None if text is not None else subprocess.DEVNULL,
        capture_output=True,
        env=environment,
        timeout=request.get("timeout", 120),
    )
    seconds = time.perf_counter() - started

    return {
        "returncode": completed.returncode,
        "stdout": completed.stdout.decode(errors="replace"),
        "stderr": completed.stderr.decode(errors="replace"),
        "seconds": seconds,
    }


# Network namespaces, made the way container runtimes make them (in-process, no `ip` exec)


def netns_create(request: dict) -> dict:
    """Create /run/netns/NAME: a thread unshares a new network namespace and bind-mounts it."""
    path = NETNS_DIRECTORY / request["name"]
    outcome: dict = {}

    def make() -> None:
        try:
            _libc_check(_libc.unshare(CLONE_NEWNET), "unshare")
            _libc_check(
                _libc.mount(b"/proc/thread-self/ns/net", bytes(path), None, MS_BIND, None),
                f"bind {path}",
            )
        except OSError as error:
            outcome["error"] = error

    started = time.perf_counter()
    path.touch(mode=0o444, exist_ok=False)
    # The thread ends right after; its namespace lives on through the bind mount.
    worker = threading.Thread(target=make)
    worker.start()
    worker.join()
    seconds = time.perf_counter() - started

    if "error" in outcome:
        path.unlink(missing_ok=True)
        raise AgentError(f"cannot create namespace '{path.name}': {outcome['error']}")
    return {"seconds": seconds}


def netns_delete(request: dict) -> dict:
    """Unmount and unlink /run/netns/NAME."""
    path = NETNS_DIRECTORY / request["name"]
    started = time.perf_counter()
    with contextlib.suppress(OSError):
        _libc_check(_libc.umount2(bytes(path), MNT_DETACH), f"umount {path}")
    path.unlink(missing_ok=True)
    return {"seconds": time.perf_counter() - started}


# TCP


def listen(request: dict) -> dict:
    """Accept and close connections on each port (all addresses) until the agent is killed."""
    for port in request["ports"]:
        server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("0.0.0.0", port))
        server.listen(4096)
        threading.Thread(target=_accept_forever, args=(server,), daemon=True).start()
    return {}


def _accept_forever(server: socket.socket) -> None:
    while True:
        connection, _ = server.accept()
        connection.close()


def tcp_connect(request: dict) -> dict:
    """Time TCP connects (SYN to established) to each target, the targets taken in turn."""
    samples: dict[str, list[float]] = {f"{host}:{port}": [] for host, port in request["targets"]}
    timeout = request.get("timeout", 2.0)
    for _ in range(request["rounds"]):
        for host, port in request["targets"]:
            client = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            client.settimeout(timeout)
            try:
                started = time.perf_counter()
                client.connect((host, port))
                samples[f"{host}:{port}"].append(time.perf_counter() - started)
            except OSError as error:
                raise AgentError(f"cannot connect to {host}:{port}: {error}") from error
            finally:
                client.close()
    return {"samples": samples}


# DNS


def dns_query(query_id: int, name: str) -> bytes:
    """An A query for ``name`` with recursion desired."""
    header = struct.pack("!HHHHHH", query_id, 0x0100, 1, 0, 0, 0)
    labels = b"".join(bytes([len(part)]) + part.encode() for part in name.strip(".").split("."))
    return header + labels + b"\0" + struct.pack("!HH", 1, 1)


def dns_rate(request: dict) -> dict:
    """Answers per second from one UDP client keeping ``window`` queries in flight.

    Every answer must carry the query's id, NOERROR and at least one record; anything else
    counts as a failure, and a query unanswered after a second as lost.
    """
    server = (request["server"], 53)
    name = request["name"]
    window = request.get("window", 16)
    duration = request["seconds"]
    client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    client.setblocking(False)
    selector = selectors.DefaultSelector()
    selector.register(client, selectors.EVENT_READ)

    in_flight: dict[int, float] = {}
    latencies: list[float] = []
    answers = lost = failures = 0
    next_id = 1
    started = time.perf_counter()
    deadline = started + duration
    while True:
        now = time.perf_counter()
        if now >= deadline:
            break
        for query_id, sent in list(in_flight.items()):
            if now - sent > 1.0:
                del in_flight[query_id]
                lost += 1
        while len(in_flight) < window:
            query_id = next_id
            next_id = next_id % 65535 + 1
            in_flight[query_id] = time.perf_counter()
            client.sendto(dns_query(query_id, name), server)
        for _ in selector.select(timeout=0.05):
            while True:
                try:
                    data = client.recv(4096)
                except BlockingIOError:
                    break
                if len(data) < 12:
                    failures += 1
                    continue
                query_id, flags, _, answer_count = struct.unpack("!HHHH", data[:8])
                sent = in_flight.pop(query_id, None)
                if sent is None:
                    continue  # an answer to a query already counted as lost
                if flags & 0x000F == 0 and answer_count > 0:
                    answers += 1
                    latencies.append(time.perf_counter() - sent)
                else:
                    failures += 1
    elapsed = time.perf_counter() - started
    selector.close()
    client.close()
    return {
        "answers": answers,
        "lost": lost,
        "failures": failures,
        "seconds": elapsed,
        "latencies": latencies[:: max(1, len(latencies) // 2000)],
    }


# nsnet's engine, in-process


class EngineHost:
    """One nsnet ``Engine`` opened in this process, called from this (the main) thread."""

    def __init__(self) -> None:
        self.engine = None
        self.profiler = None
        self.profile_path = None

    def open(self, request: dict) -> dict:
        os.environ["NSNET_ROOT"] = request["root"]
        import logging

        from nsnet.engine import Engine

        logging.basicConfig(
            filename=str(Path(request["root"]) / "engine.log"),
            level=logging.INFO,
            format="%(asctime)s %(name)s %(levelname)s %(message)s",
        )
        if request.get("profile"):
            import cProfile

            self.profiler = cProfile.Profile()
            self.profile_path = request["profile"]
        started = time.perf_counter()
        self.engine = Engine()
        self.engine.open()
        return {"seconds": time.perf_counter() - started}

    def call(self, request: dict) -> dict:
        if self.engine is None:
            raise AgentError("the engine is not open")
        call = request["call"]
        arguments = dict(request.get("arguments") or {})
        function, positional, keywords = self._prepare(call, arguments)

        if self.profiler is not None:
            self.profiler.enable()
        started = time.perf_counter()
        try:
            result = function(*positional, **keywords)
        finally:
            seconds = time.perf_counter() - started
            if self.profiler is not None:
                self.profiler.disable()

        return {"seconds": seconds, "result": _describe(result)}

    def _prepare(self, call: str, arguments: dict):
        from nsnet.models import ContainerCreate, NetworkCreate, PortBinding

        engine = self.engine
        if call == "create_network":
            return engine.create_network, [NetworkCreate(**arguments)], {}
        if call == "create_container":
            ports = [PortBinding(**binding) for binding in arguments.pop("ports", [])]
            return engine.create_container, [ContainerCreate(ports=ports, **arguments)], {}
        if call in (
            "remove_network",
            "remove_container",
            "start_container",
            "connect",
            "disconnect",
            "get_container",
            "container_endpoints",
        ):
            positional = arguments.pop("positional", [])
            return getattr(engine, call), positional, arguments
        raise AgentError(f"unknown engine call '{call}'")

    def close(self) -> dict:
        """Remove every container (stopping their processes), then close the engine."""
        problems = []
        if self.engine is None:
            return {"problems": problems}
        for container in self.engine.list_containers(all=True):
            try:
                self.engine.remove_container(container.id, force=True)
            except Exception as error:  # noqa: BLE001 - every failure is reported, none stops us
                problems.append(f"cannot remove container '{container.name}': {error}")
        self.engine.close()
        self.engine = None
        if self.profiler is not None:
            self.profiler.dump_stats(self.profile_path)
        return {"problems": problems}


def _describe(result) -> dict | list | None:
    """The JSON-safe part of an engine result: ids, names, addresses, paths."""
    if result is None:
        return None
    if isinstance(result, list):
        return [_describe(item) for item in result]
    if isinstance(result, tuple):
        return [_describe(item) for item in result]
    described = {}
    for name in ("id", "name", "netns_path", "address", "host_ifname", "container_ifname", "pid"):
        if hasattr(result, name):
            value = getattr(result, name)
            described[name] = value if isinstance(value, int | str | None) else str(value)
    return described


# The request loop


def main() -> int:
    """Serve requests from stdin until it closes."""
    # The protocol owns the original stdout; stray prints from libraries go to stderr.
    channel = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr

    engine = EngineHost()
    handlers = {
        "ping": lambda request: {},
        "exec": run_exec,
        "netns_create": netns_create,
        "netns_delete": netns_delete,
        "listen": listen,
        "tcp_connect": tcp_connect,
        "dns_rate": dns_rate,
        "engine_open": engine.open,
        "engine": engine.call,
        "engine_close": lambda request: engine.close(),
    }

    for line in sys.stdin:
        if not line.strip():
            continue
        request = json.loads(line)
        try:
            handler = handlers.get(request.get("op"))
            if handler is None:
                raise AgentError(f"unknown request '{request.get('op')}'")
            answer = {"ok": True, **handler(request)}
        except Exception as error:  # noqa: BLE001 - the error is the answer
            answer = {
                "ok": False,
                "error": f"{type(error).__name__}: {error}",
                "traceback": traceback.format_exc(),
            }
        channel.write(json.dumps(answer) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
