"""The FastAPI application: Docker Engine API 1.41 over one engine.

Every route is also served under a ``/vN.NN`` prefix naming an API version from 1.12 to 1.41
(another version is refused with 400, as Docker refuses it), every answer carries Docker's
``Api-Version`` / ``Ostype`` / ``Server`` headers, and every error is ``{"message": "..."}``
with the status of the ``NsnetError`` category (a bug is a 500). A container's logs are
Docker's multiplexed stream (raw with a TTY), streamed from its log file as it grows.

The engine is not thread-safe (nothing in it is locked), so every engine call, from
``open()`` to ``close()``, runs on one worker thread (``EngineRunner``).
"""

import asyncio
import logging
import os
import platform
import re
import signal
import threading
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from pydantic import BaseModel, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from nsnet import API_VERSION, __version__
from nsnet.api import schemas
from nsnet.api.filters import (
    container_predicate,
    filter_networks,
    parse_filters,
    prune_predicate,
)
from nsnet.errors import Conflict, InvalidArgument, NotFound, NsnetError
from nsnet.logstream import (
    MULTIPLEXED_MEDIA_TYPE,
    RAW_MEDIA_TYPE,
    STDOUT,
    frame,
    parse_tail,
    tail_offset,
)
from nsnet.models import Container

log = logging.getLogger(__name__)

MIN_API_VERSION = "1.12"
REAP_INTERVAL = 0.5
STOP_POLL_INTERVAL = 0.05  # how often a stop looks whether the process has ended
KILL_WAIT = 5.0  # how long a SIGKILLed process may take to be gone before it counts as killed
FOLLOW_POLL_INTERVAL = 0.2  # how often a followed log looks for new output and the exit
LOG_READ_SIZE = 64 * 1024  # the most output one frame of a log answer carries

# /v1.41/networks -> /networks, for any version from MIN_API_VERSION to API_VERSION.
VERSION_PREFIX = re.compile(r"^/v(?P<version>[0-9]+(?:\.[0-9]+)*)(?=/)")

ModelT = TypeVar("ModelT", bound=BaseModel)


class EngineRunner:
    """Runs engine calls on one dedicated worker thread, one at a time."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="nsnet-engine")

    async def run(self, function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Call ``function(*args, **kwargs)`` on the engine thread and await its result."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.executor, partial(function, *args, **kwargs))

    def shutdown(self) -> None:
        """Finish the engine calls already queued, then end the worker thread."""
        self.executor.shutdown(wait=True)


class DockerCompat:
    """ASGI middleware: strip a ``/vN.NN`` prefix and add Docker's headers to every answer."""

    def __init__(self, app: Any, stopping: threading.Event | None = None) -> None:
        """Wrap ``app``; ``stop_streams`` sets ``stopping``, which followed logs watch.

        ``create_app`` passes the event its log streams share.
        """
        self.app = app
        self.stopping = stopping or threading.Event()
        self.headers = [
            (b"api-version", API_VERSION.encode()),
            (b"docker-experimental", b"false"),
            (b"ostype", b"linux"),
            (b"server", f"nsnet/{__version__} (linux)".encode()),
        ]

    def stop_streams(self) -> None:
        """End the answers that stream until something happens (``logs -f``): the server is
        stopping, and would otherwise wait for them. Safe from a signal handler."""
        self.stopping.set()

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        match = VERSION_PREFIX.match(scope["path"])
        problem = version_problem(match["version"]) if match else None
        if match:
            path = scope["path"][match.end() :]
            scope = dict(scope, path=path, raw_path=path.encode())

        started = False

        async def send_with_headers(message: dict) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message = dict(message, headers=[*message.get("headers", []), *self.headers])
            await send(message)

        if problem is not None:
            # Before any route, as Docker's version middleware: the headers still go out.
            await error_response(400, problem)(scope, receive, send_with_headers)
            return

        try:
            await self.app(scope, receive, send_with_headers)
        except Exception:
            # Starlette re-raises an unexpected error after its handler has answered (and
            # logged); the answer is out, so the server need not log a second traceback.
            if not started:
                raise


def version_key(version: str) -> tuple[int, ...]:
    """``"1.41"`` as ``(1, 41)``, compared as Docker compares versions (1.5 < 1.41 = 1.41.0)."""
    parts = [int(part) for part in version.split(".")]
    while len(parts) > 1 and parts[-1] == 0:
        parts.pop()
    return tuple(parts)


