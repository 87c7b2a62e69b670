"""The rendered nftables ruleset and its element transactions, checked against golden files.

Golden files live in tests/unit/golden/firewall/. After an intended change, rewrite them with
``NSNET_UPDATE_GOLDEN=1 pytest tests/unit/test_firewall_ruleset.py`` and review the diff.
"""

import itertools
import json
import os
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

import pytest

from nsnet.errors import InvalidArgument
from nsnet.firewall import ruleset
from nsnet.firewall.ruleset import Binding, BridgeNetwork

GOLDEN = Path(__file__).parent / "golden" / "firewall"
UPDATE = os.environ.get("NSNET_UPDATE_GOLDEN") == "1"

BRIDGE = "br-0123456789ab"


def network(internal: bool = False, icc: bool = True, masquerade: bool = True) -> BridgeNetwork:
    return BridgeNetwork(
        name="web",
        bridge=BRIDGE,
        subnet=IPv4Network("172.18.0.0/16"),
        gateway=IPv4Address("172.18.0.1"),
        internal=internal,
        icc=icc,
        masquerade=masquerade,
    )


def binding(host_ip: str, host_port: int, protocol: str, container_port: int) -> Binding:
    return Binding(
        host_ip=IPv4Address(host_ip),
        host_port=host_port,
        protocol=protocol,
        container_ip=IPv4Address("172.18.0.2"),
        container_port=container_port,
        bridge=BRIDGE,
    )


BINDINGS = [
    binding("0.0.0.0", 8080, "tcp", 80),
    binding("0.0.0.0", 5353, "udp", 53),
    binding("0.0.0.0", 3868, "sctp", 3868),
    binding("127.0.0.1", 8443, "tcp", 443),
]


def check_golden(name: str, transaction: dict) -> None:
    path = GOLDEN / f"{name}.json"
    text = json.dumps(transaction, indent=2) + "\n"
    if UPDATE:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    assert path.exists(), f"no golden file {path}: run with NSNET_UPDATE_GOLDEN=1"
    assert text == path.read_text(), f"{name} differs from {path}"


def flag(name: str, value: bool) -> str:
    return f"{name}-{'on' if value else 'off'}"


COMBINATIONS = list(itertools.product([False, True], repeat=3))


@pytest.mark.parametrize("with_bindings", [False, True], ids=["no-bindings", "bindings"])
@pytest.mark.parametrize(
    ("internal", "icc", "masquerade"),
    COMBINATIONS,
    ids=[
        f"{flag('internal', i)}_{flag('icc', c)}_{flag('masquerade', m)}"
        for i, c, m in COMBINATIONS
    ],
)
def test_render_matches_golden(
    internal: bool, icc: bool, masquerade: bool, with_bindings: bool
) -> None:
    rendered = ruleset.render(
        [network(internal, icc, masquerade)], BINDINGS if with_bindings else []
    )
    name = (
        f"render_{flag('internal', internal)}_{flag('icc', icc)}_"
        f"{flag('masquerade', masquerade)}_{'bindings' if with_bindings else 'no-bindings'}"
    )
    check_golden(name, rendered)


def test_render_without_networks_matches_golden() -> None:
    check_golden("render_empty", ruleset.render([], []))


@pytest.mark.parametrize("icc", [True, False], ids=["icc-on", "icc-off"])
def test_network_transactions_match_golden(icc: bool) -> None:
    net = network(icc=icc)
    check_golden(f"add-network_{flag('icc', icc)}", ruleset.add_network(net))
    check_golden(f"remove-network_{flag('icc', icc)}", ruleset.remove_network(net))


def test_icc_off_network_creates_a_missing_bridge_table() -> None:
    transaction = ruleset.add_network(network(icc=False), bridge_table_exists=False)
    check_golden("add-network_icc-off_without-bridge-table", transaction)


def test_binding_transactions_match_golden() -> None:
    check_golden("add-bindings", ruleset.add_bindings(BINDINGS))
    check_golden("remove-bindings", ruleset.remove_bindings(BINDINGS))


def commands(transaction: dict) -> list[tuple[str, str]]:
    """(verb, object kind) of each command, e.g. ("add", "rule")."""
    found = []
    for command in transaction["nftables"]:
        verb, body = next(iter(command.items()))
        if verb != "metainfo":
            found.append((verb, next(iter(body))))
    return found


def rule_count(transaction: dict) -> int:
    return commands(transaction).count(("add", "rule"))


def many_bindings(count: int) -> list[Binding]:
    return [binding("0.0.0.0" if port % 2 else "192.0.2.1", port, "tcp", 80) for port in
            range(10000, 10000 + count)]  # fmt: skip


