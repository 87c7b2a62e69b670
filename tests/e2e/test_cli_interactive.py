"""``nsnet run -it -- sh`` driven through a pseudo-terminal, as a person at a terminal would.

The CLI runs inside the host namespace with a pty as its controlling terminal and stdio; the
test types into the pty's master side and reads what the terminal shows.
"""

import fcntl
import os
import select
import subprocess
import termios
import time

from tests.support.daemon import Daemon, program_argv

READ_TIMEOUT = 30
PROMPT_TIMEOUT = 10


def take_terminal() -> None:
    # In the child, before exec: a session of its own whose controlling terminal is the pty.
    os.setsid()
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


def run_in_terminal(daemon: Daemon, args: list[str], typed: bytes) -> tuple[int, str]:
    """Run ``nsnet ARGS`` on a fresh pty, type ``typed``; its exit status and the screen."""
    master, slave = os.openpty()
    try:
        process = subprocess.Popen(
            daemon.nsenter_argv(*program_argv("nsnet", "nsnet.cli"), *args),
            stdin=slave,
            stdout=slave,
            stderr=slave,
            env=daemon.environment(),
            preexec_fn=take_terminal,
        )
    except BaseException:
        os.close(master)
        os.close(slave)
        raise
    os.close(slave)

    screen = b""
    try:
        # Type once the shell has shown its prompt, as a person would.
        ready, _, _ = select.select([master], [], [], PROMPT_TIMEOUT)
        if ready:
            screen += os.read(master, 4096)
        os.write(master, typed)
        deadline = time.monotonic() + READ_TIMEOUT
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(master, 4096)
                except OSError:  # EIO: every holder of the terminal's slave side is gone
                    break
                if not chunk:
                    break
                screen += chunk
            elif process.poll() is not None:
                break
        status = process.wait(timeout=READ_TIMEOUT)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        os.close(master)
    return status, screen.decode(errors="replace").replace("\r\n", "\n")


def test_run_it_sh_is_interactive_and_exits_with_the_shells_status(daemon: Daemon) -> None:
    status, screen = run_in_terminal(
        daemon,
        ["run", "-it", "--name", "term", "--hostname", "boxy", "--", "sh"],
        b"echo hi; hostname; exit 3\n",
    )

    assert status == 3, screen
    lines = screen.splitlines()
    assert "hi" in lines, screen  # the command's output, not only the echo of what was typed
    assert "boxy" in lines, screen  # it ran inside the container's UTS namespace
    listed = daemon.cli("ps", "-a").stdout
    assert "term" in listed and "Exited (3)" in listed, listed
    daemon.cli("rm", "term")


def test_run_it_rm_leaves_no_container(daemon: Daemon) -> None:
    status, screen = run_in_terminal(daemon, ["run", "-it", "--rm", "--", "sh"], b"exit 7\n")

    assert status == 7, screen
    assert daemon.cli("ps", "-aq").stdout == ""


def test_run_i_reads_a_pipe_and_it_refuses_a_non_terminal(daemon: Daemon) -> None:
    piped = daemon.cli("run", "-i", "--rm", "--", "sh", input="echo hi; exit 3\n", check=False)
    assert (piped.returncode, piped.stdout) == (3, "hi\n")

    refused = daemon.cli("run", "-it", "--rm", "--", "sh", input="exit 0\n", check=False)
    assert refused.returncode == 1
    assert "the input device is not a TTY" in refused.stderr
    assert daemon.cli("ps", "-aq").stdout == ""
