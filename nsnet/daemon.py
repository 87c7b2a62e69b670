"""nsnetd: the daemon serving nsnet's API on a unix socket.

    nsnetd [--root DIR] [--host unix://PATH] [--dns ADDR]... [--log-level LEVEL] [--debug]
           [--cluster-store etcd://ADDR:PORT --advertise-addr IP [--cluster-ttl S]]
           [--config-file PATH]

One daemon per state directory: the pid file is held locked while the daemon runs, and a socket
that still answers ``_ping`` is never taken over. A stale socket (its daemon gone) is removed.
The socket is made with mode 0660 (root and its group). SIGTERM and SIGINT stop the server and
close the engine; processes started with ``run -d`` are not stopped: they keep running and the
next daemon adopts them. Logs go to stderr (the CLI's automatic start sends them to
``Paths.daemon_log``).

``--dns`` (repeatable, as dockerd's) names the upstream name servers the embedded DNS forwards
to and that containers on the default bridge use; without it ``NSNET_DNS`` (comma-separated)
does, and without either the host's own resolv.conf.

``--cluster-store`` and ``--advertise-addr`` make this host a member of a cluster whose overlay
networks live in etcd v3 (nsnet.cluster); they can also be given in the configuration file
(``--config-file``, by default ``daemon.json`` in the state directory when it exists) under
Docker's keys ``cluster-store`` and ``cluster-advertise``, with ``cluster-ttl``.
"""

import argparse
import contextlib
import errno
import fcntl
import logging
import os
import resource
import signal
import socket
import stat
import sys
from collections.abc import Iterator
from pathlib import Path

from nsnet import __version__
from nsnet.errors import Conflict, InvalidArgument, NsnetError, Unavailable
from nsnet.paths import Paths

log = logging.getLogger("nsnet.daemon")

SOCKET_MODE = 0o660
OPEN_FILE_LIMIT = 1 << 20  # as dockerd's unit (LimitNOFILE=infinity is 1,048,576 on Debian)
DNS_ENV = "NSNET_DNS"
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def parse_arguments(argv: list[str] | None) -> argparse.Namespace:
    """nsnetd's command line (None: ``sys.argv``); argparse exits on a bad one."""
    parser = argparse.ArgumentParser(
        prog="nsnetd", description="nsnet's daemon: the Docker network API on a unix socket."
    )
    parser.add_argument(
        "--root",
        help="one directory for state and runtime files (as NSNET_ROOT; default /var/lib/nsnet"
        " and /run/nsnet)",
    )
    parser.add_argument(
        "-H",
        "--host",
        help="the socket to serve, unix://PATH (default: nsnetd.sock in the runtime directory)",
    )
    parser.add_argument(
        "--dns",
        action="append",
        default=[],
        metavar="ADDR",
        help="an upstream DNS server for containers, repeatable (default: $NSNET_DNS, a"
        " comma-separated list, else the host's resolv.conf)",
    )
    parser.add_argument(
        "--cluster-store",
        metavar="URL",
        help="the cluster store for overlay networks, etcd://ADDR:PORT (etcd v3)",
    )
    parser.add_argument(
        "--advertise-addr",
        "--cluster-advertise",
        dest="advertise_addr",
        metavar="IP",
        help="this host's address on the underlay, as the other hosts reach it",
    )
    parser.add_argument(
        "--cluster-ttl",
        type=int,
        metavar="SECONDS",
        help="how long this host's endpoints outlive it in the cluster store (default 15)",
    )
    parser.add_argument(
        "--config-file",
        metavar="PATH",
        help="a JSON configuration file (default: daemon.json in the state directory, if any)",
    )
    parser.add_argument(
        "--log-level",
        default="info",
        choices=("debug", "info", "warning", "error", "critical"),
        help="the lowest level of messages logged (default info)",
    )
    parser.add_argument("--debug", action="store_true", help="log at debug level, with requests")
    parser.add_argument("--version", action="version", version=f"nsnetd {__version__}")
    return parser.parse_args(argv)


