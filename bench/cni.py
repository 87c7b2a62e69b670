"""The CNI reference plugins (Debian's containernetworking-plugins), invoked as a runtime does.

Each call execs the plugin binary from /usr/lib/cni inside the host namespace (through the
host's agent), with CNI_COMMAND, CNI_CONTAINERID, CNI_NETNS, CNI_IFNAME and CNI_PATH in its
environment and the network configuration on stdin, spec version 1.0.0 (the newest these
plugins speak). A configuration list runs like libcni runs it: ADD through the plugins in
order, each given the previous result; DEL in reverse order, each given the cached result of
the ADD. host-local keeps its state in the stage's directory.

Networks (podman's CNI defaults: a gateway bridge with masquerading and hairpin mode):

    nsnt-default   bridge cni-default, 10.87.0.0/16, no routes   (the target's first network)
    nsnt-bench     bridge cni-bench,   10.88.0.0/16, default route; + portmap when ports are
                   published

Attach is one ``bridge`` ADD (eth1) on a container namespace that already has eth0 on
nsnt-default, like ``docker network connect``; detach is its DEL. A "container" is the
network namespace a runtime makes (unshare + bind mount, in-process) plus the plugins' ADD.
"""

import copy
import json
import os
import secrets
from pathlib import Path

from bench.subject import PLUGIN, Container, NotSupported, Subject, Unavailable
from bench.world import NAME_PREFIX

CNI_PATH = Path("/usr/lib/cni")
PLUGINS = ("bridge", "host-local", "portmap")
CNI_VERSION = "1.0.0"
DEFAULT_NETWORK = "nsnt-default"
BENCH_NETWORK = "nsnt-bench"


def missing_plugins() -> list[str]:
    """The reference plugins this suite needs that are not installed."""
    return [name for name in PLUGINS if not os.access(CNI_PATH / name, os.X_OK)]


def bridge_plugin(bridge: str, subnet: str, data_dir: Path, default_route: bool) -> dict:
    ipam = {
        "type": "host-local",
        "ranges": [[{"subnet": subnet}]],
        "dataDir": str(data_dir),
    }
    if default_route:
        ipam["routes"] = [{"dst": "0.0.0.0/0"}]
    return {
        "type": "bridge",
        "bridge": bridge,
        "isGateway": True,
        "ipMasq": True,
        "hairpinMode": True,
        "ipam": ipam,
    }


PORTMAP_PLUGIN = {"type": "portmap", "capabilities": {"portMappings": True}, "snat": True}


