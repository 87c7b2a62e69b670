"""nsnet.engine.ExitWatch: the end of processes that are not ours to wait for, seen by pidfd."""

import subprocess
import time

from nsnet.engine import ExitWatch, process_start_time


def ended_within(watch: ExitWatch, seconds: float) -> set[str]:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if found := watch.ended():
            return found
        time.sleep(0.01)
    return set()


def test_a_watched_process_is_reported_once_it_ends() -> None:
    watch = ExitWatch()
    first = subprocess.Popen(["sleep", "30"])
    second = subprocess.Popen(["sleep", "30"])
    try:
        watch.add("one", first.pid, process_start_time(first.pid))
        watch.add("two", second.pid, process_start_time(second.pid))
        assert watch.watches("one") and watch.ended() == set()

        first.kill()
        assert ended_within(watch, 5) == {"one"}
        watch.discard("one")
        assert not watch.watches("one") and watch.ended() == set()
    finally:
        for process in (first, second):
            process.kill()
            process.wait()
        watch.close()
    assert not watch.watches("two")


def test_a_pid_that_started_at_another_time_is_not_watched() -> None:
    watch = ExitWatch()
    process = subprocess.Popen(["sleep", "30"])
    try:
        watch.add("other", process.pid, process_start_time(process.pid) - 1)
        assert not watch.watches("other")  # the caller's /proc check decides for it
    finally:
        process.kill()
        process.wait()
    watch.add("gone", process.pid, 0)
    assert not watch.watches("gone")
