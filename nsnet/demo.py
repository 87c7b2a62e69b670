"""The demo: the source article's scenarios, each in a throwaway lab, printed as it goes.

``python -m nsnet.demo`` runs every scenario script under ``examples/`` in order (or the ones
named: ``python -m nsnet.demo s1 s8``). Each script builds its own lab (a host namespace
running nsnetd, and an outside namespace), asserts what the article observes, and removes
everything it made. The machine's own network is never touched.
"""

import os
import subprocess
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def scenarios(selected: list[str]) -> list[Path]:
    """The scenario scripts under examples/, in order; only those ``selected`` (``s1``...)."""
    scripts = sorted(EXAMPLES.glob("s[0-9]*_*.py"))
    if selected:
        scripts = [path for path in scripts if path.name.split("_")[0] in selected]
    return scripts


def _environment() -> dict[str, str]:
    """This process's environment, with this checkout's package importable by the scripts."""
    package_parent = str(Path(__file__).resolve().parents[1])
    path = os.pathsep.join(filter(None, [package_parent, os.environ.get("PYTHONPATH")]))
    return dict(os.environ, PYTHONPATH=path)


def main(argv: list[str] | None = None) -> int:
    """Run the scenarios (as root) in order; 0 when all pass, else 1, naming those that failed."""
    selected = argv if argv is not None else sys.argv[1:]
    if os.geteuid() != 0:
        print("nsnet demo: run it as root (it makes network namespaces)", file=sys.stderr)
        return 1
    scripts = scenarios(selected)
    if not scripts:
        print(f"nsnet demo: no scenario scripts found in {EXAMPLES}", file=sys.stderr)
        return 1

    failed = []
    for script in scripts:
        result = subprocess.run([sys.executable, str(script)], env=_environment())
        if result.returncode != 0:
            failed.append(script.name)
    print()
    if failed:
        print(f"demo: {len(failed)} of {len(scripts)} scenarios failed: {', '.join(failed)}")
        return 1
    print(f"demo: all {len(scripts)} scenarios ran as the article describes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
