"""The cluster settings: flags, daemon.json, and the refusals that name what is wrong."""

import json
from ipaddress import IPv4Address

import pytest

from nsnet.cluster.config import (
    DEFAULT_TTL,
    cluster_config,
    parse_advertise_address,
    parse_store_url,
    read_config_file,
)
from nsnet.errors import InvalidArgument


def test_store_url_with_and_without_port() -> None:
    assert parse_store_url("etcd://198.51.100.100:2379") == ("198.51.100.100", 2379)
    assert parse_store_url("etcd://etcd.example") == ("etcd.example", 2379)
    assert parse_store_url("etcd://192.0.2.1:4001/") == ("192.0.2.1", 4001)


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("consul://192.0.2.1:8500", "the 'consul' store is not supported"),
        ("192.0.2.1:2379", "expected etcd://ADDR:PORT"),
        ("etcd://192.0.2.1:99999", "out of range"),
    ],
)
def test_bad_store_urls_are_refused_by_name(url: str, reason: str) -> None:
    with pytest.raises(InvalidArgument, match=reason):
        parse_store_url(url)


def test_advertise_address_takes_dockers_ip_port_form() -> None:
    assert parse_advertise_address("198.51.100.1") == IPv4Address("198.51.100.1")
    assert parse_advertise_address("198.51.100.1:2376") == IPv4Address("198.51.100.1")
    with pytest.raises(InvalidArgument, match="interface names are not supported"):
        parse_advertise_address("eth0:2376")
    with pytest.raises(InvalidArgument, match="other hosts cannot reach"):
        parse_advertise_address("127.0.0.1")


def test_no_store_means_no_cluster() -> None:
    assert cluster_config(None, None, None) is None


def test_flags_make_a_config_with_the_default_ttl() -> None:
    config = cluster_config("etcd://198.51.100.100:2379", "198.51.100.1", None, node_name="h1")
    assert config.store_url == "etcd://198.51.100.100:2379"
    assert config.advertise_address == IPv4Address("198.51.100.1")
    assert config.ttl == DEFAULT_TTL
    assert config.node_name == "h1"


def test_a_store_needs_an_advertise_address_and_the_reverse() -> None:
    with pytest.raises(InvalidArgument, match="--cluster-store needs --advertise-addr"):
        cluster_config("etcd://198.51.100.100:2379", None, None)
    with pytest.raises(InvalidArgument, match="--advertise-addr needs --cluster-store"):
        cluster_config(None, "198.51.100.1", None)


@pytest.mark.parametrize("ttl", [0, 1, "soon", True])
def test_short_or_malformed_ttls_are_refused(ttl) -> None:
    with pytest.raises(InvalidArgument, match="invalid cluster TTL"):
        cluster_config(
            None, None, None, {"cluster_store": "etcd://a:1", **_advertise(), "cluster_ttl": ttl}
        )


def _advertise() -> dict:
    return {"advertise_address": "198.51.100.1"}


def test_config_file_uses_dockers_keys(tmp_path) -> None:
    path = tmp_path / "daemon.json"
    path.write_text(
        json.dumps(
            {
                "cluster-store": "etcd://198.51.100.100:2379",
                "cluster-advertise": "198.51.100.2:2376",
                "cluster-ttl": 5,
                "dns": ["192.0.2.53"],
            }
        )
    )
    settings = read_config_file(path, required=True)
    config = cluster_config(None, None, None, settings)
    assert config.advertise_address == IPv4Address("198.51.100.2")
    assert config.ttl == 5


def test_a_setting_in_both_places_is_refused(tmp_path) -> None:
    settings = {"cluster_store": "etcd://198.51.100.100:2379", **_advertise()}
    with pytest.raises(InvalidArgument, match="both as a flag and in the configuration file"):
        cluster_config("etcd://198.51.100.100:2379", None, None, settings)


def test_missing_default_file_is_fine_but_a_named_one_is_not(tmp_path) -> None:
    assert read_config_file(tmp_path / "daemon.json", required=False) == {}
    with pytest.raises(InvalidArgument, match="no such file"):
        read_config_file(tmp_path / "daemon.json", required=True)
    (tmp_path / "bad.json").write_text("[1, 2]")
    with pytest.raises(InvalidArgument, match="not a JSON object"):
        read_config_file(tmp_path / "bad.json", required=True)
