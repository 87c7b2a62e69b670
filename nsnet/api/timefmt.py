"""Times as Docker prints them: RFC 3339 stamps, and durations such as "About a minute".

Free of heavy imports: the CLI uses it for ``ps``.
"""

from datetime import UTC, datetime

# What Docker shows for a time that never happened (Go's zero time).
ZERO_TIME = "0001-01-01T00:00:00Z"


def parse_timestamp(text: str) -> datetime | None:
    """An RFC 3339 stamp (nanoseconds allowed) as an aware datetime; None for empty or zero."""
    if not text or text == ZERO_TIME:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment


def unix_seconds(text: str) -> int:
    """An RFC 3339 stamp as whole seconds since the epoch (0 when unknown)."""
    moment = parse_timestamp(text)
    return int(moment.timestamp()) if moment else 0


def human_duration(seconds: float) -> str:
    """A duration the way Docker's go-units HumanDuration words it."""
    if seconds < 1:
        return "Less than a second"
    if seconds < 2:
        return "1 second"
    if seconds < 60:
        return f"{int(seconds)} seconds"

    minutes = int(seconds / 60)
    if minutes == 1:
        return "About a minute"
    if minutes < 60:
        return f"{minutes} minutes"

    hours = int(seconds / 3600 + 0.5)
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return f"{hours} hours"
    if hours < 24 * 7 * 2:
        return f"{hours // 24} days"
    if hours < 24 * 30 * 2:
        return f"{hours // 24 // 7} weeks"
    if hours < 24 * 365 * 2:
        return f"{hours // 24 // 30} months"
    return f"{int(seconds / 3600) // 24 // 365} years"


def since(text: str, now: datetime | None = None) -> float:
    """Seconds from an RFC 3339 stamp until ``now`` (0 when the stamp is unknown)."""
    moment = parse_timestamp(text)
    if moment is None:
        return 0.0
    now = now or datetime.now(UTC)
    return max(0.0, (now - moment).total_seconds())


def container_status(
    state: str, exit_code: int, started_at: str, finished_at: str, now: datetime | None = None
) -> str:
    """The STATUS column of ``ps``: "Created", "Up 3 seconds", "Exited (0) 2 minutes ago"."""
    if state == "running":
        return "Up " + human_duration(since(started_at, now))
    if state == "exited":
        if parse_timestamp(finished_at) is None:
            return f"Exited ({exit_code})"
        return f"Exited ({exit_code}) {human_duration(since(finished_at, now))} ago"
    return state.capitalize()
