"""The embedded DNS server: 127.0.0.11:53 (UDP and TCP) inside each container's namespace.

The listening sockets are made inside a container's network namespace by a short-lived thread
(``open_listener_sockets``); a socket belongs to the namespace it was made in for its whole
life, so the thread can go home at once and the daemon's event loop serves the sockets from
the host namespace. Forwarded queries leave from sockets the loop makes, in the host
namespace. Nothing listens on port 53 in the host namespace.

Threads: the server's event loop runs in a thread of its own (``start``) or in a loop the
daemon already runs (``attach``). ``add_sandbox`` and ``remove_sandbox`` may be called from any
other thread (the engine's); they schedule the work onto the loop and wait for it. The
``scope`` function a sandbox is served with is called on the loop's thread for each query, so
it must be cheap and must not use the engine's store: hand it a snapshot that the engine
replaces when the container's networks change.

An open socket keeps its namespace alive: ``remove_sandbox`` closes both sockets, and the
engine must call it before it expects the sandbox's namespace, and veth, to go away.
"""

import asyncio
import contextlib
import errno
import logging
import socket
import struct
import threading
import time
from collections.abc import Callable
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from pathlib import Path

from nsnet.dns.index import NameIndex
from nsnet.dns.resolver import TCP, UDP, Resolver, SandboxScope
from nsnet.errors import NsnetError, Unavailable
from nsnet.kernel import namespace

log = logging.getLogger(__name__)

LISTEN_ADDRESS = "127.0.0.11"
LISTEN_PORT = 53
TCP_BACKLOG = 128
TCP_IDLE_SECONDS = 10.0  # a client connection with no query for this long is closed
MAX_PENDING_FORWARDS = 512  # per sandbox; more queries waiting for upstreams are dropped
MAX_TCP_CONNECTIONS = 64  # per sandbox; more open connections are closed at once
OVERLOAD_LOG_INTERVAL_SECONDS = 2.0  # one warning per sandbox per interval, not one per query
CALL_TIMEOUT_SECONDS = 10.0  # for a thread waiting on the loop

ScopeFunction = Callable[[], SandboxScope]

NO_SCOPE = SandboxScope(network_ids=frozenset(), forwarding=False)


def open_listener_sockets(
    netns_path: str | Path, *, address: str = LISTEN_ADDRESS, port: int = LISTEN_PORT
) -> tuple[socket.socket, socket.socket]:
    """A UDP socket and a listening TCP socket at ``address:port`` in the namespace, non-blocking.

    Made by a short-lived thread that enters the namespace; the calling thread never moves.
    127.0.0.11 needs no address of its own: all of 127.0.0.0/8 is local on ``lo``. Binding
    succeeds even while ``lo`` is down, but nothing reaches the address then, so the thread
    checks for a route to it first (a sandbox brings ``lo`` up when it is made).
    """
    made: list[socket.socket] = []
    failure: list[BaseException] = []

    def worker() -> None:
        try:
            with namespace.entered(netns_path):
                # Connecting a UDP socket only looks the route up: ENETUNREACH when lo is down.
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
                    probe.connect((address, port))

                udp_socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                made.append(udp_socket)
                udp_socket.bind((address, port))

                tcp_socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                made.append(tcp_socket)
                # A restarted daemon must bind again while old connections sit in TIME_WAIT.
                tcp_socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                tcp_socket.bind((address, port))
                tcp_socket.listen(TCP_BACKLOG)
        except BaseException as error:  # handed to the caller below
            failure.append(error)

    thread = threading.Thread(target=worker, name="nsnet-dns-listen")
    thread.start()
    thread.join()

    if failure:
        for sock in made:
            sock.close()
        error = failure[0]
        if isinstance(error, NsnetError):
            raise error
        cause = getattr(error, "strerror", None) or str(error)
        if isinstance(error, OSError) and error.errno in (errno.ENETUNREACH, errno.EADDRNOTAVAIL):
            cause += f" ({address} is not reachable there: is lo up?)"
        raise Unavailable(
            f"cannot open DNS listener {address}:{port} in namespace '{netns_path}': {cause}"
        ) from error

    udp_socket, tcp_socket = made
    udp_socket.setblocking(False)
    tcp_socket.setblocking(False)
    return udp_socket, tcp_socket


@dataclass
class _Sandbox:
    container_id: str
    scope_function: ScopeFunction
    udp_transport: asyncio.DatagramTransport | None = None
    tcp_server: asyncio.AbstractServer | None = None
    connections: set[asyncio.StreamWriter] = field(default_factory=set)
    forwards: set[asyncio.Task] = field(default_factory=set)
    closed: bool = False
    overload_logged_at: float = 0.0

    def scope(self) -> SandboxScope:
        """The container's scope now; NO_SCOPE (answer and forward nothing) if it fails."""
        try:
            return self.scope_function()
        except Exception:
            # A broken scope must not take the server down; the container sees SERVFAIL.
            log.exception("dns: container %s: cannot read its scope", self.container_id[:12])
            return NO_SCOPE


