"""nsnet-cni: a CNI plugin (spec 1.1.0) that attaches a runtime's namespace to an nsnet network.

A runtime (podman, containerd, cnitool, a test harness) execs this program once per call, with
the call in its environment (CNI_COMMAND, CNI_CONTAINERID, CNI_NETNS, CNI_IFNAME, CNI_ARGS) and
the network configuration as JSON on stdin. It translates the call for nsnetd, which does the
work with the same engine as ``nsnet network connect``: an address from nsnet's IPAM, a veth
pair on the network's bridge, published ports in nsnet's nftables maps, names in the embedded
DNS. The answer goes to stdout: a result on success, else an error ({"code", "msg"}) and a
non-zero exit.

The configuration::

    {
      "cniVersion": "1.1.0",
      "name": "web",                 the CNI network's name
      "type": "nsnet-cni",
      "network": "web",              the nsnet network (default: "name"); bridge networks
      "socket": "/run/nsnet/nsnetd.sock",   nsnetd's API (default: as the nsnet CLI finds it)
      "capabilities": {"portMappings": true, "ips": true, "mac": true, "aliases": true}
    }

The runtime passes capabilities in ``runtimeConfig``: ``portMappings`` (published through the
container's first nsnet network), ``ips`` (one IPv4 address), ``mac``, and ``aliases`` (a list,
or podman's map of network name to list) for the embedded DNS. CNI_ARGS may carry ``IP`` and
``MAC``; other keys are refused unless ``IgnoreUnknown=1`` is among them.

Only the daemon's client is imported: a runtime pays this program's start-up on every call.
"""

import contextlib
import json
import os
import sys
from collections.abc import Mapping
from typing import IO, Any

from nsnet.client import Client, ConnectionFailed, quote_ref
from nsnet.errors import Conflict, Forbidden, InvalidArgument, NotFound, NsnetError, Unavailable
from nsnet.paths import Paths

SPEC_VERSION = "1.1.0"
SUPPORTED_VERSIONS = ("0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0")
REQUEST_TIMEOUT = 60.0  # seconds for one call to nsnetd; an ADD takes milliseconds

# The spec's error codes (1-99), then nsnet's own (100 and up).
INCOMPATIBLE_VERSION = 1
UNSUPPORTED_FIELD = 2
UNKNOWN_CONTAINER = 3
INVALID_ENVIRONMENT = 4
DECODING_FAILED = 6
INVALID_CONFIG = 7
TRY_AGAIN_LATER = 11
NOT_AVAILABLE = 50
REFUSED = 100  # nsnetd refused the call: an address or interface taken, a name in use
NOT_AS_MADE = 101  # CHECK: the attachment lost part of itself (its namespace, interface, address)

# The variables each command needs besides CNI_COMMAND.
REQUIRED_ENVIRONMENT = {
    "ADD": ("CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME"),
    "DEL": ("CNI_CONTAINERID", "CNI_IFNAME"),
    "CHECK": ("CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME"),
    "GC": (),
    "STATUS": (),
}
SINCE_VERSION = {"CHECK": "0.4.0", "GC": "1.1.0", "STATUS": "1.1.0"}
KNOWN_ARGS = ("IP", "MAC", "IgnoreUnknown")


