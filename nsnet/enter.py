"""Run a command inside a sandbox: ``python -m nsnet.enter [options] -- CMD...``.

Joins the network and UTS namespaces given, makes a private mount namespace (as
``ip netns exec`` does) with a fresh /sys that shows the sandbox's interfaces and the given
bind mounts, detaches the sandbox directory so the process pins no other sandbox, and execs
CMD. Kept free of heavy imports: it runs once per started process.
"""

import argparse
import os
import sys

from nsnet.kernel import namespace


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="nsnet-enter")
    parser.add_argument("--net")
    parser.add_argument("--uts")
    parser.add_argument("--unmount", action="append", default=[])
    parser.add_argument("--bind", action="append", default=[], help="SOURCE:TARGET")
    parser.add_argument(
        "--status-fd",
        type=int,
        help="a pipe that gets the reason when the command cannot start, and closes on exec",
    )
    parser.add_argument("command", nargs=argparse.REMAINDER)
    options = parser.parse_args(argv)
    command = options.command[1:] if options.command[:1] == ["--"] else options.command
    if not command:
        print("nsnet-enter: no command given", file=sys.stderr)
        return 125

    if options.status_fd is not None:
        os.set_inheritable(options.status_fd, False)  # a successful exec closes it

    try:
        enter(options)
    except OSError as error:
        return fail(options.status_fd, f"cannot enter sandbox: {error}", 125)

    try:
        os.execvp(command[0], command)
    except OSError as error:
        # Worded as Docker words it, so that its users' scripts recognise it.
        reason = f'exec: "{command[0]}": {error.strerror.lower()}'
        return fail(
            options.status_fd, reason, 127 if isinstance(error, FileNotFoundError) else 126
        )


def fail(status_fd: int | None, reason: str, code: int) -> int:
    """Say why the command cannot start (on stderr, and to the starter's pipe); return code."""
    print(f"nsnet-enter: {reason}", file=sys.stderr)
    if status_fd is not None:
        try:
            os.write(status_fd, f"{code} {reason}".encode())
        except OSError:
            pass  # the starter gave up waiting; stderr has it
    return code


def enter(options: argparse.Namespace) -> None:
    for path, kind in (
        (options.net, namespace.CLONE_NEWNET),
        (options.uts, namespace.CLONE_NEWUTS),
    ):
        if path:
            fd = os.open(path, os.O_RDONLY)
            try:
                namespace.setns(fd, kind)
            finally:
                os.close(fd)
    if not options.net:
        return

    # A mount namespace of our own; slave so that later unmounts on the host still reach us.
    namespace.unshare(namespace.CLONE_NEWNS)
    namespace.mount("none", "/", None, namespace.MS_REC | namespace.MS_SLAVE)
    for directory in options.unmount:
        try:
            namespace.umount(directory)
        except OSError:
            pass
    try:
        namespace.umount("/sys")
        namespace.mount("sysfs", "/sys", "sysfs", 0)
    except OSError:
        pass  # /sys keeps showing the host's interfaces; netlink is unaffected
    for spec in options.bind:
        source, target = spec.rsplit(":", 1)
        namespace.mount(source, target, None, namespace.MS_BIND)


if __name__ == "__main__":
    sys.exit(main())
