"""nsnet-cni's pure parts: reading a call, shaping the result, the spec's error codes.

The calls themselves, against a real nsnetd and real namespaces, are in
tests/e2e/test_cni_plugin.py.
"""

import io
import json
import re

import pytest

from nsnet import cni
from nsnet.client import ConnectionFailed
from nsnet.errors import Conflict, InvalidArgument, NotFound, Unavailable

RESULT = {
    "cniVersion": "1.1.0",
    "interfaces": [
        {"name": "br-1", "mac": "02:00:00:00:00:01"},
        {"name": "veth1234567", "mac": "02:00:00:00:00:02"},
        {"name": "eth0", "mac": "02:42:0a:32:00:02", "sandbox": "/run/netns/p"},
    ],
    "ips": [{"address": "10.50.0.2/24", "gateway": "10.50.0.1", "interface": 2}],
    "routes": [{"dst": "0.0.0.0/0", "gw": "10.50.0.1"}],
    "dns": {"nameservers": ["127.0.0.11"], "search": [], "options": ["ndots:0"]},
}
ENVIRONMENT = {"CNI_CONTAINERID": "c1", "CNI_NETNS": "/run/netns/p", "CNI_IFNAME": "eth0"}


def call(environ: dict, stdin: bytes) -> tuple[int, dict]:
    out = io.StringIO()
    code = cni.main(environ, io.BytesIO(stdin), out)
    return code, json.loads(out.getvalue())


def test_version_answers_with_every_supported_version() -> None:
    code, answer = call({"CNI_COMMAND": "VERSION"}, b'{"cniVersion": "0.4.0"}')
    assert code == 0
    assert answer == {"cniVersion": "0.4.0", "supportedVersions": list(cni.SUPPORTED_VERSIONS)}
    code, answer = call({"CNI_COMMAND": "VERSION"}, b"")
    assert code == 0 and answer["cniVersion"] == cni.SPEC_VERSION


@pytest.mark.parametrize(
    ("environ", "stdin", "code", "words"),
    [
        ({}, b"{}", cni.INVALID_ENVIRONMENT, "CNI_COMMAND ''"),
        ({"CNI_COMMAND": "ADD"}, b"[1]", cni.DECODING_FAILED, "not a JSON object"),
        ({"CNI_COMMAND": "ADD"}, b'{"cniVersion": "9.9.9"}', cni.INCOMPATIBLE_VERSION, "9.9.9"),
        (
            {"CNI_COMMAND": "ADD"},
            b'{"cniVersion": "1.1.0", "name": "n", "socket": ""}',
            cni.INVALID_CONFIG,
            "'socket' must be a non-empty string",
        ),
        (
            {"CNI_COMMAND": "DEL", "CNI_CONTAINERID": "c1"},
            b'{"cniVersion": "1.1.0", "name": "n"}',
            cni.INVALID_ENVIRONMENT,
            "DEL needs CNI_IFNAME",
        ),
        (
            {"CNI_COMMAND": "GC"},
            b'{"cniVersion": "1.0.0", "name": "n"}',
            cni.INCOMPATIBLE_VERSION,
            "GC came in CNI 1.1.0",
        ),
    ],
)
def test_a_bad_call_is_an_error_document(environ, stdin, code, words) -> None:
    exit_code, answer = call(environ, stdin)
    assert exit_code == 1 and answer["code"] == code, answer
    assert words in answer["msg"], answer


def test_cni_args_take_ip_and_mac_and_refuse_unknown_keys_unless_told() -> None:
    assert cni.parse_cni_args("IP=10.0.0.5;MAC=02:00:00:00:00:05") == {
        "IP": "10.0.0.5",
        "MAC": "02:00:00:00:00:05",
    }
    assert cni.parse_cni_args("") == {}
    with pytest.raises(cni.PluginError, match="K8S_POD_NAME"):
        cni.parse_cni_args("K8S_POD_NAME=web")
    assert cni.parse_cni_args("IgnoreUnknown=1;K8S_POD_NAME=web")["K8S_POD_NAME"] == "web"
    with pytest.raises(cni.PluginError, match="'oops' is not KEY=VALUE"):
        cni.parse_cni_args("IP=10.0.0.5;oops")


