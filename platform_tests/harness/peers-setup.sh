#!/usr/bin/env bash
# Install the peers that `make bench-peers` (platform_tests/bench_peers.py) runs beside
# zfs-reconciler in the guest. The guest sees the host's root read-only, so what is installed
# here runs there at the same path.
#
#   sanoid + syncoid   Debian package `sanoid` (apt, on the host; it Depends on pv, lzop and
#                      mbuffer, so those come with it: syncoid uses pv only for a progress bar,
#                      and lzop/mbuffer only between hosts, never for a local replication).
#                      `make vm-setup` (setup.sh) installs it too, for the platform tests; the
#                      step below only runs when peers-setup is called on its own
#   bzfs, zfs-autobackup  PyPI, pinned below, in their own venv $CACHE/peers-venv (not the
#                      project's .venv: the peers must not change the project's environment)
#
# Idempotent: a run with nothing to do calls neither apt nor pip. No daemon is started here:
# while apt installs, a temporary /usr/sbin/policy-rc.d (only if none exists) stops package
# scripts from starting services (the sanoid package ships a systemd timer), as in setup.sh.
# Environment: ZFS_RECONCILER_VM_CACHE (default /var/cache/zfs-reconciler-vm),
# ZFS_RECONCILER_VM_NO_APT=1 (fail instead of installing). Runs as root; otherwise apt goes
# through sudo.
set -euo pipefail

CACHE=${ZFS_RECONCILER_VM_CACHE:-/var/cache/zfs-reconciler-vm}
VENV=$CACHE/peers-venv
BZFS_VERSION=1.25.0
ZAB_VERSION=3.3
export DEBIAN_FRONTEND=noninteractive PATH="$PATH:/usr/sbin:/sbin"
STARTED=$(date +%s.%N)

SAY_AS=peers-setup
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"

if ! mkdir -p "$CACHE" 2>/dev/null || [ ! -w "$CACHE" ]; then
    as_root install -d -o "$(id -u)" -g "$(id -g)" "$CACHE"
fi

# --- sanoid (with syncoid), from Debian ------------------------------------------------------
if ! dpkg-query -W -f='${db:Status-Status}\n' sanoid 2>/dev/null | grep -qx installed; then
    [ "${ZFS_RECONCILER_VM_NO_APT:-0}" != 1 ] || die "sanoid is missing and NO_APT is set"
    t=$(date +%s.%N)
    say "apt-get update"
    as_root apt-get update -qq 2>&1 | grep -v 'configured multiple times' >&2 || true
    policy_added=0
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' | as_root tee /usr/sbin/policy-rc.d >/dev/null
        as_root chmod 755 /usr/sbin/policy-rc.d
        policy_added=1
    fi
    say "installing sanoid (with its dependencies pv, lzop, mbuffer and two perl modules)"
    status=0
    as_root apt-get install -y -q --no-install-recommends sanoid >>"$CACHE/apt.log" 2>&1 \
        || status=$?
    [ "$policy_added" = 0 ] || as_root rm -f /usr/sbin/policy-rc.d
    if [ "$status" != 0 ]; then
        tail -n 30 "$CACHE/apt.log" >&2
        die "apt-get install sanoid failed (whole log: $CACHE/apt.log)"
    fi
    say "sanoid installed in $(since "$t")"
fi
# The package enables sanoid.timer; a timer would only fire under systemd, which neither this
# host's containers nor the guest (busybox init) run, but keep it off all the same.
if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
    as_root systemctl disable --now sanoid.timer >/dev/null 2>&1 || true
fi

# --- bzfs and zfs-autobackup, pinned, in their own venv ----------------------------------------
have() { # the installed version of distribution $1 in the peers venv, or nothing
    "$VENV/bin/python" - "$1" <<'PY' 2>/dev/null || true
import importlib.metadata, sys
print(importlib.metadata.version(sys.argv[1]))
PY
}
if [ "$(have bzfs)" != "$BZFS_VERSION" ] || [ "$(have zfs-autobackup)" != "$ZAB_VERSION" ]; then
    t=$(date +%s.%N)
    [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
    say "pip install bzfs==$BZFS_VERSION zfs-autobackup==$ZAB_VERSION into $VENV"
    "$VENV/bin/pip" install --quiet "bzfs==$BZFS_VERSION" "zfs-autobackup==$ZAB_VERSION" >&2 \
        || die "pip install failed"
    say "peers venv ready in $(since "$t")"
fi

say "ready in $(since "$STARTED"): sanoid $(dpkg-query -W -f='${Version}' sanoid)," \
    "bzfs $(have bzfs), zfs-autobackup $(have zfs-autobackup) ($VENV)"
