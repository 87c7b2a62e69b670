"""Run a command inside a sandbox: ``python -m nsnet.enter [options] -- CMD...``.

Joins the network, UTS and mount namespaces given (files bind-mounted by nsnet, see
``nsnet.sandbox``) and execs CMD, so that every process of a container (``run`` and ``exec``
alike) shares its mount namespace, as in Docker. With no namespace given (host mode) CMD runs
as it is. Kept free of heavy imports: it runs once per started process, which must be single
threaded for ``setns`` into a mount namespace.
"""

import argparse
import os
import sys

from nsnet.kernel import namespace


def main(argv: list[str] | None = None) -> int:
    """Join the namespaces given and exec the command; return only when that fails.

    The status is Docker's: 125 when the sandbox cannot be entered or no command is given, 126
    when the command cannot be executed, 127 when it is not found.
    """
    parser = argparse.ArgumentParser(prog="nsnet-enter")
    parser.add_argument("--net")
    parser.add_argument("--uts")
    parser.add_argument("--mnt")
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
    # Every file is opened first: once in the sandbox's mount namespace, they are not there.
    """Join the namespaces ``options`` names: network, UTS, then mount, in this process.

    The process must be single-threaded for the mount namespace. Joining one moves the working
    directory to its root, so it moves back to the same path (or / if there is none). Raises
    OSError naming the namespace that cannot be opened or joined.
    """
    joins = []
    try:
        for path, kind, name in (
            (options.net, namespace.CLONE_NEWNET, "network"),
            (options.uts, namespace.CLONE_NEWUTS, "UTS"),
            (options.mnt, namespace.CLONE_NEWNS, "mount"),
        ):
            if path:
                joins.append((_open(path, name), kind, path, name))
        working_directory = _working_directory()
        for fd, kind, path, name in joins:
            try:
                namespace.setns(fd, kind)
            except OSError as error:
                raise OSError(
                    error.errno,
                    f"cannot join {name} namespace '{path}': {os.strerror(error.errno)}",
                ) from error
    finally:
        for fd, *_ in joins:
            os.close(fd)

    if options.mnt:
        # Joining a mount namespace moves the root and working directory to its root.
        try:
            os.chdir(working_directory or "/")
        except OSError:
            os.chdir("/")


def _open(path: str, name: str) -> int:
    try:
        return os.open(path, os.O_RDONLY)
    except OSError as error:
        raise OSError(
            error.errno, f"cannot open {name} namespace '{path}': {error.strerror}"
        ) from error


def _working_directory() -> str | None:
    try:
        return os.getcwd()
    except OSError:  # removed meanwhile
        return None


if __name__ == "__main__":
    sys.exit(main())
