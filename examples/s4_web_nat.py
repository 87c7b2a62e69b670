"""S4: a web server in a container, reached directly, through a published port, and NATed out.

Another container and the host fetch it by the container's address. From outside the host
it is reachable only through a published port (`-p 8080:80`), a DNAT rule in nsnet's nat
table, and the server then sees the outside client's real address. Outbound traffic leaves
by masquerade: the outside sees the host's address, never the container's.
"""

import json
import sys
import time

from nsnet.lab import Lab, heading

# Answers every GET with the client's address, so each side can show what it is seen as.
WHO_AM_I = """
import http.server, socketserver, sys
class Server(http.server.HTTPServer):
    def server_bind(self):  # skips HTTPServer's getfqdn(), a DNS lookup
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = "whoami", self.server_address[1]
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = self.client_address[0].encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
Server((sys.argv[1], int(sys.argv[2])), Handler).serve_forever()
"""


def fetch(lab: Lab, where: str, url: str) -> str:
    """Fetch ``url`` from the host, the outside, or a throwaway container (with retries)."""
    argv = ["busybox", "wget", "-q", "-O", "-", url]
    for _ in range(40):
        if where == "outside":
            result = lab.outside(*argv, check=False)
        elif where == "host":
            result = lab.host(*argv, check=False)
        else:
            result = lab.nsnet("run", "--rm", "--", *argv, check=False)
        if result:
            return result
        time.sleep(0.1)
    return ""


def main() -> int:
    heading("S4: a web server, published ports and NAT")
    with Lab() as lab:
        script = lab.directory / "whoami.py"
        script.write_text(WHO_AM_I)
        lab.show("run", "-d", "--name", "web", "--", "python3", str(script), "0.0.0.0", "80")

        seen_by_peer = fetch(lab, "container", "http://172.17.0.2/")
        print(f"container$ wget -qO- http://172.17.0.2/   ->  {seen_by_peer}")
        assert seen_by_peer == "172.17.0.3", seen_by_peer
        seen_by_host = fetch(lab, "host", "http://172.17.0.2/")
        print(f"host$ wget -qO- http://172.17.0.2/   ->  {seen_by_host}")
        assert seen_by_host == "172.17.0.1", seen_by_host

        lab.outside("ip", "route", "add", "172.17.0.0/16", "via", "192.0.2.1")
        blocked = lab.outside(
            "busybox",
            "timeout",
            "2",
            "busybox",
            "wget",
            "-q",
            "-O",
            "-",
            "http://172.17.0.2/",
            check=False,
        )
        print(f"outside$ wget -qO- http://172.17.0.2/   ->  {blocked or '(no answer)'}")
        assert blocked == "", blocked

        lab.show(
            "run",
            "-d",
            "--name",
            "published",
            "-p",
            "8080:80",
            "--",
            "python3",
            str(script),
            "0.0.0.0",
            "80",
        )
        lab.show("port", "published")
        seen_from_outside = fetch(lab, "outside", "http://192.0.2.1:8080/")
        print(f"outside$ wget -qO- http://192.0.2.1:8080/   ->  {seen_from_outside}")
        assert seen_from_outside == "192.0.2.100", seen_from_outside
        rules = lab.show_host("nft", "list", "map", "inet", "nsnet", "wildcard_addresses")
        published = json.loads(lab.nsnet("inspect", "published"))[0]
        address = published["NetworkSettings"]["Networks"]["bridge"]["IPAddress"]
        assert f"tcp . 8080 : {address}" in rules, rules
        via_localhost = fetch(lab, "host", "http://127.0.0.1:8080/")
        print(f"host$ wget -qO- http://127.0.0.1:8080/   ->  {via_localhost}")
        assert via_localhost, "the published port does not answer on 127.0.0.1"

        # The lab ends every process in its namespaces when it closes, this server included.
        lab.outside("sh", "-c", f"python3 {script} 192.0.2.100 8000 >/dev/null 2>&1 &")
        seen_outbound = fetch(lab, "container", "http://192.0.2.100:8000/")
        print(f"container$ wget -qO- http://192.0.2.100:8000/   ->  {seen_outbound}")
        assert seen_outbound == "192.0.2.1", seen_outbound
        lab.show_host("nft", "list", "chain", "inet", "nsnet", "postrouting")
        print("observed: peers and the host reach the container directly; the outside only")
        print(
            "through the published port (and is seen as itself); outbound traffic is masqueraded"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