class Cni(Subject):
    name = "cni"
    column = "CNI"
    interfaces = (PLUGIN,)
    container_interfaces = (PLUGIN,)
    primary = PLUGIN

    def start(self) -> None:
        missing = missing_plugins()
        if missing:
            raise Unavailable(f"CNI plugins {', '.join(missing)} not found in {CNI_PATH}")
        self.directory = self.world.subdirectory("cni")
        self.agent = self.world.agent(self.topology.host.path, "cni-host")
        data_dir = self.directory / "host-local"
        self.networks = {
            DEFAULT_NETWORK: [bridge_plugin("cni-default", "10.87.0.0/16", data_dir, False)],
            BENCH_NETWORK: [bridge_plugin("cni-bench", "10.88.0.0/16", data_dir, True)],
        }
        # Results of ADDs, as libcni caches them for DEL: (container id, ifname) -> result.
        self.cache: dict[tuple[str, str], dict] = {}

    # Plugin invocation

    def invoke(
        self,
        plugin: dict,
        network: str,
        command: str,
        container_id: str,
        netns_path: str,
        ifname: str,
        previous: dict | None,
        runtime_config: dict | None,
    ) -> tuple[dict | None, float]:
        """Exec one plugin once; return its parsed result (ADD) and the seconds it took."""
        config = copy.deepcopy(plugin)
        config["cniVersion"] = CNI_VERSION
        config["name"] = network
        if previous is not None:
            config["prevResult"] = previous
        if runtime_config and config.get("capabilities"):
            config["runtimeConfig"] = {
                key: value
                for key, value in runtime_config.items()
                if config["capabilities"].get(key)
            }
        environment = {
            "CNI_COMMAND": command,
            "CNI_CONTAINERID": container_id,
            "CNI_NETNS": netns_path,
            "CNI_IFNAME": ifname,
            "CNI_PATH": str(CNI_PATH),
        }
        answer = self.agent.exec(
            [str(CNI_PATH / plugin["type"])],
            env=environment,
            input=json.dumps(config),
            clean_env=True,
        )
        result = json.loads(answer["stdout"]) if command == "ADD" and answer["stdout"] else None
        return result, answer["seconds"]

    def add(
        self,
        plugins: list[dict],
        network: str,
        container: Container,
        ifname: str,
        runtime_config: dict | None = None,
    ) -> float:
        """ADD through a configuration list; cache the result for DEL. Returns seconds."""
        seconds = 0.0
        result = None
        for plugin in plugins:
            result, taken = self.invoke(
                plugin,
                network,
                "ADD",
                container.handle,
                container.netns_path,
                ifname,
                result,
                runtime_config,
            )
            seconds += taken
        self.cache[(container.handle, ifname)] = {
            "network": network,
            "plugins": plugins,
            "result": result,
            "runtime_config": runtime_config,
        }
        address = next((ip["address"].split("/")[0] for ip in (result or {}).get("ips", [])), None)
        if address:
            container.addresses[network] = address
        return seconds

    def delete(self, container: Container, ifname: str) -> float:
        """DEL through the cached configuration list, in reverse order. Returns seconds."""
        cached = self.cache.pop((container.handle, ifname))
        seconds = 0.0
        for plugin in reversed(cached["plugins"]):
            _, taken = self.invoke(
                plugin,
                cached["network"],
                "DEL",
                container.handle,
                container.netns_path,
                ifname,
                cached["result"],
                cached["runtime_config"],
            )
            seconds += taken
        container.addresses.pop(cached["network"], None)
        return seconds

    # Namespaces, made by the agent in-process as runtimes make them

    def new_netns(self, name: str) -> tuple[Container, float]:
        netns_name = f"{NAME_PREFIX}c-{secrets.token_hex(4)}"
        self.world.adopt_namespace(netns_name)
        seconds = self.agent.request("netns_create", name=netns_name)["seconds"]
        container = Container(
            handle=secrets.token_hex(32), name=name, netns_path=f"/run/netns/{netns_name}"
        )
        container.extra["netns_name"] = netns_name
        return container, seconds

    # The contract

    def bench_network(self, name: str) -> str:
        return BENCH_NETWORK

    def create_target(self, name: str) -> Container:
        container, _ = self.new_netns(name)
        self.add(self.networks[DEFAULT_NETWORK], DEFAULT_NETWORK, container, "eth0")
        return container

    def attach(self, network: str, container: Container, interface: str) -> float:
        return self.add(self.networks[network], network, container, "eth1")

    def detach(self, network: str, container: Container, interface: str) -> float:
        return self.delete(container, "eth1")

    def create_container(
        self,
        name: str,
        network: str,
        ports: list[tuple[int, int]],
        interface: str,
        run: bool = False,
    ) -> tuple[Container, float]:
        if run:
            raise NotSupported("CNI plugins start no processes")
        container, seconds = self.new_netns(name)
        plugins = self.networks[network]
        runtime_config = None
        if ports:
            plugins = [*plugins, PORTMAP_PLUGIN]
            runtime_config = {
                "portMappings": [
                    {"hostPort": host, "containerPort": inside, "protocol": "tcp"}
                    for host, inside in ports
                ]
            }
        seconds += self.add(plugins, network, container, "eth0", runtime_config)
        return container, seconds

    def remove_container(self, container: Container, interface: str) -> float:
        seconds = self.delete(container, "eth0")
        answer = self.agent.request("netns_delete", name=container.extra["netns_name"])
        return seconds + answer["seconds"]
