#!/usr/bin/env bash
# dev.sh — set up roost on a fresh Debian 12 machine and run it or its tests.
#
#   ./dev.sh demo    install everything, then run `roost demo` (mesh, reflector racks, cross-subnet)
#   ./dev.sh test    install everything, then lint, type-check and run the whole test suite
#   ./dev.sh setup   install only (Debian packages + .venv)
#
# Needs root (network namespaces, apt). Idempotent: a second run installs nothing new.
set -euo pipefail
cd "$(dirname "$(readlink -f "$0")")"

APT_PACKAGES=(
    python3-venv iproute2 iputils-ping tcpdump procps
    gobgpd bird2 frr exabgp                              # interop and conformance peers
    linux-image-amd64 qemu-system-x86 busybox-static     # IPIP tests in a VM (no ipip here)
)

setup() {
    local missing=()
    for p in "${APT_PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        echo "dev.sh: installing Debian packages: ${missing[*]}" >&2
        apt-get update -q
        # INITRD=No: the VM runner builds its own initramfs; skip Debian's.
        INITRD=No DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
            "${missing[@]}"
    fi
    # The Debian packages start daemons in the root namespace; roost's tests start their own.
    for svc in bird frr gobgpd exabgp; do
        systemctl disable --now "$svc" >/dev/null 2>&1 || true
    done
    if [ ! -x .venv/bin/python ]; then
        python3 -m venv .venv
    fi
    if ! .venv/bin/python -c "import roost, pytest_asyncio, scapy, virtme_ng" 2>/dev/null; then
        .venv/bin/pip install -q --upgrade pip
        .venv/bin/pip install -q -e ".[test]" virtme-ng==1.42
    fi
}

run_tests() {
    export PATH="$PWD/.venv/bin:$PATH"
    # In CI a skipped environment-dependent test is a failure (tests/conftest.py).
    if [ -n "${CI:-}" ]; then export ROOST_NO_SKIP=1; fi
    echo "== ruff"; ruff check .
    echo "== mypy"; mypy
    echo "== import contracts"; lint-imports
    echo "== pytest (host)"
    python -m pytest -m "not needs_kernel" "$@"
    echo "== pytest (needs_kernel, in a VM with Debian's kernel)"
    # This kernel has IPIP loaded (or built in): run them here; otherwise boot Debian's.
    if [ -d /sys/module/ipip ]; then
        python -m pytest -m needs_kernel "$@"
    else
        VM_ENV=ROOST_NO_SKIP VM_RWDIRS="$PWD" ./tests/vm/run-in-vm.sh "$PWD/.venv/bin/python" -m pytest -m needs_kernel -p no:cacheprovider "$@"
    fi
}

cmd=${1:-help}; shift || true
case "$cmd" in
    setup) setup ;;
    demo)  setup; exec .venv/bin/roost demo "$@" ;;
    test)  setup; run_tests "$@" ;;
    *) sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