class PluginError(Exception):
    """A failure to report to the runtime: the spec's code, a message and details."""

    def __init__(self, code: int, message: str, details: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details


def version_key(version: str) -> tuple[int, ...]:
    """``1.0.0`` as (1, 0, 0), for ordering."""
    return tuple(int(part) for part in version.split(".") if part.isdigit())


# Reading the call


def read_config(data: bytes) -> dict:
    """The network configuration on stdin, checked for what every command needs."""
    try:
        config = json.loads(data or b"{}")
    except ValueError as error:
        message = f"cannot decode the network configuration: {error}"
        raise PluginError(DECODING_FAILED, message) from error
    if not isinstance(config, dict):
        raise PluginError(DECODING_FAILED, "the network configuration is not a JSON object")
    version = config.get("cniVersion", "")
    if version not in SUPPORTED_VERSIONS:
        raise PluginError(
            INCOMPATIBLE_VERSION,
            f"CNI version '{version}' is not supported",
            f"supported: {', '.join(SUPPORTED_VERSIONS)}",
        )
    for key in ("network", "socket"):
        if key in config and not (isinstance(config[key], str) and config[key]):
            raise PluginError(INVALID_CONFIG, f"'{key}' must be a non-empty string")
    if not isinstance(config.get("name"), str) or not config["name"]:
        raise PluginError(INVALID_CONFIG, "the network configuration has no 'name'")
    return config


def read_environment(command: str, environ: Mapping[str, str]) -> dict[str, str]:
    """The call's CNI_* variables, refusing a missing or empty one that ``command`` needs."""
    missing = [name for name in REQUIRED_ENVIRONMENT[command] if not environ.get(name)]
    if missing:
        raise PluginError(
            INVALID_ENVIRONMENT, f"{command} needs {', '.join(missing)} in the environment"
        )
    return {name: environ.get(name, "") for name in ("CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME")}


def parse_cni_args(text: str) -> dict[str, str]:
    """CNI_ARGS (``K=V;K2=V2``); keys nsnet-cni does not know are refused without IgnoreUnknown."""
    pairs: dict[str, str] = {}
    for item in filter(None, text.split(";")):
        key, separator, value = item.partition("=")
        if not separator or not key:
            raise PluginError(INVALID_ENVIRONMENT, f"CNI_ARGS: '{item}' is not KEY=VALUE")
        pairs[key] = value
    ignore_unknown = pairs.get("IgnoreUnknown", "").lower() in ("1", "true")
    unknown = sorted(key for key in pairs if key not in KNOWN_ARGS)
    if unknown and not ignore_unknown:
        raise PluginError(
            INVALID_ENVIRONMENT,
            f"CNI_ARGS: unknown key(s) {', '.join(unknown)} (add IgnoreUnknown=1 to pass them)",
        )
    return pairs


def attach_body(config: dict, environment: dict[str, str], args: dict[str, str]) -> dict:
    """The body of nsnetd's /nsnet/cni/add from the call."""
    runtime = config.get("runtimeConfig") or {}
    if not isinstance(runtime, dict):
        raise PluginError(INVALID_CONFIG, "'runtimeConfig' must be an object")
    network = config.get("network") or config["name"]
    body: dict[str, Any] = {
        "ContainerID": environment["CNI_CONTAINERID"],
        "Netns": environment["CNI_NETNS"],
        "IfName": environment["CNI_IFNAME"],
        "Network": network,
        "CniNetwork": config["name"],
        "PortMappings": runtime.get("portMappings") or [],
    }
    address = args.get("IP") or single_address(runtime.get("ips"))
    if address:
        body["IP"] = address  # nsnetd checks a prefix against the network's
    mac = args.get("MAC") or runtime.get("mac")
    if mac:
        body["MAC"] = mac
    aliases = runtime.get("aliases")
    if isinstance(aliases, dict):  # podman's: network name -> its aliases there
        aliases = aliases.get(config["name"]) or aliases.get(network)
    if aliases:
        body["Aliases"] = aliases
    return body


def single_address(ips: Any) -> str | None:
    """The one IPv4 address of the ips capability (nsnet gives an endpoint one address)."""
    if not ips:
        return None
    if not isinstance(ips, list) or not all(isinstance(ip, str) for ip in ips):
        raise PluginError(INVALID_CONFIG, "'runtimeConfig.ips' must be a list of addresses")
    if len(ips) > 1:
        raise PluginError(
            UNSUPPORTED_FIELD, f"'runtimeConfig.ips' holds {len(ips)} addresses; nsnet takes one"
        )
    return ips[0]


def previous_result(config: dict) -> dict | None:
    """The chain's previous result (``prevResult``), checked for the parts nsnet-cni reads."""
    previous = config.get("prevResult")
    if previous is None:
        return None
    if not isinstance(previous, dict):
        raise PluginError(INVALID_CONFIG, "'prevResult' must be an object")
    for key in ("interfaces", "ips", "routes"):
        entries = previous.get(key, [])
        if not isinstance(entries, list) or not all(isinstance(each, dict) for each in entries):
            raise PluginError(INVALID_CONFIG, f"'prevResult.{key}' must be a list of objects")
    for ip in previous.get("ips", []):
        if "interface" in ip and not isinstance(ip["interface"], int):
            raise PluginError(INVALID_CONFIG, "'prevResult.ips[].interface' must be a number")
    if "dns" in previous and not isinstance(previous["dns"], dict):
        raise PluginError(INVALID_CONFIG, "'prevResult.dns' must be an object")
    return previous


def holds_default_route(previous: dict | None, ifname: str) -> bool:
    """Whether the previous result routes the default through ``ifname``'s gateway."""
    if not previous:
        return False
    interfaces = previous.get("interfaces", [])
    ours = {
        number
        for number, each in enumerate(interfaces)
        if each.get("name") == ifname and each.get("sandbox")
    }
    gateways = {
        ip.get("gateway") for ip in previous.get("ips", []) if ip.get("interface") in ours
    } - {None}
    # nsnet's results name the gateway; a route without one is another plugin's.
    return any(
        route.get("dst") == "0.0.0.0/0" and route.get("gw") in gateways
        for route in previous.get("routes", [])
    )


# Shaping the answer


def converted_result(result: dict, version: str, previous: dict | None) -> dict:
    """nsnetd's result (1.1.0) in the configuration's version, after a chain's previous one."""
    result = json.loads(json.dumps(result))  # a copy to change
    if previous:
        # A plugin in a chain outputs what came before it with its own additions.
        interfaces = list(previous.get("interfaces") or [])
        shift = len(interfaces)
        for ip in result["ips"]:
            ip["interface"] += shift
        result["interfaces"] = interfaces + result["interfaces"]
        result["ips"] = list(previous.get("ips") or []) + result["ips"]
        result["routes"] = list(previous.get("routes") or []) + result["routes"]
        if previous.get("dns"):
            result["dns"] = previous["dns"]
    if version_key(version) < (1, 0, 0):
        for ip in result["ips"]:
            ip.setdefault("version", "4")  # gone from results in 1.0.0
    result["cniVersion"] = version
    return result


def error_document(error: PluginError, version: str) -> dict:
    document = {"cniVersion": version, "code": error.code, "msg": error.message}
    if error.details:
        document["details"] = error.details
    return document


def plugin_error(error: NsnetError, command: str, socket_path: str) -> PluginError:
    """The spec's error for a failure of a call to nsnetd."""
    message = str(error).removeprefix("Error response from daemon: ")
    if isinstance(error, ConnectionFailed):
        code = NOT_AVAILABLE if command == "STATUS" else TRY_AGAIN_LATER
        return PluginError(code, f"nsnetd does not answer at {socket_path}", message)
    if command == "STATUS":  # the network is missing, or nsnetd cannot serve it
        return PluginError(NOT_AVAILABLE, message)
    if isinstance(error, NotFound):
        return PluginError(UNKNOWN_CONTAINER if command == "CHECK" else INVALID_CONFIG, message)
    if isinstance(error, InvalidArgument):
        return PluginError(INVALID_CONFIG, message)
    if isinstance(error, Conflict | Forbidden):
        return PluginError(REFUSED, message)
    if isinstance(error, Unavailable) and command == "CHECK":
        return PluginError(NOT_AS_MADE, message)
    return PluginError(TRY_AGAIN_LATER, message)


# The commands


def run(command: str, config: dict, environ: Mapping[str, str], client: Client) -> dict | None:
    """Carry out one call; its result (ADD, VERSION) or None."""
    environment = read_environment(command, environ)
    network = config.get("network") or config["name"]
    if command == "ADD":
        args = parse_cni_args(environ.get("CNI_ARGS", ""))
        previous = previous_result(config)  # checked before anything is made
        result = client.post("/nsnet/cni/add", attach_body(config, environment, args))
        return converted_result(result, config["cniVersion"], previous)
    if command == "DEL":
        attachment = {
            "ContainerID": environment["CNI_CONTAINERID"],
            "IfName": environment["CNI_IFNAME"],
            "Network": network,
            "CniNetwork": config["name"],
        }
        client.post("/nsnet/cni/del", attachment)
        return None
    if command == "CHECK":
        previous = previous_result(config)
        client.post(
            "/nsnet/cni/check",
            {
                "ContainerID": environment["CNI_CONTAINERID"],
                "IfName": environment["CNI_IFNAME"],
                "Network": network,
                "Netns": environment["CNI_NETNS"],
                "DefaultRoute": holds_default_route(previous, environment["CNI_IFNAME"]),
                "CniNetwork": config["name"],
            },
        )
        return None
    if command == "GC":
        valid = config.get("cni.dev/valid-attachments") or []
        if not isinstance(valid, list) or not all(
            isinstance(each, dict) and each.get("containerID") and each.get("ifname")
            for each in valid
        ):
            raise PluginError(
                INVALID_CONFIG,
                "'cni.dev/valid-attachments' must be a list of {containerID, ifname}",
            )
        attachments = [
            {"ContainerID": each["containerID"], "IfName": each["ifname"]} for each in valid
        ]
        client.post(
            "/nsnet/cni/gc",
            {"Network": network, "CniNetwork": config["name"], "ValidAttachments": attachments},
        )
        return None
    # STATUS: ready when nsnetd answers and has the network, a bridge one.
    driver = client.get(f"/networks/{quote_ref(network)}").get("Driver")
    if driver != "bridge":
        raise PluginError(
            NOT_AVAILABLE,
            f"network {network} is a {driver} network; nsnet-cni attaches bridge networks",
        )
    return None


def main(
    environ: Mapping[str, str] | None = None,
    stdin: IO[bytes] | None = None,
    stdout: IO[str] | None = None,
) -> int:
    """The plugin's entry point: one call from the environment and stdin; the exit code."""
    environ = os.environ if environ is None else environ
    stdin = sys.stdin.buffer if stdin is None else stdin
    stdout = sys.stdout if stdout is None else stdout
    version = SPEC_VERSION
    try:
        command = environ.get("CNI_COMMAND", "")
        data = stdin.read()
        if command == "VERSION":
            with contextlib.suppress(ValueError, AttributeError):
                asked = json.loads(data or b"{}").get("cniVersion")
                version = asked if asked in SUPPORTED_VERSIONS else SPEC_VERSION
            answer = {"cniVersion": version, "supportedVersions": list(SUPPORTED_VERSIONS)}
            json.dump(answer, stdout)
            return 0
        if command not in REQUIRED_ENVIRONMENT:
            raise PluginError(
                INVALID_ENVIRONMENT,
                f"CNI_COMMAND '{command}' is not one of ADD, DEL, CHECK, GC, STATUS, VERSION",
            )
        config = read_config(data)
        version = config["cniVersion"]
        if version_key(version) < version_key(SINCE_VERSION.get(command, "0.1.0")):
            raise PluginError(
                INCOMPATIBLE_VERSION,
                f"{command} came in CNI {SINCE_VERSION[command]}; the configuration is {version}",
            )
        socket_path = config.get("socket") or str(Paths.from_env().socket)
        try:
            result = run(command, config, environ, Client(socket_path, timeout=REQUEST_TIMEOUT))
        except NsnetError as error:
            raise plugin_error(error, command, socket_path) from error
        except (ValueError, TypeError, KeyError, AttributeError) as error:
            # An answer or a configuration shaped as nothing here expects: still the spec's
            # error document, never a traceback.
            raise PluginError(INVALID_CONFIG, f"cannot carry out {command}: {error!r}") from error
    except PluginError as error:
        json.dump(error_document(error, version), stdout)
        stdout.write("\n")
        return 1
    if result is not None:
        json.dump(result, stdout)
        stdout.write("\n")
    return 0


def entry() -> None:
    sys.exit(main())


if __name__ == "__main__":
    entry()
