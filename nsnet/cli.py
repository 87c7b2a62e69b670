"""nsnet: Docker's network and container commands, as a client of nsnetd's API.

    nsnet [-H unix://PATH] network create|ls|inspect|rm|connect|disconnect|prune ...
    nsnet [-H unix://PATH] create|run|start|stop|rm|exec|ps|inspect|logs|port|info|version ...

Flags, tables and JSON follow the docker CLI's. When the daemon's socket is absent, the CLI
starts ``nsnetd`` in the background (its own session, output to the daemon log) and says so on
stderr. An error is one line on stderr ("Error response from daemon: ...") and exit status 1,
or 125 for ``run`` and ``create`` as with docker; ``run`` and ``exec`` otherwise exit with the
command's own status.

Start-up time counts (it is compared with docker's): only click, json and nsnet's own small
client are imported up front; subprocess and the rest wait until a command needs them.
"""

import json
import os
import re
import signal
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from ipaddress import IPv4Address, IPv4Network, ip_address, ip_network
from typing import Any

import click

from nsnet import __version__
from nsnet.client import Client, ConnectionFailed, quote_ref
from nsnet.errors import NotFound, NsnetError
from nsnet.paths import Paths

# Docker's tabwriter: cells at least 10 wide, 3 spaces of padding.
TABLE_MIN_WIDTH = 10
TABLE_PADDING = 3
SHORT_ID = 12
COMMAND_WIDTH = 20
START_TIMEOUT = 10
EXIT_FAILED_TO_RUN = 125
PROTOCOLS = ("tcp", "udp", "sctp")

CONTEXT = {"help_option_names": ["--help"], "max_content_width": 99}
# create/run/exec stop parsing options at the command, as docker does: `run sh -c 'x'`.
COMMAND_CONTEXT = {**CONTEXT, "allow_interspersed_args": False}


class Failed(Exception):
    """Leave with ``code``; whatever had to be said has been said."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


# Talking to the daemon


def socket_from_host(host: str) -> str:
    """``unix:///path`` (or a plain path) as a socket path; other transports are refused."""
    if host.startswith("unix://"):
        return host[len("unix://") :]
    if "://" in host:
        raise click.BadParameter(f"'{host}': only unix:// sockets are supported", param_hint="-H")
    return host


