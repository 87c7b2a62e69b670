"""What the suite measures, stage by stage, the same way for every subject.

Each stage runs on each subject in a fresh world (host and outside namespaces, a fresh daemon),
so that no stage inherits another's leftovers:

    operations   network create/rm; attach/detach on a running container (1 other endpoint);
                 container create with one published port and its removal; container run
    scale        attach/detach with N endpoints already on the network (1, 100, 1,000); the
                 daemon's memory and process count at each N
    ports        one container publishing P ports (1,000): a publish/unpublish change with
                 them present, TCP connect latency through the 1st and the P-th port; then
                 iperf3 throughput to a container through a published port and directly
    dns          answers per second from a container to the embedded DNS at 127.0.0.11

Operations that a subject does not have are left out (the table shows "—"); what cannot run
here is recorded as unavailable with the reason ("n/a"); what breaks is recorded as an error.
"""

import logging
import time
import traceback
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass

from bench import processes
from bench.stats import Measurement, Results
from bench.subject import (
    CLI,
    CONTAINER_PORT,
    IPERF_PORT,
    Container,
    NotSupported,
    Subject,
    Unavailable,
)
from bench.traffic import (
    TrafficUnavailable,
    connect_latencies,
    probe_connect,
    start_iperf_server,
    throughput,
)
from bench.world import World
from tests.support.topology import HOST_ADDRESS, HostWithOutside

log = logging.getLogger(__name__)

OPERATIONS_PORT = 18000  # published by the containers of the operations stage
CHANGE_PORT = 19000  # published and unpublished while the P ports are present
PORT_BASE = 20000  # the P published ports are PORT_BASE .. PORT_BASE + P - 1
IPERF_HOST_PORT = 15201
BENCH_NETWORK = "nsnt-bench"
IPERF_READY_TIMEOUT = 10
# Measured here: Docker 20.10 starts two docker-proxy processes per port (IPv4 and IPv6),
# about 3.2 MiB each.
DOCKER_PROXY_MIB_PER_PORT = 6.5
# The share of the available memory Docker's running containers may take in the scale stage.
DOCKER_MEMORY_SHARE = 0.8


@dataclass(frozen=True)
class Profile:
    """How much to measure. ``quick`` proves every case works; ``full`` is the real run."""

    name: str
    repeats: int  # timed runs of a fast operation (after the warm-up)
    slow_repeats: int  # timed runs of an operation that execs a CLI or starts a container
    warmup: int  # untimed first runs of each loop (kept apart in the JSON)
    endpoint_counts: tuple[int, ...]
    docker_endpoint_limit: int  # Docker runs a process per endpoint: its scale is bounded
    published_ports: int
    docker_port_limit: int  # Docker starts a docker-proxy process per published port
    connect_rounds: int
    iperf_seconds: int
    iperf_repeats: int
    dns_seconds: float
    dns_repeats: int

    def to_json(self) -> dict:
        return asdict(self)


QUICK = Profile(
    name="quick",
    repeats=5,
    slow_repeats=2,
    warmup=1,
    endpoint_counts=(1, 5, 20),
    docker_endpoint_limit=5,
    published_ports=20,
    docker_port_limit=20,
    connect_rounds=30,
    iperf_seconds=1,
    iperf_repeats=1,
    dns_seconds=1,
    dns_repeats=1,
)

FULL = Profile(
    name="full",
    repeats=30,
    slow_repeats=10,
    warmup=2,
    endpoint_counts=(1, 100, 1000),
    docker_endpoint_limit=1000,
    published_ports=1000,
    docker_port_limit=1000,
    connect_rounds=300,
    iperf_seconds=3,
    iperf_repeats=5,
    dns_seconds=3,
    dns_repeats=3,
)


