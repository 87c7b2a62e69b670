"""Random container names in Docker's style: an adjective and a noun joined by '_'."""

import secrets

ADJECTIVES = (
    "agile",
    "bold",
    "brave",
    "calm",
    "clever",
    "crisp",
    "eager",
    "fair",
    "gentle",
    "happy",
    "keen",
    "kind",
    "lucid",
    "merry",
    "nimble",
    "noble",
    "quiet",
    "quick",
    "sharp",
    "steady",
    "sunny",
    "swift",
    "tidy",
    "vivid",
    "warm",
    "wise",
    "witty",
    "zesty",
)
NOUNS = (
    "bridge",
    "cable",
    "comet",
    "delta",
    "falcon",
    "gateway",
    "harbor",
    "island",
    "lantern",
    "meadow",
    "nebula",
    "orbit",
    "packet",
    "prism",
    "quasar",
    "relay",
    "river",
    "router",
    "signal",
    "socket",
    "switch",
    "tunnel",
    "valley",
    "vector",
    "willow",
    "zenith",
)


def random_name() -> str:
    """A random name such as ``brave_falcon``; the caller checks that no container has it."""
    return f"{secrets.choice(ADJECTIVES)}_{secrets.choice(NOUNS)}"
