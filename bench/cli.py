"""The command line: ``python3 -m bench [--quick | --full] [--json PATH] ...``.

Exit status: 0 when every case ran (or is unavailable here for a stated reason); 1 when a case
failed, or, in full mode, when an anchor could not be measured; 2 when the run could not
start (not root, an anchor missing in full mode); 130 when interrupted. Nothing is timed
against a threshold: the figures are reported, never asserted.
"""

import argparse
import dataclasses
import logging
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from bench import cni, docker, nsnet, report
from bench.stages import FULL, QUICK, STAGES, Profile, Stage
from bench.stats import Results
from bench.subject import Unavailable
from bench.world import REPO_ROOT, World
from tests.support import netns as harness_netns

log = logging.getLogger("bench")

SUBJECTS = {
    "nsnet": nsnet.Nsnet,
    "engine": nsnet.NsnetEngine,
    "cni": cni.Cni,
    "docker": docker.Docker,
}
ANCHOR_SUBJECTS = ("cni", "docker")
PARTIAL_RUN = ("not run (--subjects)", "not run (--stages)")
# The engine subject's figures for traffic would repeat nsnetd's (same firewall code).
STAGE_SUBJECTS = {
    "operations": ("nsnet", "engine", "cni", "docker"),
    "scale": ("nsnet", "engine", "cni", "docker"),
    "ports": ("nsnet", "engine", "cni", "docker"),
    "dns": ("nsnet", "docker"),
}


class Interrupted(KeyboardInterrupt):
    """SIGTERM or SIGHUP, turned into an exception so that every cleanup runs."""