def dns_servers(flags: list[str], environment: dict[str, str]) -> list[str]:
    """The upstream servers: ``--dns`` flags, else ``NSNET_DNS``; each checked."""
    from nsnet.dns.resolver import Upstream

    servers = list(flags)
    if not servers:
        servers = [item.strip() for item in environment.get(DNS_ENV, "").split(",")]
    servers = [server for server in servers if server]
    for server in servers:
        try:
            Upstream.parse(server)
        except NsnetError as error:
            raise InvalidArgument(f"cannot start nsnetd: --dns: {error}") from error
    return servers


def cluster_settings(options: argparse.Namespace, paths: Paths):
    """The cluster configuration from the flags and the configuration file, or None."""
    from nsnet.cluster.config import CONFIG_FILE_NAME, cluster_config, read_config_file

    if options.config_file:
        file_settings = read_config_file(Path(options.config_file), required=True)
    else:
        file_settings = read_config_file(paths.state_dir / CONFIG_FILE_NAME, required=False)
    try:
        return cluster_config(
            options.cluster_store, options.advertise_addr, options.cluster_ttl, file_settings
        )
    except NsnetError as error:
        raise InvalidArgument(f"cannot start nsnetd: {error}") from error


def socket_path_from_host(host: str) -> Path:
    """``unix:///run/x.sock`` or a plain path, as a path; other schemes are refused."""
    if host.startswith("unix://"):
        return Path(host[len("unix://") :])
    if "://" in host:
        raise Unavailable(f"cannot serve '{host}': only unix:// sockets are supported")
    return Path(host)


def socket_answers(path: Path) -> bool:
    """Whether something answers ``_ping`` on the socket at ``path``."""
    from nsnet.client import Client

    return Client(str(path), timeout=2).ping()