def test_rule_count_does_not_grow_with_bindings() -> None:
    networks = [network(icc=False)]
    one = ruleset.render(networks, many_bindings(1))
    thousand = ruleset.render(networks, many_bindings(1000))

    assert rule_count(one) == rule_count(thousand) > 0
    # The bindings are elements: two map entries (address and port) for each.
    elements = sum(
        len(command["add"]["element"]["elem"])
        for command in thousand["nftables"]
        if "element" in command.get("add", {})
        and command["add"]["element"]["name"].endswith(("_addresses", "_ports"))
    )
    assert elements == 2000


def test_rule_count_does_not_grow_with_networks() -> None:
    networks = [
        BridgeNetwork(
            name=f"net{index}",
            bridge=f"br-{index:012x}",
            subnet=IPv4Network(f"10.{index}.0.0/24"),
            gateway=IPv4Address(f"10.{index}.0.1"),
            internal=index % 3 == 0,
            icc=index % 2 == 0,
            masquerade=True,
        )
        for index in range(1, 50)
    ]
    assert rule_count(ruleset.render(networks[:2], [])) == rule_count(ruleset.render(networks, []))


@pytest.mark.parametrize(
    "transaction",
    [
        ruleset.add_network(network(icc=False)),
        ruleset.remove_network(network(icc=False)),
        ruleset.add_bindings(BINDINGS),
        ruleset.remove_bindings(BINDINGS),
    ],
    ids=["add-network", "remove-network", "add-bindings", "remove-bindings"],
)
def test_element_transactions_change_only_elements(transaction: dict) -> None:
    assert {kind for _verb, kind in commands(transaction)} == {"element"}


def test_removal_adds_before_it_deletes() -> None:
    # Adding first makes the delete succeed whether or not the element was there.
    verbs = [verb for verb, _kind in commands(ruleset.remove_bindings(BINDINGS))]
    assert verbs == sorted(verbs)  # every "add" before every "delete"
    assert verbs.count("add") == verbs.count("delete")


def test_render_replaces_only_nsnet_tables() -> None:
    rendered = ruleset.render([network(icc=False)], BINDINGS)
    tables = set()
    for command in rendered["nftables"]:
        for verb, body in command.items():
            if verb == "metainfo":
                continue
            assert verb in ("add", "delete"), f"unexpected command {verb}"
            kind, details = next(iter(body.items()))
            assert kind != "ruleset", "the whole ruleset must never be flushed"
            name = details["name"] if kind == "table" else details["table"]
            tables.add((details["family"], name))
    assert tables == {("inet", "nsnet"), ("bridge", "nsnet")}


def test_bridge_table_only_when_some_network_has_icc_off() -> None:
    def bridge_table_created(networks: list[BridgeNetwork]) -> bool:
        return any(
            "set" in command.get("add", {}) and command["add"]["set"]["family"] == "bridge"
            for command in ruleset.render(networks, [])["nftables"]
        )

    assert not bridge_table_created([network(icc=True)])
    assert bridge_table_created([network(icc=True), network(icc=False)])


def test_internal_network_is_never_masqueraded() -> None:
    rendered = json.dumps(ruleset.render([network(internal=True, masquerade=True)], []))
    assert ruleset.SET_MASQUERADE_SUBNETS in rendered  # the set and its rule exist...
    elements = [
        command["add"]["element"]["name"]
        for command in ruleset.render([network(internal=True)], [])["nftables"]
        if "element" in command.get("add", {})
    ]
    assert ruleset.SET_MASQUERADE_SUBNETS not in elements  # ...but hold no internal subnet
    assert ruleset.SET_INTERNAL_BRIDGES in elements


def test_prerouting_never_dnats_loopback_destinations() -> None:
    prerouting = [
        command["add"]["rule"]["expr"]
        for command in ruleset.render([], [])["nftables"]
        if command.get("add", {}).get("rule", {}).get("chain") == ruleset.CHAIN_PREROUTING
        and command["add"]["rule"]["family"] == "inet"
    ]
    # The first rule returns for 127.0.0.0/8 before anything can jump to the DNAT chain.
    first = prerouting[0]
    assert first[0]["match"]["right"] == {"prefix": {"addr": "127.0.0.0", "len": 8}}
    assert first[-1] == {"return": None}


@pytest.mark.parametrize(
    ("protocol", "host_port", "container_port"),
    [("icmp", 80, 80), ("tcp", 0, 80), ("tcp", 80, 65536)],
)
def test_binding_rejects_bad_values(protocol: str, host_port: int, container_port: int) -> None:
    with pytest.raises(InvalidArgument, match="cannot publish port"):
        binding("0.0.0.0", host_port, protocol, container_port)