class Daemon:
    """The API at one socket; starts nsnetd there once when nothing listens."""

    def __init__(self, socket_path: str, autostart: bool) -> None:
        self.socket_path = socket_path
        self.client = Client(socket_path)
        self.autostart = autostart
        self.started = False

    def call(self, method: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Call ``method``; when no daemon listens, start nsnetd and call it again.

        Only with autostart on, and once per invocation: a request that never reached a daemon is
        safe to send again.
        """
        try:
            return method(*args, **kwargs)
        except ConnectionFailed as error:
            # The request never reached a daemon, so sending it again is safe. A socket file
            # that refuses connections is a killed daemon's: the new one replaces it.
            if not self.autostart or self.started or not error.no_listener:
                raise
            self.start()
            return method(*args, **kwargs)

    def get(self, path: str, query: dict | None = None) -> Any:
        """GET ``path``; the JSON answer."""
        return self.call(self.client.get, path, query=query)

    def post(self, path: str, body: Any = None, query: dict | None = None) -> Any:
        """POST ``body`` as JSON to ``path``; the JSON answer (None when empty)."""
        return self.call(self.client.post, path, body=body, query=query)

    def delete(self, path: str, query: dict | None = None) -> None:
        """DELETE ``path``."""
        self.call(self.client.delete, path, query=query)

    def stream(self, path: str, query: dict | None = None) -> Iterator[bytes]:
        """GET ``path``; its body in pieces as they arrive."""
        return self.call(self.client.stream, "GET", path, query=query)[1]

    def start(self) -> None:
        """Start nsnetd in the background and wait until it answers ``_ping``."""
        import subprocess

        paths = Paths.from_env()
        argv = daemon_argv(self.socket_path, paths)
        log_path = paths.daemon_log
        log_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        click.echo(f"nsnetd is not running: starting it (log: {log_path})", err=True)

        with open(log_path, "ab") as log_file:
            process = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.started = True

        # Another CLI may be starting a daemon at the same moment: ours then exits (one daemon
        # per state directory) and the other's answers, so keep asking for a while after.
        deadline = time.monotonic() + START_TIMEOUT
        exited_at = None
        while time.monotonic() < deadline:
            if self.client.ping(timeout=1):
                return
            if exited_at is None and process.poll() is not None:
                exited_at = time.monotonic()
            if exited_at is not None and time.monotonic() - exited_at > 2:
                break
            time.sleep(0.05)
        raise ConnectionFailed(
            f"nsnetd did not start on unix://{self.socket_path} within {START_TIMEOUT} s"
            f" (exit status {process.poll()}); see {log_path}"
        )


def daemon_argv(socket_path: str, paths: Paths) -> list[str]:
    """How to start nsnetd for ``socket_path``: this interpreter, so this installation's."""
    # -P: not the current directory first on the path, where an "nsnet" folder would win.
    argv = [sys.executable, "-P", "-m", "nsnet.daemon"]
    if os.path.abspath(socket_path) != str(paths.socket):
        argv += ["--host", f"unix://{socket_path}"]
    return argv


def daemon_of(context: click.Context) -> Daemon:
    """The ``Daemon`` the root command made for this invocation."""
    return context.find_root().obj


def report(error: NsnetError) -> None:
    """One line on stderr, as the docker CLI words it."""
    if isinstance(error, ConnectionFailed):
        click.echo(f"Error: {error}", err=True)
    else:
        click.echo(f"Error response from daemon: {error}", err=True)


# Output


def format_table(header: list[str], rows: Iterable[list[str]]) -> str:
    """Rows aligned like docker's tabwriter (min width 10, padding 3, last column ragged)."""
    lines = [header, *rows]
    widths = [
        max(TABLE_MIN_WIDTH, max(len(line[column]) for line in lines) + TABLE_PADDING)
        for column in range(len(header) - 1)
    ]
    text = []
    for line in lines:
        cells = [cell.ljust(width) for cell, width in zip(line[:-1], widths, strict=True)]
        text.append("".join(cells) + line[-1])
    return "\n".join(text) + "\n"


def format_json(value: Any) -> str:
    """JSON as the docker CLI prints inspect results: 4-space indent, HTML characters escaped."""
    text = json.dumps(value, indent=4, ensure_ascii=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026") + "\n"


def ellipsis(text: str, width: int) -> str:
    """``text`` cut to ``width`` characters, the last being "…" when cut."""
    if len(text) <= width:
        return text
    return text[: width - 1] + "…"


def short_id(identifier: str, no_trunc: bool = False) -> str:
    """An id cut to Docker's 12 characters, unless ``no_trunc``."""
    return identifier if no_trunc else identifier[:SHORT_ID]


def parse_key_values(values: Iterable[str], flag: str, need_value: bool = False) -> dict[str, str]:
    """``k=v`` flag values as a dict; a bare ``k`` is ``k=""`` unless ``need_value``."""
    result = {}
    for value in values:
        key, has_value, item = value.partition("=")
        if not key or (need_value and not has_value):
            raise click.BadParameter(f"'{value}' is not of the form key=value", param_hint=flag)
        result[key] = item
    return result


def parse_filter_flags(values: Iterable[str]) -> str | None:
    """``-f key=value`` flags as Docker's filters JSON ({"key": {"value": true}})."""
    filters: dict[str, dict[str, bool]] = {}
    for value in values:
        key, has_value, item = value.partition("=")
        if not has_value:
            raise click.BadParameter(f"'{value}' is not of the form key=value", param_hint="-f")
        filters.setdefault(key.strip().lower(), {})[item] = True
    return json.dumps(filters) if filters else None


# Network creation: Docker's grouping of --subnet, --ip-range, --gateway and --aux-address


def parse_network(text: str, flag: str) -> IPv4Network:
    """A ``--subnet`` or ``--ip-range`` value as an IPv4 network; BadParameter naming ``flag``.

    Host bits are taken here (the network is used only to group the flags); the daemon refuses
    them in the text it is sent.
    """
    try:
        network = ip_network(text, strict=False)
    except ValueError as error:
        raise click.BadParameter(f"'{text}': {error}", param_hint=flag) from error
    if "/" not in text:
        raise click.BadParameter(f"'{text}': invalid CIDR address (no /prefix)", param_hint=flag)
    if not isinstance(network, IPv4Network):
        raise click.BadParameter(f"'{text}': IPv6 is not supported yet", param_hint=flag)
    return network


def parse_address(text: str, flag: str) -> IPv4Address:
    """A ``--gateway``, ``--aux-address`` or host IP as an IPv4 address; else BadParameter."""
    try:
        address = ip_address(text)
    except ValueError as error:
        raise click.BadParameter(f"'{text}': {error}", param_hint=flag) from error
    if not isinstance(address, IPv4Address):
        raise click.BadParameter(f"'{text}': IPv6 is not supported yet", param_hint=flag)
    return address


def ipam_configs(
    subnets: list[str], ip_ranges: list[str], gateways: list[str], aux_addresses: list[str]
) -> list[dict]:
    """IPAM.Config entries: each range, gateway and aux address goes to the subnet holding it."""
    if not subnets:
        if ip_ranges or gateways:
            raise click.UsageError("every ip-range or gateway must have a corresponding subnet")
        if aux_addresses:
            raise click.UsageError("every aux-address must have a corresponding subnet")
        return []

    parsed = [parse_network(subnet, "--subnet") for subnet in subnets]
    for position, subnet in enumerate(parsed):
        for other in parsed[position + 1 :]:
            if subnet.overlaps(other):
                raise click.UsageError(
                    "multiple overlapping subnet configuration is not supported"
                )
    configs = [{"Subnet": text} for text in subnets]

    def holder(address: IPv4Address | IPv4Network, what: str, text: str) -> dict:
        for subnet, config in zip(parsed, configs, strict=True):
            inside = (
                address.subnet_of(subnet)
                if isinstance(address, IPv4Network)
                else address in subnet
            )
            if inside:
                return config
        raise click.UsageError(f"no matching subnet for {what} {text}")

    for text in ip_ranges:
        config = holder(parse_network(text, "--ip-range"), "range", text)
        if "IPRange" in config:
            raise click.UsageError(
                f"cannot configure multiple ranges ({config['IPRange']}, {text}) on the same"
                f" subnet ({config['Subnet']})"
            )
        config["IPRange"] = text
    for text in gateways:
        config = holder(parse_address(text, "--gateway"), "gateway", text)
        if "Gateway" in config:
            raise click.UsageError(
                f"cannot configure multiple gateways ({config['Gateway']}, {text}) for the"
                f" same subnet ({config['Subnet']})"
            )
        config["Gateway"] = text
    for name, text in parse_key_values(aux_addresses, "--aux-address", need_value=True).items():
        config = holder(parse_address(text, "--aux-address"), "aux-address", text)
        config.setdefault("AuxiliaryAddresses", {})[name] = text
    return configs


# Containers: -p/--publish and --expose as Docker's ExposedPorts and PortBindings


def split_protocol(text: str, flag: str) -> tuple[str, str]:
    """``80/udp`` as (``80``, ``udp``); tcp when none is given, BadParameter for an unknown one."""
    spec, _, protocol = text.partition("/")
    protocol = protocol.lower() or "tcp"
    if protocol not in PROTOCOLS:
        raise click.BadParameter(f"'{text}': unknown protocol '{protocol}'", param_hint=flag)
    return spec, protocol


def port_range(text: str, flag: str, whole: str) -> list[int]:
    """``80`` or ``8000-8010`` as the list of ports."""
    first, dash, last = text.partition("-")
    if not first.isdigit() or (dash and not last.isdigit()):
        # int() would also take "+80", " 80" and "8_0", which Docker refuses.
        raise click.BadParameter(f"'{whole}': invalid port '{text}'", param_hint=flag)
    start = int(first)
    end = int(last) if dash else start
    if not 0 < start <= end < 65536:
        raise click.BadParameter(f"'{whole}': invalid port range '{text}'", param_hint=flag)
    return list(range(start, end + 1))


def parse_publish(text: str) -> list[tuple[str, str, str]]:
    """``[hostIP:][hostPort:]containerPort[/proto]`` as (port key, host IP, host port) triples."""
    spec, protocol = split_protocol(text, "--publish")
    parts = spec.rsplit(":", 2)
    if len(parts) == 3:
        host_ip, host_text, container_text = parts
        if host_ip:
            parse_address(host_ip.strip("[]"), "--publish")
    elif len(parts) == 2:
        host_ip, (host_text, container_text) = "", parts
    else:
        host_ip, host_text, container_text = "", "", parts[0]

    container_ports = port_range(container_text, "--publish", text)
    if host_text == "0":
        host_text = ""  # host port 0: any free port, as Docker reads it
    if host_text:
        host_ports = port_range(host_text, "--publish", text)
        if len(container_ports) == 1 and len(host_ports) > 1:
            # One container port on a host range: any free port of it (the daemon's choice).
            return [(f"{container_ports[0]}/{protocol}", host_ip, host_text)]
        if len(host_ports) != len(container_ports):
            raise click.BadParameter(
                f"'{text}': the host and container port ranges differ in size",
                param_hint="--publish",
            )
    else:
        host_ports = []

    return [
        (f"{port}/{protocol}", host_ip, str(host_ports[position]) if host_ports else "")
        for position, port in enumerate(container_ports)
    ]


def container_body(options: dict, command: tuple[str, ...]) -> dict:
    """The ``POST /containers/create`` body for create/run flags."""
    exposed: dict[str, dict] = {}
    for text in options["expose"]:
        spec, protocol = split_protocol(text, "--expose")
        for port in port_range(spec, "--expose", text):
            exposed[f"{port}/{protocol}"] = {}

    bindings: dict[str, list[dict]] = {}
    for text in options["publish"]:
        for key, host_ip, host_port in parse_publish(text):
            exposed[key] = {}
            bindings.setdefault(key, []).append({"HostIp": host_ip, "HostPort": host_port})

    networks = options["network"]
    if len(networks) > 1:
        # Docker 20.10 refuses these too; the others can be connected after the create.
        raise click.UsageError(
            "Container cannot be connected to network endpoints: "
            f"{', '.join(networks)} (give one --network, then use 'nsnet network connect')"
        )
    network = networks[0] if networks else "default"
    endpoint: dict[str, Any] = {}
    if options["ip"]:
        endpoint["IPAMConfig"] = {"IPv4Address": options["ip"]}
    if options["network_alias"]:
        endpoint["Aliases"] = list(options["network_alias"])
    endpoints = {("bridge" if network == "default" else network): endpoint} if endpoint else {}

    return {
        "Hostname": options["hostname"] or "",
        "Cmd": list(command),
        "Image": "",
        "MacAddress": options["mac_address"] or "",
        "Labels": parse_key_values(options["label"], "--label"),
        "ExposedPorts": exposed,
        "OpenStdin": bool(options.get("interactive")),
        "Tty": bool(options.get("tty")),
        "HostConfig": {
            "NetworkMode": network,
            "PortBindings": bindings,
            "PublishAllPorts": bool(options["publish_all"]),
            "AutoRemove": bool(options.get("rm")),
            "Sysctls": parse_key_values(options["sysctl"], "--sysctl", need_value=True),
            "Dns": list(options["dns"]),
            "DnsOptions": list(options["dns_option"]),
            "DnsSearch": list(options["dns_search"]),
            "ExtraHosts": [extra_host(text) for text in options["add_host"]] or None,
        },
        "NetworkingConfig": {"EndpointsConfig": endpoints},
    }


def extra_host(text: str) -> str:
    """``--add-host`` as the API's ``name:address``; docker also takes ``name=address``."""
    name, equals, address = text.partition("=")
    if equals:
        return f"{name}:{address}"
    if ":" not in text:
        raise click.BadParameter(f"'{text}': expected host:ip", param_hint="--add-host")
    return text


def container_options(function: Callable) -> Callable:
    """The flags ``create`` and ``run`` share."""
    decorators = [
        click.option("--name", help="Assign a name to the container"),
        click.option(
            "--network",
            "--net",
            "network",
            multiple=True,
            help="Connect a container to a network",
        ),
        click.option("--ip", help="IPv4 address (e.g., 172.30.100.104)"),
        click.option("--mac-address", help="Container MAC address (e.g., 92:d0:c6:0a:29:33)"),
        click.option("-h", "--hostname", help="Container host name"),
        click.option("--sysctl", multiple=True, help="Sysctl options (key=value)"),
        click.option("--network-alias", multiple=True, help="Add network-scoped alias"),
        click.option("--dns", multiple=True, help="Set custom DNS servers"),
        click.option("--dns-search", multiple=True, help="Set custom DNS search domains"),
        click.option("--dns-option", multiple=True, help="Set DNS options"),
        click.option(
            "--add-host", multiple=True, help="Add a custom host-to-IP mapping (host:ip)"
        ),
        click.option("-p", "--publish", multiple=True, help="Publish a container's port(s)"),
        click.option(
            "-P", "--publish-all", is_flag=True, help="Publish all exposed ports to random ports"
        ),
        click.option("--expose", multiple=True, help="Expose a port or a range of ports"),
        click.option("-l", "--label", multiple=True, help="Set meta data on a container"),
        click.option("-i", "--interactive", is_flag=True, help="Keep STDIN open"),
        click.option("-t", "--tty", is_flag=True, help="Allocate a pseudo-TTY"),
        click.option(
            "--rm", is_flag=True, help="Automatically remove the container when it exits"
        ),
        click.argument("command", nargs=-1, type=click.UNPROCESSED),
    ]
    for decorator in reversed(decorators):
        function = decorator(function)
    return function


def create_container(daemon: Daemon, options: dict, command: tuple[str, ...]) -> str:
    """Create the container; its id."""
    if not command:
        raise click.UsageError("a command is needed: nsnet run [OPTIONS] [--] COMMAND [ARG...]")
    body = container_body(options, command)
    query = {"name": options["name"]} if options["name"] else None
    return daemon.post("/containers/create", body=body, query=query)["Id"]


# Running a process in a container with the terminal attached


def check_terminal(interactive: bool, tty: bool) -> None:
    """Refuse ``-it`` when stdin is no terminal, as docker does (status 1)."""
    if interactive and tty and not sys.stdin.isatty():
        click.echo("the input device is not a TTY", err=True)
        raise Failed(1)


def exit_status(returncode: int) -> int:
    """A shell's view of a process's end: 128+N for a death by signal N."""
    return 128 - returncode if returncode < 0 else returncode


def run_attached(argv: list[str], interactive: bool, started: Callable[[int], None]) -> int:
    """Run ``argv`` with our stdout/stderr (and stdin when ``interactive``); its exit status.

    Ctrl-C reaches the process through the terminal; we only wait. Termination signals sent to
    us are passed on to it.
    """
    import subprocess

    # The terminal sends Ctrl-C and Ctrl-\ to the whole foreground group, the process too.
    from_terminal = (signal.SIGINT, signal.SIGQUIT)
    forwarded = (signal.SIGTERM, signal.SIGHUP)
    process = None

    def forward(number: int, frame: Any) -> None:
        if process is not None and process.poll() is None:
            process.send_signal(number)

    # A handler (not SIG_IGN) so that the child, whose handlers exec resets, keeps the default.
    previous = {number: signal.signal(number, forward) for number in forwarded}
    for number in from_terminal:
        previous[number] = signal.signal(number, lambda number, frame: None)
    try:
        try:
            process = subprocess.Popen(argv, stdin=None if interactive else subprocess.DEVNULL)
        except OSError as error:
            click.echo(f"Error: cannot run {argv[0]}: {error.strerror}", err=True)
            raise Failed(EXIT_FAILED_TO_RUN) from error
        try:
            started(process.pid)
        except BaseException:
            process.kill()
            process.wait()
            raise
        while True:
            try:
                return exit_status(process.wait())
            except InterruptedError:
                continue
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


# The command line


@click.group(context_settings=CONTEXT)
@click.option(
    "-H",
    "--host",
    metavar="unix://PATH",
    help="Daemon socket to connect to (default: $NSNET_HOST, else nsnetd.sock under NSNET_ROOT"
    " or /run/nsnet)",
)
@click.version_option(
    __version__, "-v", "--version", prog_name="nsnet", message="%(prog)s %(version)s"
)
@click.pass_context
def cli(context: click.Context, host: str | None) -> None:
    """Docker's container networking on the Linux kernel's own primitives."""
    host = host or os.environ.get("NSNET_HOST")
    socket_path = socket_from_host(host) if host else str(Paths.from_env().socket)
    autostart = os.environ.get("NSNET_AUTOSTART", "1") not in ("0", "false", "no")
    context.obj = Daemon(socket_path, autostart=autostart)


@cli.group(context_settings=CONTEXT)
def network() -> None:
    """Manage networks."""


@network.command("create", context_settings=CONTEXT)
@click.option(
    "-d", "--driver", default="bridge", show_default=True, help="Driver to manage the Network"
)
@click.option(
    "--subnet", multiple=True, help="Subnet in CIDR format that represents a network segment"
)
@click.option("--gateway", multiple=True, help="IPv4 Gateway for the master subnet")
@click.option("--ip-range", multiple=True, help="Allocate container ip from a sub-range")
@click.option(
    "--aux-address",
    multiple=True,
    help="Auxiliary IPv4 addresses used by Network driver (name=ip)",
)
@click.option("--internal", is_flag=True, help="Restrict external access to the network")
@click.option("--attachable", is_flag=True, help="Enable manual container attachment")
@click.option("--label", multiple=True, help="Set metadata on a network")
@click.option("-o", "--opt", multiple=True, help="Set driver specific options")
@click.option("--ipam-driver", default="default", help="IP Address Management Driver")
@click.option("--ipam-opt", multiple=True, help="Set IPAM driver specific options")
@click.option("--ipv6", is_flag=True, help="Enable IPv6 networking")
@click.argument("name")
@click.pass_context
def network_create(context: click.Context, name: str, **options: Any) -> None:
    """Create a network."""
    body = {
        "Name": name,
        "CheckDuplicate": True,
        "Driver": options["driver"],
        "Scope": "",
        "EnableIPv6": options["ipv6"],
        "IPAM": {
            "Driver": options["ipam_driver"],
            "Config": ipam_configs(
                list(options["subnet"]),
                list(options["ip_range"]),
                list(options["gateway"]),
                list(options["aux_address"]),
            ),
            "Options": parse_key_values(options["ipam_opt"], "--ipam-opt"),
        },
        "Internal": options["internal"],
        "Attachable": options["attachable"],
        "Ingress": False,
        "ConfigOnly": False,
        "ConfigFrom": None,
        "Options": parse_key_values(options["opt"], "--opt"),
        "Labels": parse_key_values(options["label"], "--label"),
    }
    answer = daemon_of(context).post("/networks/create", body=body)
    click.echo(answer["Id"])


@network.command("ls", context_settings=CONTEXT)
@click.option("-q", "--quiet", is_flag=True, help="Only display network IDs")
@click.option("--no-trunc", is_flag=True, help="Do not truncate the output")
@click.option(
    "-f", "--filter", "filters", multiple=True, help="Provide filter values (e.g. 'driver=bridge')"
)
@click.option("--format", "template", help="Pretty-print networks using a Go template")
@click.pass_context
def network_ls(
    context: click.Context,
    quiet: bool,
    no_trunc: bool,
    filters: tuple[str, ...],
    template: str | None,
) -> None:
    """List networks."""
    query = {"filters": parse_filter_flags(filters)}
    networks = sorted(daemon_of(context).get("/networks", query=query), key=lambda n: n["Name"])
    if quiet:
        for entry in networks:
            click.echo(short_id(entry["Id"], no_trunc))
        return
    if template:
        rows = [network_row(entry, no_trunc) for entry in networks]
        click.echo(format_listed(rows, template, "NETWORK ID"), nl=False)
        return
    rows = [
        [short_id(entry["Id"], no_trunc), entry["Name"], entry["Driver"], entry["Scope"]]
        for entry in networks
    ]
    click.echo(format_table(["NETWORK ID", "NAME", "DRIVER", "SCOPE"], rows), nl=False)


def network_row(entry: dict, no_trunc: bool) -> dict[str, str]:
    """The fields of ``network ls --format``, as docker renders them."""
    labels = entry.get("Labels") or {}
    return {
        "ID": short_id(entry["Id"], no_trunc),
        "Name": entry["Name"],
        "Driver": entry["Driver"],
        "Scope": entry["Scope"],
        "IPv6": str(entry.get("EnableIPv6", False)).lower(),
        "Internal": str(entry.get("Internal", False)).lower(),
        "Labels": ",".join(f"{key}={value}" for key, value in sorted(labels.items())),
        "CreatedAt": entry.get("Created", ""),
    }


@network.command("inspect", context_settings=CONTEXT)
@click.option("-f", "--format", "template", help="Format the output using the given Go template")
@click.argument("names", nargs=-1, required=True)
@click.pass_context
def network_inspect(context: click.Context, template: str | None, names: tuple[str, ...]) -> None:
    """Display detailed information on one or more networks."""
    daemon = daemon_of(context)
    found, errors = [], []
    for name in names:
        try:
            found.append(daemon.get(f"/networks/{quote_ref(name)}"))
        except NotFound as error:
            errors.append(error)
    click.echo(format_inspected(found, template), nl=False)
    for error in errors:
        report(error)
    if errors:
        raise Failed(1)


@network.command("rm", context_settings=CONTEXT)
@click.argument("names", nargs=-1, required=True)
@click.pass_context
def network_rm(context: click.Context, names: tuple[str, ...]) -> None:
    """Remove one or more networks."""
    each(names, lambda name: daemon_of(context).delete(f"/networks/{quote_ref(name)}"))


@network.command("connect", context_settings=CONTEXT)
@click.option("--ip", help="IPv4 address (e.g., 172.30.100.104)")
@click.option("--alias", multiple=True, help="Add network-scoped alias for the container")
@click.argument("network_name", metavar="NETWORK")
@click.argument("container")
@click.pass_context
def network_connect(
    context: click.Context,
    ip: str | None,
    alias: tuple[str, ...],
    network_name: str,
    container: str,
) -> None:
    """Connect a container to a network."""
    endpoint: dict[str, Any] = {"Aliases": list(alias) or None}
    if ip:
        endpoint["IPAMConfig"] = {"IPv4Address": ip}
    body = {"Container": container, "EndpointConfig": endpoint}
    daemon_of(context).post(f"/networks/{quote_ref(network_name)}/connect", body=body)


@network.command("disconnect", context_settings=CONTEXT)
@click.option(
    "-f", "--force", is_flag=True, help="Force the container to disconnect from a network"
)
@click.argument("network_name", metavar="NETWORK")
@click.argument("container")
@click.pass_context
def network_disconnect(
    context: click.Context, force: bool, network_name: str, container: str
) -> None:
    """Disconnect a container from a network."""
    body = {"Container": container, "Force": force}
    daemon_of(context).post(f"/networks/{quote_ref(network_name)}/disconnect", body=body)


@network.command("prune", context_settings=CONTEXT)
@click.option("-f", "--force", is_flag=True, help="Do not prompt for confirmation")
@click.option(
    "--filter", "filters", multiple=True, help="Provide filter values (e.g. 'until=<timestamp>')"
)
@click.pass_context
def network_prune(context: click.Context, force: bool, filters: tuple[str, ...]) -> None:
    """Remove all unused networks."""
    query = {"filters": parse_filter_flags(filters)}
    if not force and not confirm(
        "WARNING! This will remove all custom networks not used by at least one container."
    ):
        return
    answer = daemon_of(context).post("/networks/prune", query=query)
    names = answer.get("NetworksDeleted") or []
    if names:
        click.echo("Deleted Networks:\n" + "".join(f"{name}\n" for name in names))


def confirm(warning: str) -> bool:
    """Ask as docker does; no answer (no terminal) means no."""
    click.echo(f"{warning}\nAre you sure you want to continue? [y/N] ", nl=False)
    line = sys.stdin.readline() if sys.stdin else ""
    return line.strip().lower() in ("y", "yes")


def each(names: Iterable[str], action: Callable[[str], None]) -> None:
    """Apply ``action`` to every name, echoing those it worked for and reporting the others."""
    failed = False
    for name in names:
        try:
            action(name)
        except ConnectionFailed:
            raise
        except NsnetError as error:
            report(error)
            failed = True
            continue
        click.echo(name)
    if failed:
        raise Failed(1)


@cli.command("create", context_settings=COMMAND_CONTEXT)
@container_options
@click.pass_context
def create(context: click.Context, command: tuple[str, ...], **options: Any) -> None:
    """Create a container (a sandbox, and the command it will run)."""
    with failing_with(EXIT_FAILED_TO_RUN):
        click.echo(create_container(daemon_of(context), options, command))


@cli.command("run", context_settings=COMMAND_CONTEXT)
@click.option(
    "-d", "--detach", is_flag=True, help="Run container in background and print container ID"
)
@container_options
@click.pass_context
def run(context: click.Context, detach: bool, command: tuple[str, ...], **options: Any) -> int:
    """Run a command in a new container."""
    daemon = daemon_of(context)
    if not detach:
        check_terminal(options["interactive"], options["tty"])

    with failing_with(EXIT_FAILED_TO_RUN):
        container_id = create_container(daemon, options, command)
        path = f"/nsnet/containers/{container_id}"
    if detach:
        try:
            daemon.post(f"/containers/{container_id}/start")
        except NsnetError as error:
            report(error)
            raise Failed(start_failure_status(str(error))) from error
        click.echo(container_id)
        return 0
    with failing_with(EXIT_FAILED_TO_RUN):
        argv = daemon.post(f"{path}/enter", body={"Cmd": list(command)})["Argv"]

    def started(pid: int) -> None:
        with failing_with(EXIT_FAILED_TO_RUN):
            daemon.post(f"{path}/attach", body={"Pid": pid})

    status = run_attached(argv, options["interactive"], started)
    try:
        daemon.post(f"{path}/exited", body={"ExitCode": status})
        if options["rm"]:
            try:
                daemon.delete(f"/containers/{container_id}", query={"force": "1"})
            except NotFound:
                pass  # the daemon removed it already (AutoRemove)
    except NsnetError as error:
        report(error)
    return status


@cli.command("exec", context_settings=COMMAND_CONTEXT)
@click.option("-i", "--interactive", is_flag=True, help="Keep STDIN open")
@click.option("-t", "--tty", is_flag=True, help="Allocate a pseudo-TTY")
@click.argument("container")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
@click.pass_context
def exec_command(
    context: click.Context, interactive: bool, tty: bool, container: str, command: tuple[str, ...]
) -> int:
    """Run a command in a running container."""
    if command[:1] == ("--",):
        command = command[1:]
    if not command:
        raise click.UsageError(
            "a command is needed: nsnet exec [OPTIONS] CONTAINER [--] COMMAND [ARG...]"
        )
    check_terminal(interactive, tty)
    path = f"/nsnet/containers/{quote_ref(container)}/enter"
    argv = daemon_of(context).post(path, body={"Cmd": list(command), "Running": True})["Argv"]
    return run_attached(argv, interactive, lambda pid: None)


@cli.command("start", context_settings=CONTEXT)
@click.argument("containers", nargs=-1, required=True)
@click.pass_context
def start(context: click.Context, containers: tuple[str, ...]) -> None:
    """Start one or more created or stopped containers (their command runs detached)."""
    each(containers, lambda name: daemon_of(context).post(f"/containers/{quote_ref(name)}/start"))


@cli.command("stop", context_settings=CONTEXT)
@click.option(
    "-t",
    "--time",
    "timeout",
    type=int,
    default=10,
    show_default=True,
    help="Seconds to wait for stop before killing it",
)
@click.argument("containers", nargs=-1, required=True)
@click.pass_context
def stop(context: click.Context, timeout: int, containers: tuple[str, ...]) -> None:
    """Stop one or more running containers."""
    each(
        containers,
        lambda name: daemon_of(context).post(
            f"/containers/{quote_ref(name)}/stop", query={"t": str(timeout)}
        ),
    )


@cli.command("rm", context_settings=CONTEXT)
@click.option("-f", "--force", is_flag=True, help="Force the removal of a running container")
@click.argument("containers", nargs=-1, required=True)
@click.pass_context
def rm(context: click.Context, force: bool, containers: tuple[str, ...]) -> None:
    """Remove one or more containers."""
    query = {"force": "1"} if force else None
    each(
        containers,
        lambda name: daemon_of(context).delete(f"/containers/{quote_ref(name)}", query=query),
    )


@cli.command("ps", context_settings=CONTEXT)
@click.option(
    "-a",
    "--all",
    "everything",
    is_flag=True,
    help="Show all containers (default shows just running)",
)
@click.option("-q", "--quiet", is_flag=True, help="Only display container IDs")
@click.option("--no-trunc", is_flag=True, help="Don't truncate output")
@click.option(
    "-f", "--filter", "filters", multiple=True, help="Filter output based on conditions provided"
)
@click.option("--format", "template", help="Pretty-print containers using a Go template")
@click.pass_context
def ps(
    context: click.Context,
    everything: bool,
    quiet: bool,
    no_trunc: bool,
    filters: tuple[str, ...],
    template: str | None,
) -> None:
    """List containers."""
    query = {"all": "1" if everything else None, "filters": parse_filter_flags(filters)}
    containers = daemon_of(context).get("/containers/json", query=query)
    if quiet:
        for entry in containers:
            click.echo(short_id(entry["Id"], no_trunc))
        return
    if template:
        now = time.time()
        rows = [container_row(entry, no_trunc, now) for entry in containers]
        click.echo(format_listed(rows, template, "CONTAINER ID"), nl=False)
        return
    click.echo(format_ps(containers, no_trunc, time.time()), nl=False)


def container_row(entry: dict, no_trunc: bool, now: float) -> dict[str, str]:
    """The fields of ``ps --format``, as docker renders them (nsnet has no images)."""
    from datetime import datetime

    from nsnet.api.timefmt import human_duration

    command = entry.get("Command", "")
    if not no_trunc:
        command = ellipsis(command, COMMAND_WIDTH)
    created = entry.get("Created") or 0
    labels = entry.get("Labels") or {}
    return {
        "ID": short_id(entry["Id"], no_trunc),
        "Names": ",".join(name.lstrip("/") for name in entry.get("Names") or []),
        "Image": "",
        "Command": json.dumps(command, ensure_ascii=False),
        "CreatedAt": datetime.fromtimestamp(created)
        .astimezone()
        .strftime("%Y-%m-%d %H:%M:%S %z %Z"),
        "RunningFor": human_duration(max(0.0, now - created)) + " ago" if created else "",
        "Ports": format_ports(entry.get("Ports") or []),
        "State": entry.get("State", ""),
        "Status": entry.get("Status", ""),
        "Networks": ",".join(sorted((entry.get("NetworkSettings") or {}).get("Networks") or {})),
        "Labels": ",".join(f"{key}={value}" for key, value in sorted(labels.items())),
    }


def format_ps(containers: list[dict], no_trunc: bool, now: float) -> str:
    """``ps``'s table from ``GET /containers/json`` entries."""
    from nsnet.api.timefmt import human_duration

    header = ["CONTAINER ID", "NAMES", "COMMAND", "CREATED", "STATUS", "PORTS", "NETWORKS"]
    rows = []
    for entry in containers:
        command = entry.get("Command", "")
        if not no_trunc:
            command = ellipsis(command, COMMAND_WIDTH)
        created = entry.get("Created") or 0
        networks = sorted((entry.get("NetworkSettings") or {}).get("Networks") or {})
        rows.append(
            [
                short_id(entry["Id"], no_trunc),
                ",".join(name.lstrip("/") for name in entry.get("Names") or []),
                json.dumps(command, ensure_ascii=False),
                human_duration(max(0.0, now - created)) + " ago" if created else "",
                entry.get("Status", ""),
                format_ports(entry.get("Ports") or []),
                ",".join(networks),
            ]
        )
    return format_table(header, rows)


def format_ports(ports: list[dict]) -> str:
    """docker's PORTS column: ``0.0.0.0:8000-8002->8000-8002/tcp, 0.0.0.0:8080->80/tcp``.

    As the docker CLI shows them: ports published on the same number (or not published) are
    drawn as runs of consecutive numbers per address and protocol, each run where its first
    port comes in the order of container ports; other mappings follow, one by one.
    """
    runs: dict[str, list[list[int]]] = {}  # "ip:" or "" + protocol -> [first, last] runs
    mappings = []
    ordered = sorted(
        ports,
        key=lambda p: (p.get("PrivatePort", 0), p.get("PublicPort", 0), p.get("Type", ""),
                       p.get("IP", "")),
    )  # fmt: skip
    for port in ordered:
        private, public = port["PrivatePort"], port.get("PublicPort") or 0
        address = port.get("IP", "") if public else ""
        if public and public != private:
            mappings.append(f"{address}:{public}->{private}/{port['Type']}")
            continue
        key = (f"{address}:" if address else "") + f"/{port['Type']}"
        group = runs.setdefault(key, [])
        if group and group[-1][1] + 1 == private:
            group[-1][1] = private
        else:
            group.append([private, private])
    shown = []
    for key, group in runs.items():
        prefix, kind = key.rsplit("/", 1)
        for first, last in group:
            numbers = str(first) if first == last else f"{first}-{last}"
            shown.append(f"{prefix}{numbers}->{numbers}/{kind}" if prefix else f"{numbers}/{kind}")
    return ", ".join(shown + mappings)


@cli.command("inspect", context_settings=CONTEXT)
@click.option("-f", "--format", "template", help="Format the output using the given Go template")
@click.option(
    "--type",
    "kind",
    type=click.Choice(["container", "network"]),
    help="Return JSON for specified type",
)
@click.argument("names", nargs=-1, required=True)
@click.pass_context
def inspect(
    context: click.Context, template: str | None, kind: str | None, names: tuple[str, ...]
) -> None:
    """Display detailed information on containers (or networks)."""
    daemon = daemon_of(context)
    kinds = [f"{kind}s"] if kind else ["containers", "networks"]
    found, missing = [], []
    for name in names:
        for path in kinds:
            try:
                suffix = "/json" if path == "containers" else ""
                found.append(daemon.get(f"/{path}/{quote_ref(name)}{suffix}"))
                break
            except NotFound:
                continue
        else:
            missing.append(name)
    click.echo(format_inspected(found, template), nl=False)
    for name in missing:
        what = f"{kind}" if kind else "object"
        click.echo(f"Error: No such {what}: {name}", err=True)
    if missing:
        raise Failed(1)


# The headers docker prints above each field of a `table` --format.
LIST_HEADERS = {
    "ID": "ID",
    "Name": "NAME",
    "Names": "NAMES",
    "Driver": "DRIVER",
    "Scope": "SCOPE",
    "IPv6": "IPV6",
    "Internal": "INTERNAL",
    "Labels": "LABELS",
    "CreatedAt": "CREATED AT",
    "Command": "COMMAND",
    "RunningFor": "CREATED",
    "Status": "STATUS",
    "State": "STATE",
    "Ports": "PORTS",
    "Networks": "NETWORKS",
    "Image": "IMAGE",
}


def format_listed(rows: list[dict[str, str]], template: str, id_header: str) -> str:
    """A list's ``--format``: ``json``, ``table TEMPLATE`` (a header, columns at tabs) or a
    Go template per row, over the fields docker's ``ls``/``ps`` templates have."""
    from nsnet import gotemplate

    if template == "json":
        return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
    table = template.startswith("table")
    body = template.removeprefix("table").strip() if table else template
    try:
        nodes = gotemplate.parse(body.replace("\\t", "\t"))
        lines = [gotemplate.render(nodes, row) for row in rows]
        if not table:
            return "".join(line + "\n" for line in lines)
        header = gotemplate.render(nodes, dict(LIST_HEADERS, ID=id_header))
    except gotemplate.TemplateError as error:
        raise click.UsageError(f"template parsing error: {error}") from error
    cells = [line.split("\t") for line in [header, *lines]]
    width = max(len(line) for line in cells)
    cells = [line + [""] * (width - len(line)) for line in cells]
    return format_table(cells[0], cells[1:])


def format_inspected(found: list[Any], template: str | None) -> str:
    """inspect's output: the JSON list, or each object through ``--format``'s Go template."""
    if template is None:
        return format_json(found)
    from nsnet import gotemplate

    try:
        nodes = gotemplate.parse(template)
        return "".join(gotemplate.render(nodes, entry) + "\n" for entry in found)
    except gotemplate.TemplateError as error:
        raise click.UsageError(f"template parsing error: {error}") from error


@cli.command("logs", context_settings=CONTEXT)
@click.option("-f", "--follow", is_flag=True, help="Follow log output")
@click.option(
    "-n",
    "--tail",
    default="all",
    show_default=True,
    help="Number of lines to show from the end of the logs",
)
@click.option("-t", "--timestamps", is_flag=True, help="Show timestamps")
@click.argument("container")
@click.pass_context
def logs(context: click.Context, follow: bool, tail: str, timestamps: bool, container: str) -> int:
    """Fetch the output of a container's detached command.

    As the docker CLI does: the container's Config.Tty says whether the answer is the raw
    output or Docker's frames, whose stdout and stderr go to ours.
    """
    from nsnet.logstream import STDERR, SYSTEM_ERROR, Demultiplexer, FrameError

    daemon = daemon_of(context)
    details = daemon.get(f"/containers/{quote_ref(container)}/json")
    query = {"stdout": "1", "stderr": "1", "tail": tail}
    if follow:
        query["follow"] = "1"
    if timestamps:
        query["timestamps"] = "1"
    pieces = daemon.stream(f"/containers/{details['Id']}/logs", query)

    tty = bool((details.get("Config") or {}).get("Tty"))
    demultiplexer = None if tty else Demultiplexer()
    sys.stdout.flush()
    try:
        for piece in pieces:
            if demultiplexer is None:
                write_now(sys.stdout, piece)
                continue
            for stream, payload in demultiplexer.feed(piece):
                write_now(sys.stderr if stream in (STDERR, SYSTEM_ERROR) else sys.stdout, payload)
        if demultiplexer is not None:
            demultiplexer.close()
    except FrameError as error:
        click.echo(f"Error: {error}", err=True)
        return 1
    except KeyboardInterrupt:
        return 130  # ^C ends a follow; nothing more to say
    return 0


def write_now(stream: Any, data: bytes) -> None:
    """``data`` on ``stream`` at once (a followed log is read as it comes)."""
    stream.buffer.write(data)
    stream.buffer.flush()


@cli.command("port", context_settings=CONTEXT)
@click.argument("container")
@click.argument("private_port", required=False, metavar="[PRIVATE_PORT[/PROTO]]")
@click.pass_context
def port(context: click.Context, container: str, private_port: str | None) -> None:
    """List port mappings of a container."""
    details = daemon_of(context).get(f"/containers/{quote_ref(container)}/json")
    ports = (details.get("NetworkSettings") or {}).get("Ports") or {}
    lines = format_port_lines(ports, private_port)
    if private_port and not lines:
        click.echo(f"Error: No public port '{private_port}' published for {container}", err=True)
        raise Failed(1)
    for line in lines:
        click.echo(line)


def format_port_lines(ports: dict[str, list[dict] | None], private_port: str | None) -> list[str]:
    """``80/tcp -> 0.0.0.0:8080`` lines, or the host side only for one port, in natural order.

    As docker port prints them: every line sorted with numbers compared by value.
    """
    if private_port and "/" not in private_port:
        private_port += "/tcp"

    lines = []
    for key, bindings in ports.items():
        if private_port and key != private_port:
            continue
        for binding in bindings or []:
            host = f"{binding.get('HostIp') or '0.0.0.0'}:{binding.get('HostPort', '')}"
            lines.append(host if private_port else f"{key} -> {host}")
    return sorted(lines, key=natural_order)


def natural_order(text: str) -> list:
    """A sort key comparing runs of digits by value: "80/tcp" before "443/tcp"."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text)]


@cli.command("info", context_settings=CONTEXT)
@click.pass_context
def info(context: click.Context) -> None:
    """Display the daemon's version, paths, counts, firewall state and warnings."""
    daemon = daemon_of(context)
    version = daemon.get("/version")
    details = daemon.get("/info")
    click.echo(format_info(daemon.socket_path, version, details), nl=False)
    # Docker prints its warnings on stderr, after the rest.
    for warning in details.get("Warnings") or []:
        click.echo(f"WARNING: {warning}", err=True)


def format_info(socket_path: str, version: dict, details: dict) -> str:
    """``info``'s text from ``GET /version`` and ``GET /info``."""
    nsnet = details.get("Nsnet") or {}
    firewall = nsnet.get("Firewall") or {}
    api_version = version.get("ApiVersion", "")
    minimum = version.get("MinAPIVersion", "")
    rows = [
        ("Client", ""),
        (" Version", __version__),
        (" Host", f"unix://{socket_path}"),
        ("Server", ""),
        (" Version", version.get("Version", "")),
        (" API version", f"{api_version} (minimum version {minimum})"),
        (" Kernel version", details.get("KernelVersion", "")),
        (" State directory", nsnet.get("StateDirectory", "")),
        (" Runtime directory", nsnet.get("RunDirectory", "")),
        (" Socket", nsnet.get("Socket", "")),
        (" Daemon log", nsnet.get("DaemonLog", "")),
        (" Networks", str(details.get("Networks", ""))),
        (" Containers", str(details.get("Containers", ""))),
        ("  Running", str(details.get("ContainersRunning", ""))),
        ("  Stopped", str(details.get("ContainersStopped", ""))),
        (" Firewall", ""),
        ("  Tables", ", ".join(firewall.get("Tables") or []) or "none"),
        ("  Rules", str(firewall.get("Rules", 0))),
    ]
    elements = firewall.get("Elements") or {}
    if elements:
        rows.append(("  Elements", ""))
        rows += [(f"   {name}", str(count)) for name, count in sorted(elements.items())]
    cluster = nsnet.get("Cluster")
    if cluster:
        rows += [
            (" Cluster", ""),
            ("  Store", cluster.get("Store", "")),
            ("  Advertise address", cluster.get("AdvertiseAddress", "")),
            ("  Node name", cluster.get("NodeName", "")),
            ("  TTL", f"{cluster.get('TTL', '')} s"),
            ("  Lease", cluster.get("Lease") or "none (not joined)"),
            ("  Reachable", "yes" if cluster.get("Reachable") else "no"),
            ("  Remote endpoints", str(cluster.get("RemoteEndpoints", 0))),
        ]
    warnings = details.get("Warnings") or []
    rows.append((" Warnings", str(len(warnings))))
    return "".join(f"{label}: {value}\n" if value else f"{label}:\n" for label, value in rows)


@cli.command("version", context_settings=CONTEXT)
@click.pass_context
def version(context: click.Context) -> None:
    """Show the nsnet and nsnetd versions."""
    daemon = daemon_of(context)
    click.echo(f"Client:\n Version:     {__version__}\n")
    server = daemon.get("/version")
    click.echo(
        f"Server:\n Version:     {server.get('Version', '')}\n"
        f" API version: {server.get('ApiVersion', '')}"
        f" (minimum version {server.get('MinAPIVersion', '')})\n"
        f" OS/Arch:     {server.get('Os', '')}/{server.get('Arch', '')}\n"
        f" Kernel:      {server.get('KernelVersion', '')}"
    )


def start_failure_status(message: str) -> int:
    """docker run's status for a command that could not start: 127 not found, 126 not
    executable, 125 anything else."""
    if "no such file or directory" in message or "executable file not found" in message:
        return 127
    if "permission denied" in message:
        return 126
    return EXIT_FAILED_TO_RUN


class failing_with:
    """Within the block, a daemon error ends the command with ``code`` (125 for run/create)."""

    def __init__(self, code: int) -> None:
        self.code = code

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type | None, error: BaseException | None, traceback: Any) -> bool:
        if isinstance(error, NsnetError):
            report(error)
            raise Failed(self.code) from error
        return False


def main(argv: list[str] | None = None) -> int:
    """The ``nsnet`` console script: run one command, return its exit status."""
    try:
        result = cli.main(args=argv, prog_name="nsnet", standalone_mode=False)
    except Failed as failure:
        return failure.code
    except NsnetError as error:
        report(error)
        return 1
    except click.exceptions.Exit as exit_request:
        return exit_request.exit_code
    except click.UsageError as error:
        # docker's words and status (125) when its own flags or arguments are wrong
        command = error.ctx.command_path if error.ctx else "nsnet"
        click.echo(f"Error: {error.format_message()}\nSee '{command} --help'.", err=True)
        return EXIT_FAILED_TO_RUN
    except click.ClickException as error:
        error.show()
        return error.exit_code
    except click.Abort:
        click.echo("Aborted!", err=True)
        return 1
    except BrokenPipeError:
        # The reader of our output went away (`nsnet ps | head`); nothing more to say.
        sys.stderr.close()
        return 1
    return result if isinstance(result, int) else 0


if __name__ == "__main__":
    sys.exit(main())