def version_problem(version: str) -> str | None:
    """Why a request for API ``version`` is refused (Docker's words), or None."""
    if version_key(version) > version_key(API_VERSION):
        return (
            f"client version {version} is too new. Maximum supported API version is {API_VERSION}"
        )
    if version_key(version) < version_key(MIN_API_VERSION):
        return (
            f"client version {version} is too old. Minimum supported API version is"
            f" {MIN_API_VERSION}, please upgrade your client to a newer version"
        )
    return None


def error_response(status: int, message: str) -> JSONResponse:
    """Docker's error answer: ``{"message": message}`` with ``status``."""
    return JSONResponse(status_code=status, content={"message": message})


def validation_message(error: ValidationError, what: str) -> str:
    """A one-line message naming the fields that were wrong."""
    problems = []
    for problem in error.errors(include_url=False):
        if problem["type"] == "json_invalid":
            return f"invalid {what}: not valid JSON: {problem.get('ctx', {}).get('error', '')}"
        field = ".".join(str(part) for part in problem["loc"]) or "body"
        problems.append(f"field '{field}': {problem['msg']}")
    return f"invalid {what}: " + "; ".join(problems)


async def read_body(request: Request, model: type[ModelT]) -> ModelT:
    """The request body parsed into ``model``; an empty body counts as ``{}``."""
    body = await request.body()
    if not body.strip():
        body = b"{}"
    try:
        return model.model_validate_json(body)
    except ValidationError as error:
        raise InvalidArgument(validation_message(error, "request body")) from error


def query_bool(request: Request, name: str, default: bool = False) -> bool:
    """A boolean query parameter as Docker reads them ("", 0, no, false, none are false)."""
    value = request.query_params.get(name)
    if value is None:
        return default
    return value.strip().lower() not in ("", "0", "no", "false", "none")


def query_int(request: Request, name: str, default: int) -> int:
    """An integer query parameter, or ``default`` when it is absent or empty.

    InvalidArgument when it is not a number.
    """
    value = request.query_params.get(name)
    if value in (None, ""):
        return default
    try:
        return int(value)
    except ValueError as error:
        raise InvalidArgument(
            f"invalid query parameter '{name}': '{value}' is not a number"
        ) from (error)


def json_response(content: Any, status_code: int = 200) -> JSONResponse:
    """``content`` as a JSON answer with ``status_code``."""
    return JSONResponse(status_code=status_code, content=content)


def kernel_version() -> str:
    """The running kernel's release, as ``uname -r`` prints it."""
    return platform.release()


def architecture() -> str:
    """The machine's architecture in Go's words (amd64, arm64), as Docker reports it."""
    machine = platform.machine()
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)


