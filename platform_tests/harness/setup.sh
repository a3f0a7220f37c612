#!/usr/bin/env bash
# Prepare everything the platform tests need to boot a qemu guest running real OpenZFS.
#
# Owns the harness cache ($ZFS_RECONCILER_VM_CACHE, default /var/cache/zfs-reconciler-vm):
#   kernel/<release>/   the Debian guest kernel, unpacked (never installed on this host), with
#                       the dkms-built zfs.ko/spl.ko in lib/modules/<release>/updates/dkms, and
#                       an uncompressed vmlinux for qemu's PVH direct boot
#   initramfs.cpio      busybox, guest/init, the guest scripts, the 9p/overlay modules
#   ssh/                the guest's host key and the client key the tests use
#   kver                the guest kernel release the rest belongs to
# and, through apt, the Debian packages: qemu-system-x86, busybox-static, kmod, python3,
# openssh-server/-client, and zfs-dkms + zfsutils-linux 2.3 from bookworm-backports (contrib),
# with linux-headers-<release> so that dkms builds the zfs modules for the guest kernel, and
# `sanoid` (with syncoid: platform_tests/test_foreign_leftovers.py runs the real syncoid in the
# guest, which runs this host's userland; its systemd timer is kept off).
# No kernel module is ever loaded on this host, and package scripts may not start daemons here.
#
# Idempotent: finished steps are skipped, and a run with nothing to do calls no apt at all.
# Environment: ZFS_RECONCILER_VM_CACHE, ZFS_RECONCILER_VM_KVER (guest kernel release; default:
# the cached one, else the one linux-image-amd64 depends on), ZFS_RECONCILER_VM_NO_APT=1 (fail
# instead of installing). Runs as root; otherwise apt, the apt sources and dkms go through sudo.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CACHE=${ZFS_RECONCILER_VM_CACHE:-/var/cache/zfs-reconciler-vm}
SOURCES=/etc/apt/sources.list.d/zfs-reconciler-vm.sources
export DEBIAN_FRONTEND=noninteractive PATH="$PATH:/usr/sbin:/sbin"
STARTED=$(date +%s.%N)

SAY_AS=vm-setup
. "$HERE/lib.sh"

[ "$(dpkg --print-architecture)" = amd64 ] || die "only amd64 hosts are supported"
. /etc/os-release
case ${VERSION_CODENAME:-} in
bookworm) ZFS_SUITE=bookworm-backports ;;
*) ZFS_SUITE=${VERSION_CODENAME:?unknown Debian release} ;;
esac

if ! mkdir -p "$CACHE" 2>/dev/null || [ ! -w "$CACHE" ]; then
    as_root install -d -o "$(id -u)" -g "$(id -g)" "$CACHE"
fi
mkdir -p "$CACHE/debs" "$CACHE/kernel" "$CACHE/ssh"

# --- packages -------------------------------------------------------------------------------
PACKAGES=(qemu-system-x86 qemu-system-data busybox-static kmod python3 openssh-server
    openssh-client dkms sanoid)
ZFS_PACKAGES=(zfs-dkms zfsutils-linux)

missing_packages() { # the arguments that are not installed (zfs older than 2.3 counts)
    local installed p
    # dpkg-query fails when it does not know a package: that only means "missing" here.
    installed=$({ dpkg-query -W -f='${Package} ${db:Status-Status} ${Version}\n' "$@" \
        2>/dev/null || true; } | awk '$2 == "installed" { print $1, $3 }' \
        | awk '$1 !~ /^zfs/ || $2 ~ /^2\.([3-9]|[1-9][0-9])/ { print $1 }')
    for p in "$@"; do grep -qxF "$p" <<<"$installed" || echo "$p"; done
}

APT_FRESH=0
apt_update() {
    [ "$APT_FRESH" = 1 ] && return 0
    say "apt-get update"
    as_root apt-get update -qq 2>&1 | grep -v 'configured multiple times' >&2 || true
    APT_FRESH=1
}