class Stage:
    """One stage on one subject: the subject, its world, and where results go."""

    def __init__(
        self,
        name: str,
        subject: Subject,
        world: World,
        topology: HostWithOutside,
        results: Results,
        profile: Profile,
    ) -> None:
        self.name = name
        self.subject = subject
        self.world = world
        self.topology = topology
        self.results = results
        self.profile = profile

    # Recording

    def loop(
        self,
        interface: str,
        cases: list[str],
        rounds: int,
        step: Callable[[int], dict[str, float]],
        context: dict | None = None,
    ) -> None:
        """Run ``step(index)`` warm-up + ``rounds`` times; each returns seconds per case."""
        measurements = {
            case: self.results.add(
                Measurement(case, self.subject.name, interface, "ms", context=dict(context or {}))
            )
            for case in cases
        }
        try:
            for index in range(self.profile.warmup + rounds):
                taken = step(index)
                for case, seconds in taken.items():
                    measurement = measurements[case]
                    kept = (
                        measurement.warmup if index < self.profile.warmup else measurement.samples
                    )
                    kept.append(seconds * 1000)
        except NotSupported:
            for measurement in measurements.values():
                self.results.remove(measurement)
        except Unavailable as reason:
            for measurement in measurements.values():
                measurement.unavailable = str(reason)
        except Exception as error:  # noqa: BLE001 - recorded, and the next case still runs
            log.error(
                "%s on %s (%s) failed:\n%s",
                "/".join(cases),
                self.subject.name,
                interface,
                traceback.format_exc(),
            )
            for measurement in measurements.values():
                measurement.error = f"{type(error).__name__}: {error}"

    def single(
        self, case: str, interface: str, unit: str, value: float, context: dict | None = None
    ) -> None:
        """A measurement taken once (memory, a one-off setup time)."""
        self.results.add(
            Measurement(
                case, self.subject.name, interface, unit, samples=[value], context=context or {}
            )
        )

    def unavailable(self, case: str, interface: str, unit: str, reason: str) -> None:
        self.results.add(Measurement(case, self.subject.name, interface, unit, unavailable=reason))

    def agent(self, netns_path: str, role: str):
        return self.world.agent(netns_path, f"{self.subject.name}-{role}")


# The operations stage


def operations(stage: Stage) -> None:
    subject, profile = stage.subject, stage.profile

    for interface in subject.interfaces:

        def network_step(index: int, interface=interface) -> dict[str, float]:
            handle, created = subject.create_network(f"nsnt-n{index}", interface)
            return {
                "network.create": created,
                "network.remove": subject.remove_network(handle, interface),
            }

        rounds = profile.slow_repeats if interface == CLI else profile.repeats
        stage.loop(interface, ["network.create", "network.remove"], rounds, network_step)

    network = subject.bench_network(BENCH_NETWORK)
    target = subject.create_target("nsnt-target")
    subject.create_fillers(network, ["nsnt-filler-0"])
    for interface in subject.interfaces:

        def attach_step(index: int, interface=interface) -> dict[str, float]:
            return {
                "attach": subject.attach(network, target, interface),
                "detach": subject.detach(network, target, interface),
            }

        rounds = profile.slow_repeats if interface == CLI else profile.repeats
        stage.loop(interface, ["attach", "detach"], rounds, attach_step, {"existing_endpoints": 1})

    for interface in subject.container_interfaces:
        for run in (False, True):
            if not run and getattr(subject, "starts_to_connect", False):
                continue  # its "create" would start the container: that is "run"
            case = "container.run" if run else "container.create"

            def container_step(index: int, interface=interface, run=run, case=case):
                container, created = subject.create_container(
                    f"nsnt-c{index}", network, [(OPERATIONS_PORT, CONTAINER_PORT)], interface, run
                )
                return {
                    case: created,
                    f"{case}.remove": subject.remove_container(container, interface),
                }

            stage.loop(
                interface,
                [case, f"{case}.remove"],
                profile.slow_repeats,
                container_step,
                {"published_ports": 1},
            )


# The scale stage


