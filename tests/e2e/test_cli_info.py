"""``nsnet info``: the daemon's paths and counts, its firewall state and every warning."""

import re

from tests.support.daemon import Daemon


def firewall_section(output: str) -> dict[str, str]:
    lines = output.splitlines()
    start = lines.index(" Firewall:")
    section = {}
    for line in lines[start + 1 :]:
        if not line.startswith("  "):
            break
        label, _, value = line.strip().partition(":")
        section[label] = value.strip()
    return section


def test_info_shows_the_firewall_and_counts(daemon: Daemon) -> None:
    daemon.cli("network", "create", "front")
    daemon.cli("run", "-d", "--name", "web", "--network", "front", "-p", "8080:80", "--",
               "sleep", "300")  # fmt: skip

    shown = daemon.cli("info")

    assert shown.stderr == ""
    assert f" State directory: {daemon.root / 'lib'}\n" in shown.stdout
    assert " Networks: 4\n" in shown.stdout and "  Running: 1\n" in shown.stdout
    firewall = firewall_section(shown.stdout)
    assert "inet nsnet" in firewall["Tables"]
    assert int(firewall["Rules"]) > 0
    # Each of nsnet's sets and maps with its element count: both bridges, one binding.
    assert firewall["inet nsnet bridges"] == "2"
    assert " Warnings: 0\n" in shown.stdout
    listed = daemon.exec_in_host("nft", "list", "table", "inet", "nsnet").stdout
    assert re.search(r"^\s*chain ", listed, re.MULTILINE)
    daemon.cli("rm", "-f", "web")


def test_info_prints_every_warning(daemon: Daemon) -> None:
    # A foreign FORWARD policy of drop (as Docker sets it) would drop nsnet's forwarded traffic.
    daemon.exec_in_host("iptables", "-P", "FORWARD", "DROP")
    daemon.restart()

    shown = daemon.cli("info")

    assert " Warnings: 1\n" in shown.stdout
    warnings = shown.stderr.splitlines()
    assert len(warnings) == 1 and warnings[0].startswith("WARNING: "), shown.stderr
    assert "FORWARD" in warnings[0] and "drop" in warnings[0], warnings[0]
    assert daemon.api("GET", "/info").json()["Warnings"] == [warnings[0][len("WARNING: ") :]]

    # Forwarding turned off under the running daemon (inside the test's host namespace only).
    daemon.exec_in_host("sysctl", "-qw", "net.ipv4.ip_forward=0")
    shown = daemon.cli("info")
    assert " Warnings: 2\n" in shown.stdout
    assert "WARNING: IPv4 forwarding is disabled" in shown.stderr, shown.stderr