ensure_zfs_source() { # zfs-dkms 2.3 must be installable (contrib, and backports on bookworm)
    apt-cache policy zfs-dkms 2>/dev/null | grep -F " $ZFS_SUITE/contrib" >/dev/null && return 0
    say "adding $SOURCES ($ZFS_SUITE contrib)"
    {
        printf 'Types: deb\nURIs: http://deb.debian.org/debian\nSuites: %s\n' "$VERSION_CODENAME"
        printf 'Components: contrib\nSigned-By: %s\n' /usr/share/keyrings/debian-archive-keyring.gpg
        if [ "$ZFS_SUITE" != "$VERSION_CODENAME" ]; then
            printf '\nTypes: deb\nURIs: http://deb.debian.org/debian\nSuites: %s\n' "$ZFS_SUITE"
            printf 'Components: main contrib\nSigned-By: %s\n' \
                /usr/share/keyrings/debian-archive-keyring.gpg
        fi
    } | as_root tee "$SOURCES" >/dev/null
    APT_FRESH=0
    apt_update
    apt-cache policy zfs-dkms | grep -F " $ZFS_SUITE/contrib" >/dev/null || die "no zfs-dkms in $ZFS_SUITE"
}

apt_install() { # apt-get install ARGS..., the full log in $CACHE/apt.log
    if ! as_root apt-get install -y -q --no-install-recommends "$@" >>"$CACHE/apt.log" 2>&1; then
        tail -n 30 "$CACHE/apt.log" >&2
        die "apt-get install $* failed (whole log: $CACHE/apt.log)"
    fi
}