@contextlib.contextmanager
def pid_file_lock(paths: Paths, socket_path: Path) -> Iterator[None]:
    """Hold the pid file locked (one daemon per state) and write our pid into it."""
    descriptor = os.open(paths.pid_file, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            if error.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise
            owner = os.pread(descriptor, 32, 0).decode(errors="replace").strip() or "unknown"
            raise Conflict(
                f"cannot start nsnetd: another nsnetd (pid {owner}) owns {paths.run_dir}"
                f" (socket unix://{socket_path})"
            ) from error
        os.ftruncate(descriptor, 0)
        os.pwrite(descriptor, f"{os.getpid()}\n".encode(), 0)
        try:
            yield
        finally:
            with contextlib.suppress(OSError):
                os.unlink(paths.pid_file)
    finally:
        os.close(descriptor)


def bind_socket(path: Path) -> socket.socket:
    """A listening unix socket at ``path`` with mode 0660, replacing a stale one."""
    if path.exists() or path.is_symlink():
        if socket_answers(path):
            raise Conflict(f"cannot start nsnetd: a daemon already answers on unix://{path}")
        if not stat.S_ISSOCK(path.lstat().st_mode):
            raise Conflict(f"cannot start nsnetd: {path} exists and is not a socket")
        log.info("removing stale socket %s", path)
        path.unlink()

    path.parent.mkdir(parents=True, exist_ok=True)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    # The umask makes the socket 0660 from birth: no moment when others could connect.
    previous_umask = os.umask(0o117)
    try:
        listener.bind(str(path))
    except OSError as error:
        listener.close()
        raise Unavailable(f"cannot bind socket '{path}': {error.strerror}") from error
    finally:
        os.umask(previous_umask)
    os.chmod(path, SOCKET_MODE)
    listener.listen(128)
    listener.setblocking(False)
    return listener


def remove_socket(path: Path, inode: int) -> None:
    """Remove our socket file (inode ``inode``), not one that has replaced it meanwhile."""
    with contextlib.suppress(OSError):
        if path.lstat().st_ino == inode:
            path.unlink()


def serve(
    paths: Paths,
    socket_path: Path,
    debug: bool,
    log_level: str,
    dns: list[str] | None = None,
    cluster=None,
) -> int:
    """Run the API server until SIGTERM/SIGINT; return the exit status."""
    import uvicorn

    from nsnet.api.app import create_app
    from nsnet.engine import Engine

    engine = Engine(paths, dns_servers=dns, cluster=cluster)
    application = create_app(engine)

    class Server(uvicorn.Server):
        def handle_exit(self, sig: int, frame) -> None:
            # A followed log (docker logs -f) would hold the shutdown for its whole grace time.
            application.stop_streams()
            super().handle_exit(sig, frame)

        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            # uvicorn re-raises the signal after shutting down, which would end us with the
            # signal's status; a clean stop should exit 0.
            previous = {
                number: signal.signal(number, self.handle_exit)
                for number in (signal.SIGINT, signal.SIGTERM)
            }
            try:
                yield
            finally:
                for number, handler in previous.items():
                    signal.signal(number, handler)

    if dns:
        log.info("upstream DNS servers for containers: %s", ", ".join(dns))
    config = uvicorn.Config(
        application,
        log_config=None,
        log_level=log_level,
        access_log=debug,
        server_header=False,
        lifespan="on",
        timeout_graceful_shutdown=5,
    )
    server = Server(config)

    with pid_file_lock(paths, socket_path):
        listener = bind_socket(socket_path)
        inode = socket_path.lstat().st_ino
        log.info("nsnetd %s serving unix://%s (pid %d)", __version__, socket_path, os.getpid())
        try:
            server.run(sockets=[listener])
        except SystemExit as exit_request:
            # uvicorn exits this way when the application's start-up (engine.open) failed.
            log.error("nsnetd could not start: the engine did not open (see above)")
            return int(exit_request.code or 1)
        finally:
            remove_socket(socket_path, inode)
            listener.close()
    if not server.started:
        return 1
    log.info("nsnetd stopped")
    return 0


def raise_open_file_limit() -> None:
    """Raise the soft limit on open files to the hard one, as dockerd's unit does.

    The daemon holds a few descriptors per container (the embedded DNS's sockets in its
    namespace among them), so Debian's default soft limit of 1,024 would refuse new
    containers at a few hundred. Its detached processes inherit the raised limit, as Docker's
    containers do.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = min(hard, OPEN_FILE_LIMIT) if hard != resource.RLIM_INFINITY else OPEN_FILE_LIMIT
    if soft != resource.RLIM_INFINITY and soft < wanted:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
        except (ValueError, OSError) as error:
            log.warning("cannot raise the open-file limit from %d: %s", soft, error)
            return
        log.info("raised the open-file limit from %d to %d", soft, wanted)


def main(argv: list[str] | None = None) -> int:
    """The ``nsnetd`` console script."""
    options = parse_arguments(argv)
    if options.root:
        # Set in the environment too, so that whatever the daemon runs finds the same root.
        os.environ["NSNET_ROOT"] = os.path.abspath(options.root)
    paths = Paths.from_env()

    level = "debug" if options.debug else options.log_level
    logging.basicConfig(level=level.upper(), format=LOG_FORMAT, stream=sys.stderr)

    if os.geteuid() != 0:
        log.warning("nsnetd runs as uid %d, not root: network changes will fail", os.geteuid())
    raise_open_file_limit()

    try:
        socket_path = socket_path_from_host(options.host) if options.host else paths.socket
        dns = dns_servers(options.dns, dict(os.environ))
        cluster = cluster_settings(options, paths)
        paths.ensure()
        return serve(paths, socket_path, options.debug, level, dns, cluster)
    except NsnetError as error:
        log.error("%s", error)
        return 1


if __name__ == "__main__":
    sys.exit(main())