def neighbour_tables() -> dict:
    """Entries and overflows of the kernel's (global) ARP and NDISC tables, for the record."""
    tables = {}
    for name in ("arp_cache", "ndisc_cache"):
        try:
            with open(f"/proc/net/stat/{name}") as handle:
                header, *rows = [line.split() for line in handle.read().splitlines()]
        except OSError:
            continue
        columns = [
            dict(zip(header, (int(value, 16) for value in row), strict=True)) for row in rows
        ]
        tables[name] = {
            "entries": columns[0]["entries"] if columns else 0,
            "table_fulls": sum(column.get("table_fulls", 0) for column in columns),
        }
    return tables


def neighbour_overflows() -> int:
    return sum(table["table_fulls"] for table in neighbour_tables().values())


def scale(stage: Stage) -> None:
    subject, profile = stage.subject, stage.profile
    network = subject.bench_network(BENCH_NETWORK)
    target = subject.create_target("nsnt-target")
    limit = profile.docker_endpoint_limit if subject.name == "docker" else None

    existing = 0
    fill_rate = None
    overflows_before = neighbour_overflows()
    for count in profile.endpoint_counts:
        cases = [f"attach.at{count}", f"detach.at{count}"]
        reason = None
        if limit is not None and count > limit:
            reason = docker_scale_reason(count, limit, fill_rate, stage)
        elif subject.name == "docker":
            reason = docker_memory_reason(count - existing, stage)
        if reason:
            for case in cases:
                stage.unavailable(case, subject.primary, "ms", reason)
            memory_unavailable(stage, count, reason)
            continue

        started = time.monotonic()
        subject.create_fillers(network, [f"nsnt-f{index}" for index in range(existing, count)])
        if count > existing:
            fill_rate = (time.monotonic() - started) / (count - existing)
        existing = count

        def attach_step(index: int, cases=cases) -> dict[str, float]:
            return {
                cases[0]: subject.attach(network, target, subject.primary),
                cases[1]: subject.detach(network, target, subject.primary),
            }

        context = {
            "existing_endpoints": count,
            "fill_seconds_per_container": fill_rate,
            "neighbour_tables": neighbour_tables(),
        }
        stage.loop(subject.primary, cases, profile.repeats, attach_step, context)
        memory(stage, count)

        overflows = neighbour_overflows() - overflows_before
        if overflows:
            # The tables are global: another user of the machine may have been refused too.
            log.warning(
                "scale: the kernel's neighbour tables overflowed %d time(s) with %s at %d "
                "endpoints",
                overflows,
                subject.name,
                count,
            )
            for case in cases:
                found = stage.results.find(case, subject.name, subject.primary)
                if found is not None:
                    found.note = f"neighbour table overflowed {overflows} time(s) meanwhile"


def docker_scale_reason(count: int, limit: int, fill_rate: float | None, stage: Stage) -> str:
    reason = (
        f"not run: Docker needs a running container (and a containerd shim) per endpoint; "
        f"this profile stops at {limit} (--docker-endpoints raises it)"
    )
    shims = [
        processes.rss_kib(pid) or 0
        for pid in stage.subject.daemon_pids()
        if processes.command_name(pid).startswith("containerd-shim")
    ]
    if fill_rate and shims:
        reason += (
            f"; at the rates seen here {count} would take about "
            f"{fill_rate * count / 60:.1f} min and {sum(shims) / len(shims) * count / 2**20:.1f}"
            " GiB for the shims"
        )
    return reason


def docker_memory_reason(more: int, stage: Stage) -> str | None:
    """Why ``more`` running Docker containers would not fit in memory now, if they would not.

    Each holds a containerd shim (about 13 MiB here); the estimate uses the shims running.
    """
    shims = [
        processes.rss_kib(pid) or 0
        for pid in stage.subject.daemon_pids()
        if processes.command_name(pid).startswith("containerd-shim")
    ]
    if not shims or more <= 0:
        return None
    needed = sum(shims) / len(shims) * more / 1024
    if needed <= DOCKER_MEMORY_SHARE * available_mib():
        return None
    return (
        f"not run: {more:,} more Docker containers would need about {needed / 1024:.1f} GiB for "
        f"their shims, more than {DOCKER_MEMORY_SHARE:.0%} of the memory available now "
        f"({available_mib() / 1024:.1f} GiB)"
    )