def test_the_attach_body_carries_the_capabilities() -> None:
    config = {
        "cniVersion": "1.1.0",
        "name": "cni-web",
        "network": "web",
        "runtimeConfig": {
            "portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}],
            "ips": ["10.50.0.9/24"],
            "mac": "02:00:00:00:00:09",
            "aliases": {"cni-web": ["db", "primary"]},
        },
    }
    assert cni.attach_body(config, ENVIRONMENT, {}) == {
        "ContainerID": "c1",
        "Netns": "/run/netns/p",
        "IfName": "eth0",
        "Network": "web",
        "CniNetwork": "cni-web",
        "PortMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}],
        "IP": "10.50.0.9/24",
        "MAC": "02:00:00:00:00:09",
        "Aliases": ["db", "primary"],
    }
    plain = cni.attach_body({"cniVersion": "1.1.0", "name": "web"}, ENVIRONMENT, {"IP": "1.2.3.4"})
    assert plain["Network"] == "web" and plain["IP"] == "1.2.3.4" and "Aliases" not in plain
    with pytest.raises(cni.PluginError, match="holds 2 addresses"):
        cni.attach_body(
            {"name": "web", "runtimeConfig": {"ips": ["10.0.0.1/24", "10.0.0.2/24"]}},
            ENVIRONMENT,
            {},
        )


def test_a_result_follows_the_configuration_version_and_the_chain_before_it() -> None:
    assert cni.converted_result(RESULT, "1.1.0", None) == RESULT
    old = cni.converted_result(RESULT, "0.4.0", None)
    assert old["cniVersion"] == "0.4.0" and old["ips"][0]["version"] == "4"
    assert "version" not in RESULT["ips"][0]  # the input is not changed

    previous = {
        "interfaces": [{"name": "lo", "sandbox": "/run/netns/p"}],
        "ips": [{"address": "127.0.0.1/8", "interface": 0}],
        "routes": [],
        "dns": {"nameservers": ["192.0.2.53"]},
    }
    chained = cni.converted_result(RESULT, "1.0.0", previous)
    names = [each["name"] for each in chained["interfaces"]]
    assert names == ["lo", "br-1", "veth1234567", "eth0"]
    assert [ip["interface"] for ip in chained["ips"]] == [0, 3]
    assert chained["dns"] == previous["dns"]


@pytest.mark.parametrize(
    ("error", "command", "code"),
    [
        (ConnectionFailed("refused", no_listener=True), "ADD", cni.TRY_AGAIN_LATER),
        (ConnectionFailed("refused", no_listener=True), "STATUS", cni.NOT_AVAILABLE),
        (NotFound("network nosuch not found"), "ADD", cni.INVALID_CONFIG),
        (NotFound("not attached"), "CHECK", cni.UNKNOWN_CONTAINER),
        (NotFound("network nosuch not found"), "STATUS", cni.NOT_AVAILABLE),
        (InvalidArgument("bad interface name"), "ADD", cni.INVALID_CONFIG),
        (Conflict("interface exists"), "ADD", cni.REFUSED),
        (Unavailable("lost its address"), "CHECK", cni.NOT_AS_MADE),
        (Unavailable("the store is down"), "ADD", cni.TRY_AGAIN_LATER),
    ],
)
def test_daemon_errors_become_the_spec_codes(error, command, code) -> None:
    assert cni.plugin_error(error, command, "/run/nsnet/nsnetd.sock").code == code


def test_a_previous_result_is_checked_before_anything_is_made() -> None:
    assert cni.previous_result({"name": "web"}) is None
    assert cni.previous_result({"prevResult": RESULT}) == RESULT
    for bad, words in [
        ("garbage", "'prevResult' must be an object"),
        ({"interfaces": 5}, "'prevResult.interfaces' must be a list of objects"),
        ({"ips": [{"interface": "2"}]}, "'prevResult.ips[].interface' must be a number"),
        ({"dns": []}, "'prevResult.dns' must be an object"),
    ]:
        with pytest.raises(cni.PluginError, match=re.escape(words)):
            cni.previous_result({"prevResult": bad})


def test_the_default_route_of_a_previous_result_is_found_by_interface() -> None:
    assert cni.holds_default_route(RESULT, "eth0")
    assert not cni.holds_default_route(RESULT, "net1")  # another interface's result
    assert not cni.holds_default_route({**RESULT, "routes": []}, "eth0")
    implied = {**RESULT, "routes": [{"dst": "0.0.0.0/0"}]}  # another plugin's, say bridge's
    assert not cni.holds_default_route(implied, "eth0")
    assert not cni.holds_default_route(None, "eth0")
