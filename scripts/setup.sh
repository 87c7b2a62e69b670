#!/usr/bin/env bash
# Sets up a Debian 12 machine, as root, for nsnet and its tests: the Debian packages they use,
# then a virtualenv .venv in the repository with nsnet (editable) and the test tools.
# Safe to run again: work already done is skipped.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
REPO=$(pwd)

say() { printf 'setup: %s\n' "$*"; }
die() { printf 'setup: error: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "run as root: nsnet and its tests create network namespaces"

PACKAGES=(
    nftables iproute2 iputils-ping busybox-static iperf3 tcpdump conntrack iptables
    bind9-dnsutils util-linux docker.io etcd-server containernetworking-plugins
)

PYTHON=${PYTHON:-python3}

# Debian's own python3 needs python3-venv for `-m venv` (a pyenv or other build has it built in).
python_path=$(command -v "$PYTHON" || true)
if [ -z "$python_path" ]; then
    PACKAGES+=(python3 python3-venv)
elif [[ "$(readlink -f "$python_path")" == /usr/bin/* ]]; then
    PACKAGES+=(python3-venv)
fi

is_installed() {
    [ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" = "install ok installed" ]
}

missing=()
for package in "${PACKAGES[@]}"; do
    is_installed "$package" || missing+=("$package")
done

if [ ${#missing[@]} -eq 0 ]; then
    say "Debian packages: all ${#PACKAGES[@]} installed"
else
    say "Debian packages: installing ${missing[*]}"

    # Hold services back: on a machine with an init system, docker.io and etcd-server would
    # otherwise start in the machine's own network namespace. Ours is removed after; one that
    # was there before is left alone.
    created_policy=no
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
        chmod 755 /usr/sbin/policy-rc.d
        created_policy=yes
        trap 'rm -f /usr/sbin/policy-rc.d' EXIT
    fi

    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" > /dev/null

    if [ "$created_policy" = yes ]; then
        rm -f /usr/sbin/policy-rc.d
        trap - EXIT
    fi
    say "Debian packages: done"
fi

command -v "$PYTHON" > /dev/null || die "$PYTHON not found (set PYTHON=...)"
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
    || die "$PYTHON is $("$PYTHON" --version 2>&1); nsnet needs Python 3.11 or newer (set PYTHON=...)"

VENV="$REPO/.venv"
if [ -x "$VENV/bin/python" ] \
    && "$VENV/bin/python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    say "virtualenv: $VENV exists"
else
    say "virtualenv: creating $VENV with $("$PYTHON" --version 2>&1)"
    rm -rf "$VENV"
    "$PYTHON" -m venv "$VENV"
fi

# The install depends only on pyproject.toml and the interpreter (the install is editable), so
# a stamp of both tells whether it is already done.
stamp_file="$VENV/.nsnet-install-stamp"
stamp="$(sha256sum pyproject.toml | cut -d' ' -f1) $("$VENV/bin/python" --version 2>&1) compat"
if [ -f "$stamp_file" ] && [ "$(cat "$stamp_file")" = "$stamp" ] \
    && [ -x "$VENV/bin/nsnet" ] && [ -x "$VENV/bin/pytest" ] && [ -x "$VENV/bin/ruff" ]; then
    say "python packages: up to date"
else
    say "python packages: pip install -e '.[test]'"
    rm -f "$stamp_file"
    # Some machines' pip configuration names local package folders that do not exist; pip warns
    # once per package about each, which says nothing about this install.
    # compat mode puts the checkout on sys.path through a .pth line; the default editable
    # finder costs every `nsnet` command tens of milliseconds at start-up.
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check \
        --config-settings editable_mode=compat -e "$REPO[test]" 2>&1 \
        | { grep -v "^WARNING: Location '.*' is ignored" || true; }
    printf '%s\n' "$stamp" > "$stamp_file"
    say "python packages: done"
fi

say "ready: $VENV/bin/nsnet, $VENV/bin/nsnetd"