def memory(stage: Stage, containers: int) -> None:
    """The daemon's resident memory (its main process, and all its processes) and their count."""
    pids = stage.subject.daemon_pids()
    if not pids:
        return
    sizes = {pid: processes.rss_kib(pid) or 0 for pid in pids}
    names = Counter(processes.command_name(pid) for pid in pids)
    context = {"containers": containers, "processes": dict(names)}
    interface = stage.subject.primary
    stage.single(f"memory.daemon.at{containers}", interface, "MiB", sizes[pids[0]] / 1024, context)
    stage.single(
        f"memory.total.at{containers}", interface, "MiB", sum(sizes.values()) / 1024, context
    )
    stage.single(f"processes.at{containers}", interface, "processes", len(pids), context)


def memory_unavailable(stage: Stage, containers: int, reason: str) -> None:
    if not stage.subject.daemon_pids():
        return
    interface = stage.subject.primary
    stage.unavailable(f"memory.daemon.at{containers}", interface, "MiB", reason)
    stage.unavailable(f"memory.total.at{containers}", interface, "MiB", reason)
    stage.unavailable(f"processes.at{containers}", interface, "processes", reason)


# The ports stage


def only_address(container: Container) -> str:
    if not container.addresses:
        raise Unavailable(f"container '{container.name}' has no address")
    return next(iter(container.addresses.values()))


def ports(stage: Stage) -> None:
    subject, profile, topology = stage.subject, stage.profile, stage.topology
    interface = subject.primary
    count = profile.published_ports
    network = subject.bench_network(BENCH_NETWORK)

    limited = subject.name == "docker" and count > profile.docker_port_limit
    reason = (
        f"not run: Docker starts a docker-proxy process per published port; this profile "
        f"stops at {profile.docker_port_limit} (--docker-ports raises it)"
    )
    needed = count * DOCKER_PROXY_MIB_PER_PORT
    if subject.name == "docker" and not limited and needed > available_mib() / 2:
        limited = True
        reason = (
            f"not run: {count:,} ports would start {2 * count:,} docker-proxy processes "
            f"(about {needed / 1024:.1f} GiB), more than half of the memory available now "
            f"({available_mib() / 1024:.1f} GiB)"
        )
    if limited:
        for case in (
            "ports.publish_all",
            "port.create",
            "port.remove",
            "port.none.create",
            "port.none.remove",
            "port.share.create",
            "port.share.remove",
        ):
            stage.unavailable(case, interface, "ms", reason)
        for case in ("tcp.connect.first", "tcp.connect.last"):
            stage.unavailable(case, interface, "ms", reason)
        count = 1

    published = [(PORT_BASE + index, CONTAINER_PORT) for index in range(count)]
    holder, seconds = subject.create_container("nsnt-holder", network, published, interface)
    if not limited:
        context = {"published_ports": count}
        stage.single("ports.publish_all", interface, "ms", seconds * 1000, context)

        # Each round creates and removes one container with the port and one without, so
        # that the machine's drift hits both alike; their difference is the port's own cost.
        def change_step(index: int) -> dict[str, float]:
            container, created = subject.create_container(
                f"nsnt-p{index}", network, [(CHANGE_PORT, CONTAINER_PORT)], interface
            )
            removed = subject.remove_container(container, interface)
            plain, plain_created = subject.create_container(
                f"nsnt-q{index}", network, [], interface
            )
            plain_removed = subject.remove_container(plain, interface)
            return {
                "port.create": created,
                "port.remove": removed,
                "port.none.create": plain_created,
                "port.none.remove": plain_removed,
                "port.share.create": created - plain_created,
                "port.share.remove": removed - plain_removed,
            }

        cases = [
            "port.create",
            "port.remove",
            "port.none.create",
            "port.none.remove",
            "port.share.create",
            "port.share.remove",
        ]
        stage.loop(interface, cases, profile.slow_repeats, change_step, context)

    if not subject.measures_traffic:
        return
    listener = stage.agent(holder.netns_path, "holder")
    listener.request("listen", ports=[CONTAINER_PORT])
    host = stage.agent(topology.host.path, "host-client")
    outside = stage.agent(topology.outside.path, "outside-client")
    if not limited:
        connect_through_ports(stage, outside, count)
    connect_direct(stage, holder, host)
    throughputs(stage, network, host, outside)