install_packages() { # the packages in "$@"; daemons are kept from starting on this host
    local t policy_added=0
    t=$(date +%s.%N)
    say "installing $* (the zfs-dkms build takes minutes)"
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' | as_root tee /usr/sbin/policy-rc.d >/dev/null
        as_root chmod 755 /usr/sbin/policy-rc.d
        policy_added=1
    fi
    # zfs first, with the guest kernel's headers, so that the zfs-dkms postinst builds for it.
    local zfs=() rest=() p
    for p in "$@"; do
        case $p in zfs-* | zfsutils-* | linux-headers-*) zfs+=("$p") ;; *) rest+=("$p") ;; esac
    done
    local status=0
    ( [ ${#zfs[@]} = 0 ] || apt_install -t "$ZFS_SUITE" "${zfs[@]}"
      [ ${#rest[@]} = 0 ] || apt_install "${rest[@]}" ) || status=$?
    [ "$policy_added" = 0 ] || as_root rm -f /usr/sbin/policy-rc.d
    [ "$status" = 0 ] || exit "$status"
    say "packages installed in $(since "$t")"
}

latest_kernel() { # the release linux-image-amd64 depends on, per the current apt lists
    { apt-cache depends linux-image-amd64 2>/dev/null || true; } \
        | awk '/Depends: linux-image-[0-9]/ { sub("linux-image-", "", $2); print $2; exit }'
}
need_apt() {
    [ "${ZFS_RECONCILER_VM_NO_APT:-0}" != 1 ] || die "apt needed ($1) but NO_APT is set"
    apt_update
    ensure_zfs_source
}

# The guest kernel: as asked, else the cached one, else the newest in the apt lists (refreshed
# only when those lists do not name one whose headers are installed).
KVER=${ZFS_RECONCILER_VM_KVER:-}
if [ -z "$KVER" ] && [ -s "$CACHE/kver" ]; then KVER=$(cat "$CACHE/kver"); fi
if [ -z "$KVER" ]; then
    KVER=$(latest_kernel)
    if [ -z "$KVER" ] || [ -n "$(missing_packages "linux-headers-$KVER")" ]; then
        need_apt "the newest guest kernel"
        KVER=$(latest_kernel)
        [ -n "$KVER" ] || die "cannot tell which kernel linux-image-amd64 is"
    fi
fi
mapfile -t MISSING < <(missing_packages "${PACKAGES[@]}" "${ZFS_PACKAGES[@]}" \
    "linux-headers-$KVER")
[ ${#MISSING[@]} = 0 ] || need_apt "missing: ${MISSING[*]}"
[ ${#MISSING[@]} = 0 ] || install_packages "${MISSING[@]}"
# sanoid's package enables sanoid.timer; a timer only fires under systemd, which neither the
# guest (busybox init) nor a container runs, but keep it off on this host all the same.
if [ ${#MISSING[@]} != 0 ] && command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
    as_root systemctl disable --now sanoid.timer >/dev/null 2>&1 || true
fi
ZFS_PKGVER=$(dpkg-query -W -f='${Version}' zfs-dkms)
ZFS_VER=${ZFS_PKGVER%%-*}
say "guest kernel $KVER, zfs $ZFS_PKGVER, cache $CACHE"

# --- zfs modules for the guest kernel (built by dkms here, never loaded here) ----------------
BUILT=/var/lib/dkms/zfs/$ZFS_VER/$KVER/$(uname -m)/module
if ! ls "$BUILT"/zfs.ko* >/dev/null 2>&1; then
    t=$(date +%s.%N)
    say "dkms build zfs $ZFS_VER for $KVER (minutes)"
    as_root dkms build -m zfs -v "$ZFS_VER" -k "$KVER" >&2 \
        || die "dkms build failed; see /var/lib/dkms/zfs/$ZFS_VER/build/make.log"
    say "dkms build done in $(since "$t")"
fi

download_kernel() { # into $CACHE/debs, as this user (apt-get download needs no root)
    (cd "$CACHE/debs" && apt-get download -q "linux-image-$KVER" 2>&1) \
        | grep -v -e unsandboxed -e '^Get:' -e '^Fetched' >&2 || true
    ls "$CACHE"/debs/linux-image-"$KVER"_*.deb >/dev/null 2>&1
}

# --- the guest kernel tree: unpacked .deb + zfs modules + vmlinux ------------------------------
TREE=$CACHE/kernel/$KVER
WANT="$KVER $ZFS_PKGVER"
if [ "$(cat "$TREE/.ready" 2>/dev/null)" != "$WANT" ]; then
    t=$(date +%s.%N)
    deb=$(ls "$CACHE"/debs/linux-image-"$KVER"_*.deb 2>/dev/null | head -n 1 || true)
    if [ -z "$deb" ]; then
        say "downloading linux-image-$KVER"
        download_kernel || { need_apt "linux-image-$KVER not downloadable"; download_kernel; } \
            || die "could not download linux-image-$KVER"
        deb=$(ls "$CACHE"/debs/linux-image-"$KVER"_*.deb)
    fi
    say "unpacking $(basename "$deb")"
    rm -rf "$TREE.tmp" && mkdir -p "$TREE.tmp"
    dpkg-deb -x "$deb" "$TREE.tmp"
    # qemu boots the ELF vmlinux through its PVH entry: no decompression, which is slow on TCG.
    python3 - "$TREE.tmp/boot/vmlinuz-$KVER" "$TREE.tmp/vmlinux" <<'PY'
import lzma, sys
image = open(sys.argv[1], "rb").read()
start = image.find(b"\xfd7zXZ\x00")
elf = lzma.LZMADecompressor().decompress(image[start:]) if start >= 0 else b""
if elf[:4] == b"\x7fELF":
    open(sys.argv[2], "wb").write(elf)
else:
    print("vm-setup: no xz-compressed vmlinux inside; the bzImage will boot", file=sys.stderr)
PY
    mkdir -p "$TREE.tmp/lib/modules/$KVER/updates/dkms"
    cp "$BUILT"/*.ko* "$TREE.tmp/lib/modules/$KVER/updates/dkms/"
    depmod -b "$TREE.tmp" "$KVER"
    echo "$WANT" >"$TREE.tmp/.ready"
    rm -rf "$TREE" && mv "$TREE.tmp" "$TREE"
    say "guest kernel tree ready in $(since "$t")"
fi

# --- ssh keys: the guest sshd's host key, and the key clients use --------------------------
[ -f "$CACHE/ssh/id_ed25519" ] \
    || ssh-keygen -q -t ed25519 -N '' -C zfs-reconciler-tests -f "$CACHE/ssh/id_ed25519"
[ -f "$CACHE/ssh/ssh_host_ed25519_key" ] \
    || ssh-keygen -q -t ed25519 -N '' -C zfs-reconciler-guest -f "$CACHE/ssh/ssh_host_ed25519_key"
chmod 700 "$CACHE/ssh"

# --- initramfs (rebuilt only when its inputs changed) ----------------------------------------
python3 "$HERE/mkinitramfs.py" --kernel-tree "$TREE" --release "$KVER" \
    --out "$CACHE/initramfs.cpio"

[ "$(cat "$CACHE/kver" 2>/dev/null)" = "$KVER" ] || echo "$KVER" >"$CACHE/kver"
say "ready in $(since "$STARTED") (kernel $KVER, zfs $ZFS_PKGVER)"
