"""Build the guest's initramfs: a newc cpio archive written without root, cpio or mknod.

Owned here: what goes into the initramfs (busybox, the stage-1 init, the guest scripts, the
modules that reach the host root over 9p, /dev/console and /dev/null), and the digest that tells
whether a built initramfs still matches the guest scripts of this checkout (`setup.sh` rebuilds
when it changed; `vm.ensure_setup` refuses to boot a stale one).

Usage: python3 mkinitramfs.py --kernel-tree DIR --release KVER --out FILE [--busybox PATH]
Standard library only, plus `modprobe` (kmod) to resolve module dependencies.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import stat
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

HERE = Path(__file__).resolve().parent
GUEST_DIR = HERE / "guest"
# Files copied to /zr in the initramfs and from there to /run/zr in the guest.
GUEST_FILES = (
    GUEST_DIR / "stage2.sh",
    GUEST_DIR / "inittab",
    GUEST_DIR / "agent.py",
    HERE / "wire.py",
)
STAGE1 = GUEST_DIR / "init"
ROOT_MODULES = ("virtio_pci", "9pnet_virtio", "9p", "overlay")
_TRAILER = "TRAILER!!!"


def guest_digest() -> str:
    """sha256 over the guest scripts (names and contents) of this checkout."""
    digest = hashlib.sha256()
    for path in (STAGE1, *GUEST_FILES):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def module_paths(tree: Path, release: str) -> list[Path]:
    """The .ko files that ROOT_MODULES need, in load order (built-in ones are skipped)."""
    ordered: list[Path] = []
    for module in ROOT_MODULES:
        out = subprocess.run(
            ["modprobe", "-d", str(tree), "-S", release, "--show-depends", module],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        for line in out.splitlines():
            words = line.split()
            if words[:1] == ["insmod"] and Path(words[1]) not in ordered:
                ordered.append(Path(words[1]))
    return ordered


class Cpio:
    """A newc archive being written."""

    def __init__(self) -> None:
        self.data = bytearray()
        self.inode = 1

    def add(self, name: str, mode: int, body: bytes = b"", rdev: tuple[int, int] = (0, 0)) -> None:
        encoded = name.encode() + b"\0"
        fields = (self.inode, mode, 0, 0, 1, 0, len(body), 0, 0, *rdev, len(encoded), 0)
        self.data += b"070701" + b"".join(b"%08x" % f for f in fields) + encoded
        self._pad()
        self.data += body
        self._pad()
        self.inode += 1

    def directory(self, name: str) -> None:
        self.add(name, stat.S_IFDIR | 0o755)

    def file(self, name: str, body: bytes, executable: bool = False) -> None:
        self.add(name, stat.S_IFREG | (0o755 if executable else 0o644), body)

    def finish(self) -> bytes:
        self.add(_TRAILER, 0)
        return bytes(self.data)

    def _pad(self) -> None:
        self.data += b"\0" * (-len(self.data) % 4)


def build(modules: Iterable[Path], busybox: Path) -> bytes:
    archive = Cpio()
    for directory in ("bin", "dev", "modules", "zr", "proc", "sys", "lower", "upper", "newroot"):
        archive.directory(directory)
    archive.add("dev/console", stat.S_IFCHR | 0o600, rdev=(5, 1))
    archive.add("dev/null", stat.S_IFCHR | 0o666, rdev=(1, 3))
    archive.file("bin/busybox", busybox.read_bytes(), executable=True)
    archive.file("init", STAGE1.read_bytes(), executable=True)
    for path in GUEST_FILES:
        archive.file(f"zr/{path.name}", path.read_bytes())
    names = []
    for path in modules:
        archive.file(f"modules/{path.name}", path.read_bytes())
        names.append(path.name)
    archive.file("modules/order", "".join(f"{n}\n" for n in names).encode())
    return archive.finish()


def inputs_digest(modules: list[Path], busybox: Path) -> str:
    digest = hashlib.sha256(guest_digest().encode())
    for path in [*modules, busybox]:
        info = path.stat()
        digest.update(f"{path}:{info.st_size}:{info.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def stamp_path(out: Path) -> Path:
    return out.with_name(out.name + ".json")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kernel-tree", type=Path, required=True)
    parser.add_argument("--release", required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--busybox", type=Path, default=Path("/bin/busybox"))
    args = parser.parse_args(argv)
    modules = module_paths(args.kernel_tree, args.release)
    wanted = {"guest": guest_digest(), "inputs": inputs_digest(modules, args.busybox)}
    stamp = stamp_path(args.out)
    if args.out.exists() and stamp.exists() and json.loads(stamp.read_text()) == wanted:
        return 0
    tmp = args.out.with_name(args.out.name + ".tmp")
    tmp.write_bytes(build(modules, args.busybox))
    os.replace(tmp, args.out)
    stamp.write_text(json.dumps(wanted) + "\n")
    size = args.out.stat().st_size / 2**20
    print(f"initramfs: {args.out} ({size:.1f} MiB, {len(modules)} modules)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
