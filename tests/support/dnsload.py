"""A bounded DNS load measure: sustained queries per second, and whether any were lost.

``measure_query_rate(netns_path, name)`` runs a client process inside a container's namespace
(``nsenter --net``) that asks the embedded server for ``name`` over UDP, keeping ``window``
queries in flight, until ``count`` have been sent or ``time_limit`` seconds have passed. A
query unanswered after ``query_timeout`` seconds counts as lost; an answer other than NOERROR
with at least one record counts as failed. The client is a process of its own so that it does
not share an interpreter lock with a server running in the test process.

The benchmark suite can call ``measure_query_rate`` against a daemon's container the same way.
"""

import argparse
import json
import os
import select
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from dnslib import DNSRecord

REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class LoadResult:
    """What one run of the load client saw."""

    sent: int
    answered: int  # NOERROR with at least one answer record
    failed: int  # any other answer
    lost: int  # no answer within the query timeout or before the time limit
    seconds: float
    window: int

    @property
    def rate(self) -> float:
        """Answered queries per second."""
        return self.answered / self.seconds if self.seconds > 0 else 0.0

    @property
    def lossless(self) -> bool:
        return self.lost == 0 and self.failed == 0 and self.answered == self.sent

    def __str__(self) -> str:
        return (
            f"{self.rate:.0f} queries/s ({self.answered} answered, {self.failed} failed, "
            f"{self.lost} lost of {self.sent} in {self.seconds:.2f} s, window {self.window})"
        )


def run_client(
    name: str,
    *,
    server: str = "127.0.0.11",
    port: int = 53,
    count: int = 5000,
    window: int = 64,
    query_timeout: float = 1.0,
    time_limit: float = 30.0,
) -> LoadResult:
    """Ask ``server`` for ``name`` ``count`` times from the current namespace."""
    template = DNSRecord.question(name, "A").pack()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.connect((server, port))
        sock.setblocking(False)
        poller = select.poll()
        poller.register(sock, select.POLLIN)

        sent = answered = failed = lost = 0
        outstanding: dict[int, float] = {}
        started = time.monotonic()
        deadline = started + time_limit
        while (sent < count or outstanding) and time.monotonic() < deadline:
            while sent < count and len(outstanding) < window:
                query_id = sent % 65536
                sock.send(query_id.to_bytes(2, "big") + template[2:])
                outstanding[query_id] = time.monotonic()
                sent += 1

            if poller.poll(20):
                while True:
                    try:
                        reply = sock.recv(65535)
                    except BlockingIOError:
                        break
                    if outstanding.pop(int.from_bytes(reply[:2], "big"), None) is None:
                        continue  # late answer to a query already counted lost
                    rcode = reply[3] & 0x0F
                    answers = int.from_bytes(reply[6:8], "big")
                    if rcode == 0 and answers > 0:
                        answered += 1
                    else:
                        failed += 1

            now = time.monotonic()
            for query_id, sent_at in list(outstanding.items()):
                if now - sent_at > query_timeout:
                    del outstanding[query_id]
                    lost += 1
        seconds = time.monotonic() - started

    return LoadResult(
        sent=sent,
        answered=answered,
        failed=failed,
        lost=lost + len(outstanding),
        seconds=seconds,
        window=window,
    )


def measure_query_rate(
    netns_path: str | os.PathLike,
    name: str,
    *,
    server: str = "127.0.0.11",
    port: int = 53,
    count: int = 5000,
    window: int = 64,
    query_timeout: float = 1.0,
    time_limit: float = 30.0,
) -> LoadResult:
    """Run the load client inside the namespace at ``netns_path`` and return what it saw."""
    argv = [
        "nsenter", f"--net={netns_path}", sys.executable, "-m", "tests.support.dnsload",
        "--name", name, "--server", server, "--port", str(port), "--count", str(count),
        "--window", str(window), "--query-timeout", str(query_timeout),
        "--time-limit", str(time_limit),
    ]  # fmt: skip
    environment = dict(os.environ)
    environment["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(REPO_ROOT), environment.get("PYTHONPATH")])
    )
    completed = subprocess.run(
        argv,
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        env=environment,
        timeout=time_limit + 30,
        check=True,
        stdin=subprocess.DEVNULL,
    )
    return LoadResult(**json.loads(completed.stdout))


def main() -> None:
    parser = argparse.ArgumentParser(description="DNS load client (run inside a namespace)")
    parser.add_argument("--name", required=True)
    parser.add_argument("--server", default="127.0.0.11")
    parser.add_argument("--port", type=int, default=53)
    parser.add_argument("--count", type=int, default=5000)
    parser.add_argument("--window", type=int, default=64)
    parser.add_argument("--query-timeout", type=float, default=1.0)
    parser.add_argument("--time-limit", type=float, default=30.0)
    arguments = parser.parse_args()

    result = run_client(
        arguments.name,
        server=arguments.server,
        port=arguments.port,
        count=arguments.count,
        window=arguments.window,
        query_timeout=arguments.query_timeout,
        time_limit=arguments.time_limit,
    )
    print(json.dumps(asdict(result)))


if __name__ == "__main__":
    main()
