#!/bin/sh
# Stage 2 of the guest boot: busybox init's sysinit, running on the host's userland (the host
# root over 9p with a tmpfs overlay).
#
# Owns: starting the command agent (first: Python takes seconds to start under TCG, so it starts
# while the rest is set up, and is restarted if it ever dies), the runtime mounts (/dev/pts,
# /dev/shm, /run/lock, /var/tmp), the kernel modules (the cache's kernel tree bind-mounted as
# /lib/modules, the dkms-built zfs), hostname and hostid, the user-mode network,
# /dev/disk/by-id links, one pool per disk, and sshd.
# Kernel command line (set by vm.py): zr.name= zr.hostid= zr.modules= zr.pools=a,b zr.arcmax=
# zr.ssh=<dir with the host key and the authorized key>.
# Problems the host must report are printed as "zr-guest: FATAL ..." on the console; when all
# is done and the agent listens, "zr-guest: ready" is.
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
B=/bin/busybox
exec >>/run/zr/stage2.log 2>&1
set -x

fatal() { echo "zr-guest: FATAL $*" >/dev/console; echo "FATAL $*"; }
mark() { read -r up _ </proc/uptime; echo "zr-mark $up $*"; }
mark stage2

(while :; do
    /usr/bin/python3 -I /run/zr/agent.py </dev/null >/dev/console 2>&1
    echo "zr-guest: the agent exited with $?; restarting it" >/dev/console
    sleep 1
done) &

# Parse zr.* with shell builtins: every fork costs tens of milliseconds under TCG.
NAME=guest HOSTID=5a520001 MODULES= POOLS= ARCMAX=268435456 SSHDIR=
read -r cmdline </proc/cmdline
for word in $cmdline; do
    case $word in
    zr.name=*) NAME=${word#*=} ;;
    zr.hostid=*) HOSTID=${word#*=} ;;
    zr.modules=*) MODULES=${word#*=} ;;
    zr.pools=*) POOLS=${word#*=} ;;
    zr.arcmax=*) ARCMAX=${word#*=} ;;
    zr.ssh=*) SSHDIR=${word#*=} ;;
    esac
done

mkdir -p /dev/pts /dev/shm /run/lock /var/tmp
mount -t devpts -o gid=5,mode=620,ptmxmode=666 devpts /dev/pts
mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs /dev/shm
mount -t tmpfs -o mode=1777 tmpfs /var/tmp
chmod 1777 /run/lock
[ -e /dev/fd ] || ln -s /proc/self/fd /dev/fd
ln -sf /proc/self/mounts /etc/mtab

# Modules: the kernel tree in the cache (with zfs.ko/spl.ko under updates/dkms) becomes
# /lib/modules/<release>. modprobe zfs is slow under TCG (its checksum self-benchmarks).
release=$(uname -r)
if [ -d "$MODULES" ]; then
    mkdir -p "/lib/modules/$release"
    mount --bind "$MODULES" "/lib/modules/$release"
else
    fatal "kernel modules not found at '$MODULES'"
fi
mark modules
modprobe -a virtio_net virtio_blk virtio_rng virtio_balloon || fatal "modprobe virtio drivers"
mark zfs
modprobe zfs zfs_arc_max="$ARCMAX" || fatal "modprobe zfs"

mark network
echo "$NAME" >/etc/hostname
$B hostname "$NAME"
zgenhostid -f "$HOSTID"

# eth0: qemu's user-mode network; the host reaches the agent and sshd through hostfwd ports.
$B ip link set lo up
$B ip link set eth0 up
$B ip addr add 10.0.2.15/24 dev eth0
printf '127.0.0.1 localhost\n::1 localhost ip6-localhost ip6-loopback\n127.0.1.1 %s\n' \
    "$NAME" >/etc/hosts

# No udev: name the disks by their serial (the pool name) ourselves.
mkdir -p /dev/disk/by-id
for block in /sys/block/vd*; do
    [ -e "$block/serial" ] || continue
    read -r serial <"$block/serial"
    [ -n "$serial" ] && ln -sf "/dev/${block##*/}" "/dev/disk/by-id/virtio-$serial"
done

# root's dotfiles are the host's (pyenv, prompts...): seconds per ssh session under TCG.
printf 'export PATH=%s\n' "$PATH" >/root/.bashrc
cp /root/.bashrc /root/.profile

start_sshd() {
    [ -n "$SSHDIR" ] || return 0
    [ -x /usr/sbin/sshd ] || { fatal "no /usr/sbin/sshd (openssh-server)"; return 1; }
    mkdir -p /run/sshd /run/zr/ssh
    cp "$SSHDIR/ssh_host_ed25519_key" "$SSHDIR/id_ed25519.pub" /run/zr/ssh/
    chmod 600 /run/zr/ssh/ssh_host_ed25519_key
    # sshd refuses a locked account ("!" in /etc/shadow) without PAM; this is the guest's copy.
    sed -i 's/^root:![^:]*:/root:*:/' /etc/shadow
    /usr/sbin/sshd -f /dev/null -h /run/zr/ssh/ssh_host_ed25519_key \
        -o AuthorizedKeysFile=/run/zr/ssh/id_ed25519.pub -o StrictModes=no \
        -o PermitRootLogin=prohibit-password -o PasswordAuthentication=no \
        -o KbdInteractiveAuthentication=no -o UsePAM=no -o UseDNS=no \
        -o MaxStartups=100 -o MaxSessions=100 -o PidFile=/run/sshd.pid \
        -o AcceptEnv="LANG LC_*" -o Subsystem="sftp internal-sftp" \
        || fatal "sshd did not start"
}

# A pool goes on partition 1 of its disk (the host writes the MBR): labelling a whole disk
# waits for udev, which the guest does not have.
make_pool() {
    disk=$(readlink -f "/dev/disk/by-id/virtio-$1")
    [ -b "$disk" ] || { fatal "no disk with serial $1"; return 1; }
    [ -b "${disk}1" ] && disk=${disk}1
    zpool create -f -o ashift=12 -o cachefile=none -O compression=off -O mountpoint="/$1" \
        "$1" "$disk" || fatal "zpool create $1"
}

mark pools
start_sshd &
jobs=$!
IFS=,
for pool in $POOLS; do
    make_pool "$pool" &
    jobs="$jobs $!"
done
unset IFS
wait $jobs
mark agent
tries=0
until [ -e /run/zr/agent.listening ]; do
    tries=$((tries + 1))
    [ $tries -le 1200 ] || { fatal "the agent did not start (see the console)"; break; }
    sleep 0.05
done

read -r uptime _ </proc/uptime
echo "zr-guest: ready at uptime ${uptime}s" >/dev/console

# After ready, in the background: copy the hot binaries and their libraries up into the
# overlay's tmpfs (exec over 9p costs about a quarter more per command under TCG).
(
    hot="/usr/sbin/zfs /usr/sbin/zpool /bin/dash /bin/bash /usr/bin/python3"
    libs=$(for bin in $hot; do ldd "$(readlink -f "$bin")"; done |
        awk '/=>/ {print $3} /ld-linux/ {print $1}' | sort -u)
    for file in $hot $libs; do touch -c "$(readlink -f "$file")"; done
) &