def parse_arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python3 -m bench",
        description="nsnet's benchmarks beside the CNI reference plugins and Docker 20.10, "
        "inside throwaway network namespaces.",
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "--quick",
        action="store_true",
        help="small counts, to prove every case still works (CI); anchors when installed",
    )
    mode.add_argument(
        "--full",
        action="store_true",
        help="the real run (the default): fails when an anchor is missing",
    )
    parser.add_argument("--json", metavar="PATH", help="where to write the JSON with raw samples")
    parser.add_argument(
        "--subjects",
        default=",".join(SUBJECTS),
        help=f"comma-separated subset of {','.join(SUBJECTS)} (default: all)",
    )
    parser.add_argument(
        "--stages",
        default=",".join(STAGES),
        help=f"comma-separated subset of {','.join(STAGES)} (default: all)",
    )
    parser.add_argument(
        "--no-anchors", action="store_true", help="measure nsnet only (quick mode only)"
    )
    parser.add_argument(
        "--docker-endpoints",
        type=int,
        metavar="N",
        help="the most endpoints Docker's scale stage creates (each is a running container)",
    )
    parser.add_argument(
        "--docker-ports",
        type=int,
        metavar="N",
        help="the most ports Docker's ports stage publishes (each is a docker-proxy process)",
    )
    parser.add_argument(
        "--keep-logs", action="store_true", help="keep the run directory with every log"
    )
    parser.add_argument(
        "--profile-engine",
        action="store_true",
        help="keep a cProfile of the engine's calls (in the run directory, which is then kept)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="progress at debug level")
    return parser.parse_args(argv)


def choose_profile(arguments: argparse.Namespace) -> Profile:
    profile = QUICK if arguments.quick else FULL
    changes = {}
    if arguments.docker_endpoints is not None:
        changes["docker_endpoint_limit"] = arguments.docker_endpoints
    if arguments.docker_ports is not None:
        changes["docker_port_limit"] = arguments.docker_ports
    return dataclasses.replace(profile, **changes)


def anchor_problems() -> dict[str, str]:
    """Why each anchor cannot run here (empty when all are installed)."""
    problems = {}
    missing = cni.missing_plugins()
    if missing:
        problems["cni"] = f"CNI plugins {', '.join(missing)} not in {cni.CNI_PATH}"
    missing = docker.missing_programs()
    if missing:
        problems["docker"] = f"{', '.join(missing)} not found"
    return problems


def tool_problems() -> list[str]:
    return [tool for tool in ("nsenter", "ip", "ss", "iperf3") if shutil.which(tool) is None]


def command_output(argv: list[str]) -> str:
    try:
        completed = subprocess.run(argv, capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"unavailable: {error}"
    return (completed.stdout or completed.stderr).strip()


def machine() -> dict:
    """What the figures were measured on."""
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = ""
    try:
        memory = Path("/proc/meminfo").read_text().splitlines()[0].split(":", 1)[1].strip()
    except (OSError, IndexError):
        pass
    return {
        "kernel": platform.release(),
        "cpu": cpu,
        "cpus": os.cpu_count(),
        "memory": memory,
        "python": platform.python_version(),
        "os": command_output(["sh", "-c", ". /etc/os-release && echo $PRETTY_NAME"]),
        "dockerd": command_output(["/usr/sbin/dockerd", "--version"]),
        "docker_cli": command_output(["docker", "--version"]),
        "cni_plugins": command_output(
            ["dpkg-query", "-W", "-f=${Version}", "containernetworking-plugins"]
        ),
        "iperf3": command_output(["iperf3", "--version"]).splitlines()[0:1],
        "load_average_at_start": os.getloadavg(),
    }


def git_revision() -> dict:
    revision = command_output(["git", "-C", str(REPO_ROOT), "rev-parse", "HEAD"])
    status = command_output(["git", "-C", str(REPO_ROOT), "status", "--porcelain", "nsnet"])
    return {"commit": revision, "nsnet_tree_modified": bool(status)}


def install_signal_handlers() -> None:
    def interrupt(signum, frame) -> None:
        raise Interrupted(f"signal {signum}")

    signal.signal(signal.SIGTERM, interrupt)
    signal.signal(signal.SIGHUP, interrupt)


def close_world(world: World, problems: list[str]) -> None:
    """Close a world with interruptions held off: a cleanup cut short would leak."""
    previous = {
        signum: signal.signal(signum, signal.SIG_IGN)
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    }
    try:
        problems.extend(world.close())
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def run_stage(
    stage_name: str,
    subject_name: str,
    run_directory: Path,
    results: Results,
    profile: Profile,
    cleanup_problems: list[str],
    settings: dict,
) -> None:
    """One stage on one subject, in a world of its own that is always removed."""
    world = World(parent=run_directory, name=f"{stage_name}-{subject_name}", settings=settings)
    world.keep_directory = True  # the run directory's fate is decided at the end
    started = time.monotonic()
    try:
        topology = world.host_with_outside()
        subject = SUBJECTS[subject_name](world, topology)
        try:
            subject.start()
        except Unavailable as reason:
            results.stage_problems[(stage_name, subject_name)] = ("unavailable", str(reason))
            log.warning("%s: %s unavailable: %s", stage_name, subject_name, reason)
            return
        stage = Stage(stage_name, subject, world, topology, results, profile)
        STAGES[stage_name](stage)
    except KeyboardInterrupt:
        results.stage_problems[(stage_name, subject_name)] = ("unavailable", "interrupted")
        raise
    except Exception as error:  # noqa: BLE001 - recorded; the other stages still run
        log.exception("%s: %s stopped", stage_name, subject_name)
        results.stage_problems[(stage_name, subject_name)] = (
            "error",
            f"{stage_name} stage stopped: {type(error).__name__}: {error}",
        )
    finally:
        close_world(world, cleanup_problems)
        log.info("%s: %s done in %.0f s", stage_name, subject_name, time.monotonic() - started)


def leftover_namespaces() -> list[str]:
    """Namespaces this run made that still exist (there should be none)."""
    existing = set(os.listdir("/run/netns")) if os.path.isdir("/run/netns") else set()
    return sorted(existing & harness_netns.created_names)


def main(argv: list[str] | None = None) -> int:
    arguments = parse_arguments(argv)
    logging.basicConfig(
        level=logging.DEBUG if arguments.verbose else logging.INFO,
        format="bench: %(message)s",
        stream=sys.stderr,
    )
    if os.geteuid() != 0:
        log.error("run as root: the suite creates network namespaces")
        return 2
    missing_tools = tool_problems()
    if missing_tools:
        log.error("missing tools: %s", ", ".join(missing_tools))
        return 2

    profile = choose_profile(arguments)
    subjects = [name.strip() for name in arguments.subjects.split(",") if name.strip()]
    stages = [name.strip() for name in arguments.stages.split(",") if name.strip()]
    unknown = [name for name in subjects if name not in SUBJECTS] + [
        name for name in stages if name not in STAGES
    ]
    if unknown:
        log.error("unknown subjects or stages: %s", ", ".join(unknown))
        return 2
    if arguments.no_anchors:
        if not arguments.quick:
            log.error("--no-anchors is for --quick only: the full run needs its anchors")
            return 2
        subjects = [name for name in subjects if name not in ANCHOR_SUBJECTS]

    problems = {name: text for name, text in anchor_problems().items() if name in subjects}
    if problems and not arguments.quick:
        for name, text in problems.items():
            log.error("anchor %s missing: %s", name, text)
        log.error("the full run needs its anchors (scripts/setup.sh installs them)")
        return 2

    # The daemon, the CLI and the agents import this checkout.
    os.environ["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])
    )
    install_signal_handlers()
    run_directory = Path(tempfile.mkdtemp(prefix="nsnt-bench-", dir="/tmp"))
    file_log = logging.FileHandler(run_directory / "bench.log")
    file_log.setLevel(logging.DEBUG)
    file_log.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    logging.getLogger().addHandler(file_log)

    results = Results()
    for name, text in problems.items():
        for stage_name in stages:
            results.stage_problems[(stage_name, name)] = ("unavailable", text)
    for name in SUBJECTS:
        if name not in subjects:
            excluded_anchor = arguments.no_anchors and name in ANCHOR_SUBJECTS
            why = "--no-anchors" if excluded_anchor else "--subjects"
            for stage_name in stages:
                results.stage_problems[(stage_name, name)] = ("unavailable", f"not run ({why})")
    for stage_name in STAGES:
        if stage_name not in stages:
            for name in SUBJECTS:
                results.stage_problems[(stage_name, name)] = ("unavailable", "not run (--stages)")
    started_at = datetime.now(UTC)
    started = time.monotonic()
    cleanup_problems: list[str] = []
    interrupted = False
    log.info("%s run, stages %s, subjects %s", profile.name, stages, subjects)
    log.info("logs in %s", run_directory)
    try:
        for stage_name in stages:
            for subject_name in subjects:
                if subject_name in problems or subject_name not in STAGE_SUBJECTS[stage_name]:
                    continue
                log.info("%s: %s ...", stage_name, subject_name)
                run_stage(
                    stage_name,
                    subject_name,
                    run_directory,
                    results,
                    profile,
                    cleanup_problems,
                    {"profile_engine": arguments.profile_engine},
                )
    except KeyboardInterrupt:
        interrupted = True
        log.error("interrupted: everything made so far has been removed")

    leftovers = leftover_namespaces()
    if leftovers:
        cleanup_problems.append(f"namespaces left behind: {', '.join(leftovers)}")
    elapsed = time.monotonic() - started

    table = report.render_table(results, profile)
    found_targets = report.targets(results, profile)
    print(
        f"nsnet benchmarks, {profile.name} run of {started_at:%Y-%m-%d %H:%M} UTC "
        f"({elapsed:.0f} s); medians; ratio = anchor / nsnet (for Gbit/s and answers/s, "
        "more is better)\n"
    )
    print(table)
    print()
    print(report.render_targets(found_targets))

    json_path = Path(
        arguments.json
        or Path(tempfile.gettempdir())
        / f"nsnet-bench-{profile.name}-{started_at:%Y%m%d-%H%M%S}.json"
    )
    document = {
        "suite": "nsnet bench",
        "format": 1,
        "mode": profile.name,
        "started": started_at.isoformat(),
        "seconds": elapsed,
        "interrupted": interrupted,
        "command": [sys.executable, "-m", "bench", *(argv if argv is not None else sys.argv[1:])],
        "machine": machine(),
        "git": git_revision(),
        "profile": profile.to_json(),
        "subjects": subjects,
        "stages": stages,
        "engine_profiled": arguments.profile_engine,
        "stage_problems": [
            {"stage": stage, "subject": subject, "kind": kind, "message": message}
            for (stage, subject), (kind, message) in results.stage_problems.items()
        ],
        "table": report.table_records(results, profile),
        "targets": found_targets,
        "measurements": [measurement.to_json() for measurement in results.measurements],
        "cleanup_problems": cleanup_problems,
    }
    report.write_json(json_path, document)
    print(f"\nJSON with raw samples: {json_path}")

    failed = [m for m in results.measurements if m.error] + [
        key for key, (kind, _) in results.stage_problems.items() if kind == "error"
    ]
    # Only a partial run asked for (--subjects, --stages) may leave anchor figures out; a
    # bound (--docker-endpoints, memory) or a failure is a missing anchor in the full run.
    anchors_missing = [
        m
        for m in results.measurements
        if m.subject in ANCHOR_SUBJECTS
        and m.unavailable
        and not m.unavailable.startswith(PARTIAL_RUN)
    ] + [
        key
        for key, (_, message) in results.stage_problems.items()
        if key[1] in ANCHOR_SUBJECTS and not message.startswith(PARTIAL_RUN)
    ]
    for problem in cleanup_problems:
        log.error("cleanup: %s", problem)

    keep = arguments.keep_logs or arguments.profile_engine or failed or cleanup_problems
    keep = keep or interrupted
    if keep:
        log.info("logs kept in %s", run_directory)
    else:
        logging.getLogger().removeHandler(file_log)
        file_log.close()
        shutil.rmtree(run_directory, ignore_errors=True)

    if interrupted:
        return 130
    if failed:
        log.error("%d case(s) failed; see the footnotes and %s", len(failed), run_directory)
        return 1
    if cleanup_problems:
        log.error("cleanup problems (above); logs in %s", run_directory)
        return 1
    if profile.name == "full" and anchors_missing:
        log.error("the full run is missing anchor figures; see the footnotes")
        return 1
    return 0