def create_app(engine: Any, reap_interval: float = REAP_INTERVAL) -> Any:
    """The ASGI application serving ``engine`` (opened at start-up, closed at shutdown)."""
    runner = EngineRunner(engine)
    stopping = threading.Event()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        try:
            await runner.run(engine.open)
        except Exception as error:
            # uvicorn logs the traceback; say in one line what could not be done.
            log.error("cannot open the engine: %s", error)
            runner.shutdown()
            raise
        log.info("engine open (state %s)", getattr(engine, "paths", None))

        reaper = asyncio.create_task(reap_forever(runner, reap_interval))
        try:
            yield
        finally:
            stopping.set()
            reaper.cancel()
            try:
                await reaper
            except asyncio.CancelledError:
                pass
            try:
                await runner.run(engine.close)
                log.info("engine closed")
            finally:
                runner.shutdown()

    app = FastAPI(
        title="nsnetd",
        version=__version__,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.runner = runner

    @app.exception_handler(NsnetError)
    async def nsnet_error(request: Request, error: NsnetError) -> JSONResponse:
        if error.status >= 500:
            log.error("%s %s failed: %s", request.method, request.url.path, error)
        return error_response(error.status, str(error))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> JSONResponse:
        if error.status_code in (404, 405):
            return error_response(404, "page not found")
        return error_response(error.status_code, str(error.detail))

    @app.exception_handler(Exception)
    async def unexpected_error(request: Request, error: Exception) -> JSONResponse:
        log.exception("%s %s failed", request.method, request.url.path)
        return error_response(500, f"internal error: {type(error).__name__}: {error}")

    add_system_routes(app)
    add_network_routes(app, runner)
    add_container_routes(app, runner, stopping)
    add_nsnet_routes(app, runner)
    return DockerCompat(app, stopping)


async def reap_forever(runner: EngineRunner, interval: float) -> None:
    """Let the engine notice exited detached processes, every ``interval`` seconds."""
    reap = getattr(runner.engine, "reap", None)
    if reap is None:
        log.warning("the engine has no reap(): exited detached processes go unnoticed")
        return
    while True:
        await asyncio.sleep(interval)
        try:
            await runner.run(reap)
        except Exception:
            log.exception("reaping exited processes failed")


def add_system_routes(app: FastAPI) -> None:
    """Add ``/_ping``, ``/version`` and ``/info``."""

    @app.api_route("/_ping", methods=["GET", "HEAD"])
    async def ping() -> PlainTextResponse:
        return PlainTextResponse(
            "OK", headers={"Cache-Control": "no-cache, no-store, must-revalidate"}
        )

    @app.get("/version")
    async def version() -> JSONResponse:
        details = {
            "ApiVersion": API_VERSION,
            "Arch": architecture(),
            "Experimental": "false",
            "KernelVersion": kernel_version(),
            "MinAPIVersion": MIN_API_VERSION,
            "Os": "linux",
        }
        return json_response(
            {
                "Platform": {"Name": "nsnet"},
                "Components": [{"Name": "Engine", "Version": __version__, "Details": details}],
                "Version": __version__,
                "ApiVersion": API_VERSION,
                "MinAPIVersion": MIN_API_VERSION,
                "GitCommit": "",
                "Os": "linux",
                "Arch": architecture(),
                "KernelVersion": kernel_version(),
            }
        )

    @app.get("/info")
    async def info(request: Request) -> JSONResponse:
        runner: EngineRunner = request.app.state.runner
        engine = runner.engine

        def gather() -> dict:
            # StateDirectory, RunDirectory, Firewall {Tables, Rules, Elements}, Warnings
            details = dict(engine.info())
            containers = engine.list_containers(all=True)
            running = sum(1 for container in containers if container.state == "running")
            return {
                "ID": "",
                "Containers": len(containers),
                "ContainersRunning": running,
                "ContainersPaused": 0,
                "ContainersStopped": len(containers) - running,
                "Images": 0,
                "Driver": "",
                "Name": platform.node(),
                "ServerVersion": __version__,
                "OperatingSystem": "nsnet",
                "OSType": "linux",
                "Architecture": platform.machine(),
                "KernelVersion": kernel_version(),
                "NCPU": os.cpu_count() or 1,
                "DockerRootDir": str(engine.paths.state_dir),
                "Networks": len(engine.list_networks()),
                # Docker's own list of warnings; nsnet's details under a key of their own.
                "Warnings": list(details.pop("Warnings", [])),
                "Nsnet": {
                    **details,
                    "Socket": str(engine.paths.socket),
                    "DaemonLog": str(engine.paths.daemon_log),
                },
            }

        return json_response(await runner.run(gather))


def add_network_routes(app: FastAPI, runner: EngineRunner) -> None:
    """Add the ``/networks`` routes: list, create, prune, inspect, remove, connect, disconnect."""
    engine = runner.engine

    def network_json(ref: str) -> Any:
        network = engine.get_network(ref)
        endpoints = engine.network_endpoints(network.id)
        document = schemas.NetworkResourceOut.from_network(network, endpoints).to_json()
        # Docker shows the hosts of an overlay network as Peers, after Labels.
        peers = getattr(engine, "network_peers", lambda network: None)(network)
        if peers is not None:
            document["Peers"] = peers
        return document

    @app.get("/networks")
    async def list_networks(request: Request) -> JSONResponse:
        filters = parse_filters(request.query_params.get("filters"))

        def gather() -> list:
            networks = engine.list_networks()
            counts = {}
            if "dangling" in filters:
                counts = {
                    network.id: len(engine.network_endpoints(network.id)) for network in networks
                }
            # Docker's list leaves Containers empty; inspect fills it.
            return [
                schemas.NetworkResourceOut.from_network(network).to_json()
                for network in filter_networks(networks, filters, counts)
            ]

        return json_response(await runner.run(gather))

    @app.post("/networks/create")
    async def create_network(request: Request) -> JSONResponse:
        body = await read_body(request, schemas.NetworkCreateBody)
        network = await runner.run(engine.create_network, body.to_request())
        log.info("network %s (%s) created", network.name, network.id[:12])
        return json_response(schemas.NetworkCreateOut(id=network.id).to_json(), 201)

    @app.post("/networks/prune")
    async def prune_networks(request: Request) -> JSONResponse:
        prunable = prune_predicate(parse_filters(request.query_params.get("filters")))
        names = await runner.run(engine.prune_networks, prunable)
        log.info("networks pruned: %s", ", ".join(names) or "none")
        return json_response(schemas.NetworkPruneOut(networks_deleted=names).to_json())

    @app.get("/networks/{ref}")
    async def inspect_network(ref: str) -> JSONResponse:
        return json_response(await runner.run(network_json, ref))

    @app.delete("/networks/{ref}")
    async def remove_network(ref: str) -> Response:
        await runner.run(engine.remove_network, ref)
        log.info("network %s removed", ref)
        return Response(status_code=204)

    @app.post("/networks/{ref}/connect")
    async def connect(ref: str, request: Request) -> Response:
        body = await read_body(request, schemas.NetworkConnectBody)
        settings = body.endpoint_config or schemas.EndpointSettingsBody()
        await runner.run(
            engine.connect,
            ref,
            body.container,
            ip_address=settings.address("EndpointConfig"),
            aliases=list(settings.aliases or []),
        )
        return Response(status_code=200)

    @app.post("/networks/{ref}/disconnect")
    async def disconnect(ref: str, request: Request) -> Response:
        body = await read_body(request, schemas.NetworkDisconnectBody)
        await runner.run(engine.disconnect, ref, body.container, force=bool(body.force))
        return Response(status_code=200)


def add_container_routes(app: FastAPI, runner: EngineRunner, stopping: threading.Event) -> None:
    """Add the ``/containers`` routes: create, list, inspect, start, stop, remove and logs.

    ``stopping`` is set when the daemon stops; followed logs then end.
    """
    engine = runner.engine

    def inspect_json(ref: str) -> Any:
        container = engine.get_container(ref)
        endpoints = engine.container_endpoints(container.id)
        return schemas.ContainerInspectOut.from_container(container, endpoints).to_json()

    @app.post("/containers/create")
    async def create_container(request: Request) -> JSONResponse:
        body = await read_body(request, schemas.ContainerCreateBody)
        container_request = body.to_request(request.query_params.get("name"))
        container = await runner.run(engine.create_container, container_request)
        log.info("container %s (%s) created", container.name, container.id[:12])
        return json_response(schemas.ContainerCreateOut(id=container.id).to_json(), 201)

    @app.get("/containers/json")
    async def list_containers(request: Request) -> JSONResponse:
        filters = parse_filters(request.query_params.get("filters"))
        listed = container_predicate(filters)
        # As Docker, a status filter lists containers in every state it names.
        everything = query_bool(request, "all") or "status" in filters

        def gather() -> list:
            summaries = []
            for container in sorted(
                engine.list_containers(all=everything),
                key=lambda container: container.created,
                reverse=True,  # newest first, as Docker lists them
            ):
                endpoints = engine.container_endpoints(container.id)
                networks = [key for network, _ in endpoints for key in (network.name, network.id)]
                if listed(container, networks):
                    summary = schemas.ContainerSummaryOut.from_container(container, endpoints)
                    summaries.append(summary.to_json())
            return summaries

        return json_response(await runner.run(gather))

    @app.get("/containers/{ref}/json")
    async def inspect_container(ref: str) -> JSONResponse:
        return json_response(await runner.run(inspect_json, ref))

    @app.post("/containers/{ref}/start")
    async def start_container(ref: str) -> Response:
        def start() -> bool:
            if engine.get_container(ref).state == "running":
                return False
            engine.start_container(ref)
            return True

        started = await runner.run(start)
        # Docker answers 304 when there was nothing to do; its CLI counts that as success.
        return Response(status_code=204 if started else 304)

    @app.post("/containers/{ref}/stop")
    async def stop_container(ref: str, request: Request) -> Response:
        timeout = query_int(request, "t", 10)
        container = await runner.run(engine.get_container, ref)
        if container.state != "running":
            return Response(status_code=304)
        # Docker waits for ever when t is negative.
        await stop_process(runner, container.id, None if timeout < 0 else timeout)
        return Response(status_code=204)

    @app.delete("/containers/{ref}")
    async def remove_container(ref: str, request: Request) -> Response:
        # With force, the engine kills a running process itself (SIGTERM, then SIGKILL without
        # waiting) after its checks: a refused removal must leave the process running.
        await runner.run(engine.remove_container, ref, force=query_bool(request, "force"))
        log.info("container %s removed", ref)
        return Response(status_code=204)

    @app.get("/containers/{ref}/logs")
    async def container_logs(ref: str, request: Request) -> Response:
        options = LogOptions.from_query(request)
        container, path = await runner.run(engine.log_file, ref)
        multiplexed = not container.tty
        return StreamingResponse(
            log_stream(runner, container, path, options, multiplexed, stopping),
            media_type=MULTIPLEXED_MEDIA_TYPE if multiplexed else RAW_MEDIA_TYPE,
        )


@dataclass(frozen=True)
class LogOptions:
    """What ``GET /containers/{id}/logs`` asks for, as far as nsnet's kept output allows.

    The output is one file with stdout and stderr merged and no times (``Engine.log_file``),
    so all of it comes as stdout (stream 1), stderr alone cannot be shown, and neither can
    timestamps or a time window (``since``, ``until``); those are refused rather than
    answered wrongly.
    """

    tail: int | None  # the last lines to show; None for all
    follow: bool

    @classmethod
    def from_query(cls, request: Request) -> "LogOptions":
        """The options of a logs request; InvalidArgument naming what cannot be done."""
        stdout, stderr = query_bool(request, "stdout"), query_bool(request, "stderr")
        if not (stdout or stderr):
            # Docker's words: it too shows nothing unless asked for a stream.
            raise InvalidArgument("Bad parameters: you must choose at least one stream")
        if not stdout:
            raise InvalidArgument(
                "cannot show stderr alone: nsnet keeps a container's stdout and stderr together"
                " in one file; ask for stdout too (all of the output then comes as stdout)"
            )
        if query_bool(request, "timestamps"):
            raise InvalidArgument(
                "cannot show timestamps: nsnet does not record when a container wrote its output"
            )
        for name in ("since", "until"):
            if names_a_time(request.query_params.get(name, "")):
                raise InvalidArgument(
                    f"cannot select logs by time ('{name}'): nsnet does not record when a"
                    " container wrote its output"
                )
        try:
            tail = parse_tail(request.query_params.get("tail"))
        except ValueError as error:
            raise InvalidArgument(f"invalid query parameter 'tail': {error}") from error
        return cls(tail=tail, follow=query_bool(request, "follow"))


def names_a_time(value: str) -> bool:
    """Whether a ``since``/``until`` value limits anything: empty and zero (``0``,
    ``0.000000000``, as clients send it) mean no limit, as in Docker."""
    try:
        return float(value or 0) != 0
    except ValueError:
        return True  # a time in another form, which Docker would read too


def open_log(path: Path, tail: int | None) -> BinaryIO | None:
    """``path`` opened at the start of its last ``tail`` lines; None if it does not exist."""
    try:
        file = open(path, "rb")  # log_stream closes it
    except FileNotFoundError:
        return None
    file.seek(tail_offset(file, tail))
    return file


async def log_stream(
    runner: EngineRunner,
    container: Container,
    path: Path,
    options: LogOptions,
    multiplexed: bool,
    stopping: threading.Event,
) -> AsyncIterator[bytes]:
    """A container's kept output, framed as stdout when ``multiplexed``, else as it is.

    With ``follow``, and while the container's process runs, new output is sent as it is
    written; the answer ends once the process has exited and its last output is out, or when
    the daemon stops.
    """
    following = options.follow and container.state == "running"

    def running() -> bool:
        try:
            return runner.engine.get_container(container.id).state == "running"
        except NotFound:
            return False  # removed meanwhile

    file = await asyncio.to_thread(open_log, path, options.tail)
    try:
        while True:
            if options.follow and stopping.is_set():
                return  # the daemon is stopping: a follow would hold it up, however busy
            if file is None:
                # No output yet: a file made later holds only new output, all of it wanted.
                file = await asyncio.to_thread(open_log, path, None)
            data = await asyncio.to_thread(file.read, LOG_READ_SIZE) if file else b""
            if data:
                yield frame(STDOUT, data) if multiplexed else data
                continue
            if not following:
                return
            # Whatever the process wrote before it exited is in the file: read to its end.
            following = await runner.run(running)
            if following:
                await asyncio.sleep(FOLLOW_POLL_INTERVAL)
    finally:
        if file is not None:
            file.close()


async def stop_process(runner: EngineRunner, container_id: str, timeout: float | None) -> None:
    """Stop a container's process as Docker does: SIGTERM, then SIGKILL after ``timeout`` s.

    The engine only sends the signals; the waiting happens here, on the event loop, polling
    ``reap()``, so other requests keep being served meanwhile. ``timeout`` 0 kills at once;
    None waits for the SIGTERM to work however long it takes. A process still there
    ``KILL_WAIT`` s after its SIGKILL is recorded as killed.
    """
    engine = runner.engine
    if timeout != 0:
        await runner.run(engine.signal_container, container_id, signal.SIGTERM)
        if await wait_for_exit(runner, container_id, timeout):
            return
        log.info(
            "container %s: no exit %s s after SIGTERM, killing it", container_id[:12], timeout
        )
    await runner.run(engine.signal_container, container_id, signal.SIGKILL)
    if await wait_for_exit(runner, container_id, KILL_WAIT):
        return
    log.warning(
        "container %s: still there %s s after SIGKILL; recorded as killed",
        container_id[:12],
        KILL_WAIT,
    )
    await runner.run(engine.process_exited, container_id, 128 + signal.SIGKILL)


async def wait_for_exit(runner: EngineRunner, container_id: str, timeout: float | None) -> bool:
    """Whether the container's process ended within ``timeout`` s (None: no limit)."""
    engine = runner.engine

    def ended() -> bool:
        engine.reap()
        try:
            return engine.get_container(container_id).state != "running"
        except NotFound:
            return True  # removed meanwhile (an --rm container once its process ended)

    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        if await runner.run(ended):
            return True
        if deadline is not None and time.monotonic() >= deadline:
            return False
        await asyncio.sleep(STOP_POLL_INTERVAL)


def add_nsnet_routes(app: FastAPI, runner: EngineRunner) -> None:
    """Add nsnet's own routes: the CLI's for a foreground process, and nsnet-cni's.

    ``enter`` gives the argv that runs a command in the sandbox, ``attach`` records the pid of
    the process the CLI started with it, ``exited`` records its exit status. ``cni/*`` carry
    a CNI runtime's calls, which nsnet-cni translates (nsnet/cni.py).
    """
    engine = runner.engine

    @app.post("/nsnet/containers/{ref}/enter")
    async def enter(ref: str, request: Request) -> JSONResponse:
        body = await read_body(request, schemas.EnterBody)
        if not body.cmd:
            raise InvalidArgument(f"cannot enter container '{ref}': Cmd is empty")

        def enter_command() -> list[str]:
            if body.running:
                container = engine.get_container(ref)
                if container.state != "running":
                    raise Conflict(f"Container {container.id} is not running")
            return engine.enter_command(ref, list(body.cmd))

        argv = await runner.run(enter_command)
        return json_response(schemas.EnterOut(argv=argv).to_json())

    @app.post("/nsnet/containers/{ref}/attach")
    async def attach(ref: str, request: Request) -> Response:
        body = await read_body(request, schemas.AttachBody)
        await runner.run(engine.attach_process, ref, body.pid)
        return Response(status_code=204)

    @app.post("/nsnet/containers/{ref}/exited")
    async def exited(ref: str, request: Request) -> Response:
        body = await read_body(request, schemas.ExitedBody)
        await runner.run(engine.process_exited, ref, body.exit_code)
        return Response(status_code=204)

    # nsnet-cni's: a runtime's ADD, DEL, CHECK and GC

    @app.post("/nsnet/cni/add")
    async def cni_add(request: Request) -> JSONResponse:
        body = await read_body(request, schemas.CniAddBody)

        def add() -> dict:
            container, endpoint = engine.cni_add(body.to_request())
            return engine.cni_result(container, endpoint)

        return json_response(await runner.run(add))

    @app.post("/nsnet/cni/del")
    async def cni_del(request: Request) -> JSONResponse:
        body = await read_body(request, schemas.CniDelBody)
        deleted = await runner.run(
            engine.cni_del, body.container_id, body.ifname, body.network, body.cni_network
        )
        return json_response({"Deleted": deleted})

    @app.post("/nsnet/cni/check")
    async def cni_check(request: Request) -> Response:
        body = await read_body(request, schemas.CniCheckBody)
        await runner.run(
            engine.cni_check,
            body.container_id,
            body.ifname,
            body.network,
            body.netns,
            body.default_route,
            body.cni_network,
        )
        return Response(status_code=204)

    @app.post("/nsnet/cni/gc")
    async def cni_gc(request: Request) -> JSONResponse:
        body = await read_body(request, schemas.CniGcBody)
        valid = {(each.container_id, each.ifname) for each in body.valid}
        removed = await runner.run(engine.cni_gc, body.network, valid, body.cni_network)
        return json_response({"Removed": removed})
