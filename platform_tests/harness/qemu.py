"""The qemu side of a guest: its command line, its disk images, and the accelerator choice.

Owned here: `Machine` (everything one qemu process is started with), `qemu_argv` (the pure
translation into qemu's command line), sparse disk images with an MBR, free-port picking, and
whether hardware KVM is worth trying on this host. `vm.py` is the only caller. Standard library
only.

Why these choices (docs/platform-tests.md has the measurements): under TCG the guest boots the
uncompressed vmlinux through its PVH entry with qboot as firmware, on a Nehalem CPU model (no
AVX for ZFS to benchmark at module load), with the translation cache capped so that a guest does
not take a GiB of host memory; the balloon hands freed guest pages back. Each pool gets one
virtio disk whose serial is the pool name. The network is qemu's user-mode stack, restricted (the
guest reaches nothing), with two host ports forwarded: the command agent and sshd.
"""

from __future__ import annotations

import os
import socket
import struct
from dataclasses import dataclass
from pathlib import Path

QEMU = "qemu-system-x86_64"
QBOOT = Path("/usr/share/qemu/qboot.rom")
AGENT_GUEST_PORT = 7100  # guest/agent.py listens here
TCG_CPU = "Nehalem"
TCG_CACHE_MIB = 256
_UNITS = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
_PARTITION_START = 2048  # sectors


@dataclass(frozen=True)
class Machine:
    name: str
    accel: str  # "kvm" or "tcg"
    kernel: Path
    initrd: Path
    cmdline: str
    memory_mib: int
    cpus: int
    disks: tuple[tuple[str, Path], ...]  # (serial, image)
    shares: tuple[str, ...]
    console: Path
    agent_port: int
    ssh_port: int


def _escape(value: object) -> str:
    """A value inside a qemu option list, where a comma must be doubled."""
    return str(value).replace(",", ",,")


def qemu_argv(m: Machine) -> list[str]:
    argv = [QEMU, "-name", m.name, "-nodefaults", "-no-user-config", "-display", "none"]
    argv += ["-no-reboot", "-m", str(m.memory_mib), "-smp", str(m.cpus)]
    argv += _accel_args(m.accel)
    argv += ["-kernel", str(m.kernel), "-initrd", str(m.initrd), "-append", m.cmdline]
    argv += ["-serial", f"file:{m.console}"]
    argv += _share_args("hostroot", "/", readonly=True)
    for index, path in enumerate(m.shares):
        argv += _share_args(f"share{index}", path, readonly=False)
    for index, (serial, image) in enumerate(m.disks):
        drive = f"file={_escape(image)},if=none,id=disk{index},format=raw"
        argv += ["-drive", f"{drive},cache=unsafe,aio=threads,discard=unmap"]
        argv += ["-device", f"virtio-blk-pci,drive=disk{index},serial={serial}"]
    forwards = (
        f"hostfwd=tcp:127.0.0.1:{m.agent_port}-:{AGENT_GUEST_PORT},"
        f"hostfwd=tcp:127.0.0.1:{m.ssh_port}-:22"
    )
    argv += ["-netdev", f"user,id=net0,restrict=on,{forwards}"]
    argv += ["-device", "virtio-net-pci,netdev=net0,romfile="]
    argv += ["-device", "virtio-rng-pci", "-device", "virtio-balloon-pci,free-page-reporting=on"]
    return argv


def _accel_args(accel: str) -> list[str]:
    if accel == "kvm":
        return ["-machine", "q35,accel=kvm", "-cpu", "host"]
    tcg = f"tcg,thread=multi,tb-size={TCG_CACHE_MIB}"
    firmware = ["-bios", str(QBOOT)] if QBOOT.exists() else []
    return ["-machine", "q35", "-accel", tcg, "-cpu", TCG_CPU, *firmware]


def _share_args(tag: str, path: str, *, readonly: bool) -> list[str]:
    options = f"local,id={tag},path={_escape(path)},security_model=none,multidevs=remap"
    if readonly:
        options += ",readonly=on"
    return ["-fsdev", options, "-device", f"virtio-9p-pci,fsdev={tag},mount_tag={tag}"]


def parse_size(text: str) -> int:
    """Bytes in "512M", "3G", "1.5G" or a plain number of bytes."""
    value = text.strip().upper().removesuffix("B").removesuffix("I")
    unit = _UNITS.get(value[-1:], 1)
    number = value[:-1] if value[-1:] in _UNITS else value
    try:
        size = int(float(number) * unit)
    except ValueError:
        raise ValueError(f"not a size: {text!r} (e.g. 512M, 3G)") from None
    if size < 64 * _UNITS["M"]:
        raise ValueError(f"disk size {text!r} is below 64M (ZFS keeps 128M of slop anyway)")
    return size


def make_disk(path: Path, size: int) -> None:
    """A fresh sparse raw image holding one MBR partition from sector 2048 to the end.
    The pool goes on the partition: labelling a whole disk makes libzfs wait for udev."""
    sectors = size // 512
    entry = struct.pack(
        "<B3sB3sII", 0, b"\xfe\xff\xff", 0xBF, b"\xfe\xff\xff", _PARTITION_START,
        sectors - _PARTITION_START,
    )  # fmt: skip
    with open(path, "wb") as f:
        f.truncate(size)
        f.seek(440)
        f.write(struct.pack("<I", 0x5A524456) + b"\0\0" + entry + b"\0" * 48 + b"\x55\xaa")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def kvm_worth_trying() -> bool:
    """Hardware KVM can boot a stock Debian kernel; PVM (kvm_pvm) cannot, nor can a /dev/kvm we
    may not open."""
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return False
    modules = Path("/sys/module")
    if (modules / "kvm_pvm").exists():
        return False
    return (modules / "kvm_intel").exists() or (modules / "kvm_amd").exists()
