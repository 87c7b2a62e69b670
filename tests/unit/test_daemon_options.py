"""nsnetd's command line (the upstream DNS servers from --dns and NSNET_DNS) and its limits."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from nsnet import daemon
from nsnet.errors import InvalidArgument


def test_dns_flags_repeat_as_dockerds_do() -> None:
    options = daemon.parse_arguments(["--dns", "192.0.2.53", "--dns", "198.51.100.53"])

    assert daemon.dns_servers(options.dns, {}) == ["192.0.2.53", "198.51.100.53"]


def test_nsnet_dns_is_read_when_no_flag_is_given() -> None:
    environment = {"NSNET_DNS": " 192.0.2.53, 192.0.2.54:5353 ,"}

    assert daemon.dns_servers([], environment) == ["192.0.2.53", "192.0.2.54:5353"]
    assert daemon.dns_servers(["203.0.113.53"], environment) == ["203.0.113.53"]


def test_without_either_the_hosts_servers_are_used() -> None:
    assert daemon.parse_arguments([]).dns == []
    assert daemon.dns_servers([], {}) == []


def test_a_bad_server_is_refused_naming_it() -> None:
    with pytest.raises(InvalidArgument, match="'resolver'"):
        daemon.dns_servers(["resolver"], {})
    with pytest.raises(InvalidArgument, match="'192.0.2.999'"):
        daemon.dns_servers([], {"NSNET_DNS": "192.0.2.999"})


def test_the_open_file_limit_is_raised_to_the_hard_limit() -> None:
    # In a child: the test process's own limits stay as they are.
    script = (
        "import resource\n"
        "from nsnet.daemon import raise_open_file_limit\n"
        "resource.setrlimit(resource.RLIMIT_NOFILE, (256, 4096))\n"
        "raise_open_file_limit()\n"
        "print(*resource.getrlimit(resource.RLIMIT_NOFILE))\n"
    )
    repository = str(Path(__file__).resolve().parents[2])
    shown = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True,
        env={**os.environ, "PYTHONPATH": repository},
    )  # fmt: skip
    assert shown.stdout.split() == ["4096", "4096"]