def available_mib() -> float:
    with open("/proc/meminfo") as handle:
        for line in handle:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) / 1024
    return 0.0


def connect_through_ports(stage: Stage, outside, count: int) -> None:
    """Connect latency from the outside namespace through the first and the last port."""
    interface = stage.subject.primary
    first, last = PORT_BASE, PORT_BASE + count - 1
    context = {"published_ports": count, "from": "outside namespace", "to": HOST_ADDRESS}
    try:
        probe_connect(outside, HOST_ADDRESS, first)
        probe_connect(outside, HOST_ADDRESS, last)
    except TrafficUnavailable as error:
        reason = f"no TCP connection through a published port from the outside namespace: {error}"
        stage.unavailable("tcp.connect.first", interface, "ms", reason)
        stage.unavailable("tcp.connect.last", interface, "ms", reason)
    else:
        samples = connect_latencies(
            outside, [(HOST_ADDRESS, first), (HOST_ADDRESS, last)], stage.profile.connect_rounds
        )
        for case, port in (("tcp.connect.first", first), ("tcp.connect.last", last)):
            stage.results.add(
                Measurement(
                    case,
                    stage.subject.name,
                    interface,
                    "ms",
                    samples=samples[f"{HOST_ADDRESS}:{port}"],
                    context={**context, "port": port},
                )
            )


def connect_direct(stage: Stage, holder: Container, host) -> None:
    """Connect latency from the host namespace to the container's own address (no NAT)."""
    interface = stage.subject.primary
    address = only_address(holder)
    try:
        probe_connect(host, address, CONTAINER_PORT)
    except TrafficUnavailable as error:
        stage.unavailable("tcp.connect.direct", interface, "ms", f"no TCP connection: {error}")
        return
    samples = connect_latencies(host, [(address, CONTAINER_PORT)], stage.profile.connect_rounds)
    stage.results.add(
        Measurement(
            "tcp.connect.direct",
            stage.subject.name,
            interface,
            "ms",
            samples=samples[f"{address}:{CONTAINER_PORT}"],
            context={"from": "host namespace", "to": "the container's address"},
        )
    )


def throughputs(stage: Stage, network: str, host, outside) -> None:
    subject, profile = stage.subject, stage.profile
    interface = subject.primary
    container, _ = subject.create_container(
        "nsnt-iperf", network, [(IPERF_HOST_PORT, IPERF_PORT)], interface
    )
    address = only_address(container)
    start_iperf_server(
        stage.world, container.netns_path, IPERF_PORT, f"iperf3-server-{subject.name}.log"
    )
    wait_for_listener(container.netns_path, IPERF_PORT)

    paths = (
        ("throughput.localhost", host, "127.0.0.1", IPERF_HOST_PORT, "host namespace"),
        ("throughput.outside", outside, HOST_ADDRESS, IPERF_HOST_PORT, "outside namespace"),
        ("throughput.direct", host, address, IPERF_PORT, "host namespace"),
    )
    # Round by round, each path once, so that what the machine is doing meanwhile weighs on the
    # three alike: the table compares them with each other.
    samples: dict[str, list[float]] = {case: [] for case, *_ in paths}
    failures: dict[str, str] = {}
    for _ in range(profile.iperf_repeats):
        for case, agent, destination, port, _source in paths:
            if case in failures:
                continue
            try:
                samples[case].append(throughput(agent, destination, port, profile.iperf_seconds))
            except TrafficUnavailable as error:
                failures[case] = str(error)
    for case, _agent, destination, port, source in paths:
        if case in failures:
            stage.unavailable(case, interface, "Gbit/s", failures[case])
            continue
        context = {
            "from": source,
            "to": f"{destination}:{port}",
            "seconds": profile.iperf_seconds,
            "order": "interleaved with the other two paths, one run of each per round",
        }
        stage.results.add(
            Measurement(
                case, subject.name, interface, "Gbit/s", samples=samples[case], context=context
            )
        )


