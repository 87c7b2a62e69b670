#!/usr/bin/env bash
# Sets up the machine (scripts/setup.sh), then runs the demo: the source article's scenarios in
# a throwaway host namespace, printing what the article shows and cleaning up after itself.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash scripts/setup.sh
exec .venv/bin/python -m nsnet.demo "$@"