class _UdpProtocol(asyncio.DatagramProtocol):
    def __init__(self, server: "DnsServer", sandbox: _Sandbox) -> None:
        self.server = server
        self.sandbox = sandbox
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Keep the transport that answers are sent on."""
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, client: tuple[str, int]) -> None:
        # Local answers are sent from here, without a task: they are most of the traffic.
        """Answer one query: from the index at once, or from upstreams in a task.

        A query beyond MAX_PENDING_FORWARDS waiting for upstreams is dropped, as is one that fails.
        """
        scope = self.sandbox.scope()
        try:
            reply, pending = self.server.resolver.prepare(data, scope, UDP)
        except Exception as error:
            # One bad query must cost one answer, not the listener; no traceback per packet.
            log.warning(
                "dns: container %s: query failed: %r", self.sandbox.container_id[:12], error
            )
            return
        if reply is not None:
            self.transport.sendto(reply, client)
            return
        if pending is None:
            return

        if len(self.sandbox.forwards) >= MAX_PENDING_FORWARDS:
            now = time.monotonic()
            if now - self.sandbox.overload_logged_at > OVERLOAD_LOG_INTERVAL_SECONDS:
                self.sandbox.overload_logged_at = now
                log.warning(
                    "dns: container %s: %d queries wait for upstreams; dropping more",
                    self.sandbox.container_id[:12],
                    MAX_PENDING_FORWARDS,
                )
            return
        task = asyncio.get_running_loop().create_task(self._forward(pending, scope, client))
        self.sandbox.forwards.add(task)
        task.add_done_callback(self.sandbox.forwards.discard)

    async def _forward(self, query, scope: SandboxScope, client: tuple[str, int]) -> None:
        try:
            reply = await self.server.resolver.finish(query, scope, UDP)
        except Exception as error:
            log.warning(
                "dns: container %s: query failed: %r", self.sandbox.container_id[:12], error
            )
            return
        if not self.transport.is_closing():
            self.transport.sendto(reply, client)

    def error_received(self, error: Exception) -> None:
        """Log an error the socket reported (an ICMP error, say); serving goes on."""
        log.debug("dns: container %s: UDP error: %s", self.sandbox.container_id[:12], error)


class DnsServer:
    """Serves each sandbox's listener sockets with one ``Resolver`` on one event loop."""

    def __init__(self, resolver: Resolver) -> None:
        self.resolver = resolver
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._sandboxes: dict[str, _Sandbox] = {}

    @property
    def index(self) -> NameIndex:
        """The name index the server answers from (the engine and the cluster agent write it)."""
        return self.resolver.index

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        """The event loop the server runs on, or None when it is not running."""
        return self._loop

    # Life cycle

    def start(self, netns_path: str | Path | None = None) -> None:
        """Run the server's event loop in a thread of its own.

        ``netns_path`` puts that thread in another namespace first; forwarded queries then
        leave from there. Tests use it to keep a server in a throwaway "host" namespace; the
        daemon leaves it out, being in its host namespace already.
        """
        if self._loop is not None:
            raise RuntimeError("the DNS server is already running")
        started = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            try:
                with namespace.entered(netns_path) if netns_path else contextlib.nullcontext():
                    asyncio.set_event_loop(loop)
                    self._loop = loop
                    started.set()
                    loop.run_forever()
                    loop.run_until_complete(self._close_all())
                    loop.run_until_complete(_cancel_remaining_tasks())
            except BaseException as error:  # reported by start() or logged
                failure.append(error)
                if not started.is_set():
                    started.set()
                else:
                    log.exception("dns: the server's loop failed")
            finally:
                self._loop = None
                loop.close()

        self._thread = threading.Thread(target=run, name="nsnet-dns", daemon=True)
        self._thread.start()
        started.wait()
        if failure:
            self._thread.join()
            self._thread = None
            raise Unavailable(f"cannot start the DNS server: {failure[0]}") from failure[0]
        log.info("dns: server started")

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        """Serve on ``loop``, which the caller runs in a thread of the host namespace."""
        if self._loop is not None:
            raise RuntimeError("the DNS server is already running")
        self._loop = loop

    def stop(self) -> None:
        """Stop serving every sandbox and, if ``start`` made the loop, end its thread."""
        loop = self._loop
        if loop is None:
            return
        if self._thread is None:
            self._call(self._close_all())
            self._loop = None
            return
        loop.call_soon_threadsafe(loop.stop)
        self._thread.join(timeout=CALL_TIMEOUT_SECONDS)
        if self._thread.is_alive():
            log.warning("dns: the server's thread did not stop in time")
        self._thread = None
        log.info("dns: server stopped")

    def __enter__(self) -> "DnsServer":
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()

    # Sandboxes (any thread but the loop's)

    def add_sandbox(
        self, container_id: str, netns_path: str | Path, scope_function: ScopeFunction
    ) -> None:
        """Listen at 127.0.0.11:53 in the sandbox and answer with ``scope_function()``'s scope.

        Serving a container that is already served replaces its sockets: the old ones are
        closed first, since they hold the address.
        """
        if container_id in self._sandboxes:
            self.remove_sandbox(container_id)
        udp_socket, tcp_socket = open_listener_sockets(netns_path)
        try:
            self.serve_sockets(container_id, udp_socket, tcp_socket, scope_function)
        except BaseException:
            udp_socket.close()
            tcp_socket.close()
            raise

    def serve_sockets(
        self,
        container_id: str,
        udp_socket: socket.socket,
        tcp_socket: socket.socket,
        scope_function: ScopeFunction,
    ) -> None:
        """Serve sockets the caller opened (``open_listener_sockets``) for a container."""
        self._call(self.serve(container_id, udp_socket, tcp_socket, scope_function))

    def remove_sandbox(self, container_id: str) -> bool:
        """Stop serving a container and close its sockets; False when it was not served."""
        if self._loop is None:
            return False
        return self._call(self.close_sandbox(container_id))

    def sandbox_ids(self) -> list[str]:
        """The containers being served."""
        return list(self._sandboxes)

    def _call(self, coroutine):
        loop = self._loop
        if loop is None:
            coroutine.close()
            raise Unavailable("cannot reach the DNS server: it is not running")
        if self._on_loop_thread(loop):
            coroutine.close()
            raise RuntimeError("called on the DNS loop's thread: await the coroutine instead")
        future = asyncio.run_coroutine_threadsafe(coroutine, loop)
        try:
            return future.result(timeout=CALL_TIMEOUT_SECONDS)
        except FutureTimeout as error:
            future.cancel()
            raise Unavailable("cannot reach the DNS server: it did not answer in time") from error

    @staticmethod
    def _on_loop_thread(loop: asyncio.AbstractEventLoop) -> bool:
        try:
            return asyncio.get_running_loop() is loop
        except RuntimeError:
            return False

    # Sandboxes (on the loop)

    async def serve(
        self,
        container_id: str,
        udp_socket: socket.socket,
        tcp_socket: socket.socket,
        scope_function: ScopeFunction,
    ) -> None:
        """Start serving a container's sockets; runs on the server's loop."""
        await self.close_sandbox(container_id)
        loop = asyncio.get_running_loop()
        sandbox = _Sandbox(container_id=container_id, scope_function=scope_function)
        try:
            transport, _ = await loop.create_datagram_endpoint(
                lambda: _UdpProtocol(self, sandbox), sock=udp_socket
            )
            sandbox.udp_transport = transport
            sandbox.tcp_server = await asyncio.start_server(
                lambda reader, writer: self._serve_connection(sandbox, reader, writer),
                sock=tcp_socket,
            )
        except BaseException:
            await self._close(sandbox)
            raise
        self._sandboxes[container_id] = sandbox
        log.info("dns: serving container %s", container_id[:12])

    async def close_sandbox(self, container_id: str) -> bool:
        """Stop serving a container; runs on the server's loop."""
        sandbox = self._sandboxes.pop(container_id, None)
        if sandbox is None:
            return False
        await self._close(sandbox)
        log.info("dns: stopped serving container %s", container_id[:12])
        return True

    async def _close(self, sandbox: _Sandbox) -> None:
        sandbox.closed = True
        if sandbox.udp_transport is not None:
            sandbox.udp_transport.close()
        if sandbox.tcp_server is not None:
            sandbox.tcp_server.close()
        for writer in list(sandbox.connections):
            writer.close()
        for task in list(sandbox.forwards):
            task.cancel()
        # Transports close their sockets in callbacks already queued; let them run so that
        # no socket of ours holds the namespace when the caller goes on.
        for _ in range(2):
            await asyncio.sleep(0)

    async def _close_all(self) -> None:
        for container_id in list(self._sandboxes):
            await self.close_sandbox(container_id)

    async def _serve_connection(
        self, sandbox: _Sandbox, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        if sandbox.closed or len(sandbox.connections) >= MAX_TCP_CONNECTIONS:
            writer.close()
            return
        sandbox.connections.add(writer)
        try:
            while True:
                try:
                    async with asyncio.timeout(TCP_IDLE_SECONDS):
                        (length,) = struct.unpack("!H", await reader.readexactly(2))
                        data = await reader.readexactly(length)
                except (asyncio.IncompleteReadError, TimeoutError, ConnectionError):
                    break

                try:
                    reply = await self.resolver.handle(data, sandbox.scope(), TCP)
                except Exception as error:
                    log.warning(
                        "dns: container %s: query failed: %r", sandbox.container_id[:12], error
                    )
                    break
                if reply is None:
                    continue
                writer.write(struct.pack("!H", len(reply)) + reply)
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            sandbox.connections.discard(writer)
            writer.close()


async def _cancel_remaining_tasks() -> None:
    """Cancel what still runs on the loop (connection handlers) so that it can close cleanly."""
    current = asyncio.current_task()
    remaining = [task for task in asyncio.all_tasks() if task is not current]
    for task in remaining:
        task.cancel()
    await asyncio.gather(*remaining, return_exceptions=True)
