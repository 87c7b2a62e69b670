"""Where nsnet keeps its state and runtime files.

By default state lives in /var/lib/nsnet and runtime files in /run/nsnet. ``NSNET_ROOT`` moves
both under one directory (``$NSNET_ROOT/lib`` and ``$NSNET_ROOT/run``), which is how tests keep
each run apart.
"""

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Paths:
    state_dir: Path
    run_dir: Path

    @classmethod
    def from_env(cls) -> "Paths":
        """Paths from ``NSNET_ROOT`` when set, else the system defaults."""
        root = os.environ.get("NSNET_ROOT")
        if root:
            return cls(state_dir=Path(root) / "lib", run_dir=Path(root) / "run")
        return cls(state_dir=Path("/var/lib/nsnet"), run_dir=Path("/run/nsnet"))

    @property
    def database(self) -> Path:
        """The SQLite file of the local store."""
        return self.state_dir / "nsnet.db"

    @property
    def socket(self) -> Path:
        """The unix socket the daemon serves its API on."""
        return self.run_dir / "nsnetd.sock"

    @property
    def pid_file(self) -> Path:
        """The daemon's pid file, held locked while it runs."""
        return self.run_dir / "nsnetd.pid"

    @property
    def daemon_log(self) -> Path:
        """Where the CLI's automatic start of nsnetd sends the daemon's output."""
        return self.state_dir / "nsnetd.log"

    @property
    def netns_dir(self) -> Path:
        """Bind mounts of sandbox namespaces (network and UTS); a shared mount."""
        return self.run_dir / "netns"

    @property
    def mntns_dir(self) -> Path:
        """Bind mounts of sandbox mount namespaces; a private mount."""
        return self.run_dir / "mntns"

    @property
    def overlay_dir(self) -> Path:
        """Bind mounts of the overlay networks' own namespaces; a shared mount."""
        return self.run_dir / "overlay"

    @property
    def containers_dir(self) -> Path:
        """Per-container files: logs, resolv.conf, hosts."""
        return self.state_dir / "containers"

    def container_dir(self, container_id: str) -> Path:
        """The directory of one container's files (its log, resolv.conf and hosts)."""
        return self.containers_dir / container_id

    def ensure(self) -> None:
        """Create the directories (the state directory is private to root)."""
        self.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.run_dir.mkdir(parents=True, exist_ok=True, mode=0o755)
        self.containers_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.netns_dir.mkdir(parents=True, exist_ok=True, mode=0o755)
        self.mntns_dir.mkdir(parents=True, exist_ok=True, mode=0o755)