def wait_for_listener(netns_path: str, port: int) -> None:
    """Wait until something listens on TCP ``port`` inside the namespace (read, not probed)."""
    from tests.support.netns import run

    deadline = time.monotonic() + IPERF_READY_TIMEOUT
    while time.monotonic() < deadline:
        listing = run(
            ["nsenter", f"--net={netns_path}", "ss", "-Htln", f"sport = :{port}"], check=False
        )
        if listing.stdout.strip():
            return
        time.sleep(0.05)
    raise Unavailable(f"iperf3 did not listen on port {port} within {IPERF_READY_TIMEOUT} s")


# The DNS stage


DNS_SERVER = "127.0.0.11"
DNS_WINDOW = 16  # queries in flight for the rate


def dns(stage: Stage) -> None:
    """Answers per second, and single-query latency, from a container to its embedded DNS."""
    subject, profile = stage.subject, stage.profile
    if not subject.serves_dns:
        return
    interface = subject.primary
    network = subject.bench_network(BENCH_NETWORK)
    subject.create_container("nsnt-web", network, [], interface, run=True)
    client, _ = subject.create_container("nsnt-client", network, [], interface, run=True)
    agent = stage.agent(client.netns_path, "dns-client")

    probe = agent.request("dns_rate", server=DNS_SERVER, name="nsnt-web", seconds=0.5, window=1)
    if not probe["answers"]:
        reason = (
            f"no answer from {DNS_SERVER} for 'nsnt-web' inside a container on a user-defined "
            f"network ({probe['lost']} lost, {probe['failures']} failed)"
        )
        stage.unavailable("dns.rate", interface, "answers/s", reason)
        stage.unavailable("dns.latency", interface, "ms", reason)
        return

    rates, counts = [], []
    for _ in range(profile.dns_repeats):
        answer = agent.request(
            "dns_rate",
            server=DNS_SERVER,
            name="nsnt-web",
            seconds=profile.dns_seconds,
            window=DNS_WINDOW,
        )
        rates.append(answer["answers"] / answer["seconds"])
        counts.append({key: answer[key] for key in ("answers", "lost", "failures")})
    context = {"in_flight": DNS_WINDOW, "seconds": profile.dns_seconds, "runs": counts}
    stage.results.add(
        Measurement("dns.rate", subject.name, interface, "answers/s", rates, context=context)
    )
    # A rate is only sustained if nothing was dropped on the way: the losses go beside it.
    losses = [float(run["lost"] + run["failures"]) for run in counts]
    stage.results.add(
        Measurement("dns.lost", subject.name, interface, "count", losses, context=context)
    )

    answer = agent.request(
        "dns_rate", server=DNS_SERVER, name="nsnt-web", seconds=profile.dns_seconds, window=1
    )
    latencies = [seconds * 1000 for seconds in answer["latencies"]]
    context = {"in_flight": 1, "lost": answer["lost"], "failures": answer["failures"]}
    stage.results.add(
        Measurement("dns.latency", subject.name, interface, "ms", latencies, context=context)
    )


STAGES: dict[str, Callable[[Stage], None]] = {
    "operations": operations,
    "scale": scale,
    "ports": ports,
    "dns": dns,
}
