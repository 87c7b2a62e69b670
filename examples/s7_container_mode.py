"""S7: `--network container:<other>` joins another container's network namespace.

Both see the same eth0, MAC and address, and talk to each other over lo. (In nsnet the two
processes still share the host's file system and process table: nsnet isolates networks,
not files.)
"""

import re
import sys

from nsnet.lab import Lab, heading

PAGE = "hello from web over lo"


def main() -> int:
    heading("S7: --network container:web")
    with Lab() as lab:
        lab.host(
            "sh",
            "-c",
            f"mkdir -p {lab.directory}/www && echo '{PAGE}' > {lab.directory}/www/index.html",
        )
        lab.show(
            "run",
            "-d",
            "--name",
            "web",
            "--",
            "busybox",
            "httpd",
            "-f",
            "-p",
            "127.0.0.1:8080",
            "-h",
            f"{lab.directory}/www",
        )
        web = lab.show("exec", "web", "--", "ip", "addr", "show", "eth0")
        joined = lab.show(
            "run", "--rm", "--network", "container:web", "--", "ip", "addr", "show", "eth0"
        )
        mac = re.search(r"link/ether (\S+)", web).group(1)
        address = re.search(r"inet (\S+)", web).group(1)
        assert f"link/ether {mac}" in joined and f"inet {address}" in joined, joined
        print(f"observed: both see eth0 with MAC {mac} and address {address}")

        for _ in range(50):  # httpd may need a moment to listen
            fetched = lab.attempt(
                "run",
                "--rm",
                "--network",
                "container:web",
                "--",
                "busybox",
                "wget",
                "-q",
                "-O",
                "-",
                "http://127.0.0.1:8080/",
            )
            if fetched.returncode == 0:
                break
        page = lab.show(
            "run",
            "--rm",
            "--network",
            "container:web",
            "--",
            "busybox",
            "wget",
            "-q",
            "-O",
            "-",
            "http://127.0.0.1:8080/",
        )
        assert PAGE in page, page

        lab.show("create", "--name", "idle", "--", "sleep", "infinity")
        for other in ("idle", "nosuch"):
            refused = lab.attempt("run", "--rm", "--network", f"container:{other}", "--", "true")
            print(f"host$ nsnet run --rm --network container:{other} -- true")
            print(refused.stderr, end="")
            assert refused.returncode != 0 and other in refused.stderr, refused
    return 0


if __name__ == "__main__":
    sys.exit(main())
