"""Traffic through published ports: TCP connect latency and iperf3 throughput.

Only namespaces of the stage carry traffic: the host (192.0.2.1 on its uplink), the outside
namespace (192.0.2.100, documentation addresses) and the subject's containers.
"""

import json
import time

from bench.world import Agent, AgentFailed, World

IPERF = "iperf3"
BUSY_RETRIES = 10
BUSY_PAUSE = 1.0


class TrafficUnavailable(Exception):
    """Traffic did not get through; the message says where and how it failed."""


def probe_connect(agent: Agent, address: str, port: int, timeout: float = 2.0) -> None:
    """One TCP connect, to learn whether a path works before timing it."""
    try:
        agent.request("tcp_connect", targets=[[address, port]], rounds=1, timeout=timeout)
    except AgentFailed as error:
        raise TrafficUnavailable(str(error)) from error


def connect_latencies(
    agent: Agent, targets: list[tuple[str, int]], rounds: int
) -> dict[str, list[float]]:
    """Connect times in milliseconds per "address:port", the targets taken in turn each round."""
    answer = agent.request(
        "tcp_connect", targets=[list(target) for target in targets], rounds=rounds
    )
    return {
        target: [seconds * 1000 for seconds in samples]
        for target, samples in answer["samples"].items()
    }


def start_iperf_server(world: World, netns_path: str, port: int, log_name: str):
    """An iperf3 server inside a container's namespace, killed when the world closes."""
    return world.popen(["nsenter", f"--net={netns_path}", IPERF, "-s", "-p", str(port)], log_name)


def throughput(agent: Agent, address: str, port: int, seconds: int) -> float:
    """One iperf3 run (one TCP stream, client sending) in Gbit/s as the receiver counted it.

    A server still finishing the previous test (its connections close late behind a userland
    proxy) answers "busy": that run is tried again after a pause.
    """
    for _ in range(BUSY_RETRIES):
        try:
            return _throughput_once(agent, address, port, seconds)
        except ServerBusy:
            time.sleep(BUSY_PAUSE)
    raise TrafficUnavailable(
        f"iperf3 to {address}:{port}: the server stayed busy for {BUSY_RETRIES} attempts"
    )


class ServerBusy(Exception):
    """iperf3's server was still running a test."""


def _throughput_once(agent: Agent, address: str, port: int, seconds: int) -> float:
    answer = agent.exec(
        [
            IPERF,
            "-c",
            address,
            "-p",
            str(port),
            "-t",
            str(seconds),
            "-J",
            "--connect-timeout",
            "3000",
        ],
        check=False,
        timeout=seconds + 30,
    )
    try:
        report = json.loads(answer["stdout"])
    except json.JSONDecodeError:
        report = {"error": (answer["stderr"] or answer["stdout"]).strip()}
    if "busy" in str(report.get("error", "")):
        raise ServerBusy(report["error"])
    if answer["returncode"] != 0 or "error" in report:
        raise TrafficUnavailable(
            f"iperf3 to {address}:{port} failed: {report.get('error', answer['stderr'].strip())}"
        )
    return report["end"]["sum_received"]["bits_per_second"] / 1e9
