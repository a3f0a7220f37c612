"""Boot a small qemu guest running real OpenZFS and drive it from the host (platform tests).

Owned here: the harness's public API — `start_guest`, `Guest` (`run`, `sh`, `exec_argv`,
`ssh_destination`, `stop`), `Completed`, `SshDestination`, `HarnessError`, `ensure_setup`,
`attach` — and a guest's life: its run directory under the cache, booting (KVM when it works,
TCG always), waiting for readiness, reporting failures with the serial console, stopping.
The qemu command line is `qemu.py`, the protocol `wire.py`, the streaming client `exec.py`, the
in-guest side `guest/`; `setup.sh` fills the cache (`make vm-setup`). Standard library only.

Environment:
    ZFS_RECONCILER_VM_CACHE  the cache `setup.sh` fills        [/var/cache/zfs-reconciler-vm]
    ZFS_RECONCILER_VM_ACCEL  auto | tcg | kvm | try-kvm         [auto: try-kvm where hardware KVM
                             is loaded, else tcg; try-kvm falls back to tcg when a KVM boot fails]
    ZFS_RECONCILER_VM_KEEP=1 guests outlive the process that started them (for debugging; the
                             pytest fixture then leaves its guest running: `attach(name)`)
A guest is otherwise killed with the thread that started it, and at interpreter exit.
"""

from __future__ import annotations

import atexit
import ctypes
import itertools
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from . import qemu, wire
from .mkinitramfs import guest_digest, stamp_path

CACHE_DIR = Path(os.environ.get("ZFS_RECONCILER_VM_CACHE", "/var/cache/zfs-reconciler-vm"))
EXEC_PY = Path(__file__).resolve().parent / "exec.py"
SETUP_HINT = "run `make vm-setup` (platform_tests/harness/setup.sh)"
READY_LINE = b"zr-guest: ready"
FATAL_MARK = b"zr-guest: FATAL"
KVM_PROBE_SECONDS = 60.0
SSH_OPTIONS = (
    "StrictHostKeyChecking=no",
    "UserKnownHostsFile=/dev/null",
    "LogLevel=ERROR",
    "IdentitiesOnly=yes",
    "BatchMode=yes",
)
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")
_POOL = re.compile(r"[A-Za-z][A-Za-z0-9_.:-]{0,19}")  # a virtio serial holds 20 bytes
_PR_SET_PDEATHSIG = 1


class HarnessError(Exception):
    """The guest is not set up, cannot start, or stopped answering."""


@dataclass(frozen=True)
class Completed:
    """A finished guest command. returncode < 0: killed by that signal (as in subprocess)."""

    argv: tuple[str, ...]
    returncode: int
    stdout: bytes
    stderr: bytes

    def check(self) -> Completed:
        if self.returncode != 0:
            raise HarnessError(
                f"{list(self.argv)!r} exited with {self.returncode}: "
                f"{self.stderr.decode(errors='replace').strip()}"
            )
        return self


@dataclass(frozen=True)
class SshDestination:
    """How a real OpenSSH client on the host reaches the guest's sshd."""

    host: str
    port: int
    user: str
    identity_file: str
    options: tuple[str, ...]

    def argv(self, *command: str) -> list[str]:
        """An `ssh` argv running command (one remote shell line) in the guest."""
        argv = ["ssh", "-i", self.identity_file, "-p", str(self.port)]
        for option in self.options:
            argv += ["-o", option]
        return [*argv, f"{self.user}@{self.host}", *command]


# --- the cache ---------------------------------------------------------------------------------


def _cache() -> Path:
    return Path(CACHE_DIR)


def _kernel_release() -> str:
    try:
        return (_cache() / "kver").read_text().strip()
    except OSError:
        raise HarnessError(f"no guest kernel in {_cache()}: {SETUP_HINT}") from None


def _tree() -> Path:
    return _cache() / "kernel" / _kernel_release()


def _modules_dir() -> Path:
    release = _kernel_release()
    return _tree() / "lib" / "modules" / release


def _identity_file() -> Path:
    return _cache() / "ssh" / "id_ed25519"


def _boot_image(accel: str) -> Path:
    """The uncompressed vmlinux (PVH entry) under TCG when there is one, else the bzImage."""
    vmlinux = _tree() / "vmlinux"
    if accel == "tcg" and vmlinux.exists():
        return vmlinux
    return _tree() / "boot" / f"vmlinuz-{_kernel_release()}"


def ensure_setup() -> None:
    """Raise HarnessError naming what is missing unless the cache can boot a guest. Installs
    nothing itself."""
    if shutil.which(qemu.QEMU) is None:
        raise HarnessError(f"{qemu.QEMU} is not installed: {SETUP_HINT}")
    cache = _cache()
    if re.search(r"[\s,]", str(cache)):
        raise HarnessError(f"the cache path {cache!s} may not contain blanks or commas")
    modules = _modules_dir()
    needed = [
        _tree() / ".ready",
        _boot_image("kvm"),
        cache / "initramfs.cpio",
        _identity_file(),
        cache / "ssh" / "ssh_host_ed25519_key",
    ]
    missing = [str(p) for p in needed if not p.exists()]
    if not list((modules / "updates" / "dkms").glob("zfs.ko*")):
        missing.append(f"{modules}/updates/dkms/zfs.ko")
    if missing:
        raise HarnessError(f"the guest cache is incomplete (missing {', '.join(missing)}): "
                           f"{SETUP_HINT}")  # fmt: skip
    _check_initramfs(cache / "initramfs.cpio")


def _check_initramfs(initramfs: Path) -> None:
    try:
        built = json.loads(stamp_path(initramfs).read_text()).get("guest")
    except (OSError, ValueError):
        built = None
    if built != guest_digest():
        raise HarnessError(f"the guest scripts changed since the initramfs was built: {SETUP_HINT}")


# --- the guest ---------------------------------------------------------------------------------


class Guest:
    """A running guest: its command agent and sshd are forwarded to ports on 127.0.0.1."""

    def __init__(
        self,
        name: str,
        agent_port: int,
        ssh_port: int,
        *,
        pid: int,
        accel: str,
        pools: tuple[str, ...],
        boot_seconds: float,
        process: subprocess.Popen[bytes] | None = None,
    ) -> None:
        self.name = name
        self.agent_port = agent_port
        self.ssh_port = ssh_port
        self.pid = pid
        self.accel = accel
        self.pools = pools
        self.boot_seconds = boot_seconds
        self.run_dir = run_dir_of(name)
        self._process = process

    def __repr__(self) -> str:
        return f"Guest({self.name!r}, agent_port={self.agent_port}, ssh_port={self.ssh_port})"

    def run(
        self,
        argv: Sequence[str],
        *,
        input: bytes | None = None,
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
        timeout: float | None = None,
    ) -> Completed:
        """Run argv in the guest, as is (no shell), and collect its output. env is merged over
        the guest's base environment (PATH, HOME=/root, LANG=C.UTF-8); cwd defaults to /; stdin
        is input, or /dev/null. On timeout the guest command is killed and
        subprocess.TimeoutExpired raised."""
        command = _argv(argv)
        try:
            channel = wire.open_call(
                self.agent_port, command, env=env, cwd=cwd, stdin=input is not None
            )
        except OSError as exc:
            raise self._error(f"cannot reach the command agent: {exc}") from None
        if input is not None:
            feeder = threading.Thread(
                target=wire.send_stdin, args=(channel, wire.split(input)), daemon=True
            )
            feeder.start()
        return self._collect(channel, command, timeout)

    def _collect(
        self, channel: wire.Channel, argv: tuple[str, ...], timeout: float | None
    ) -> Completed:
        out, err = bytearray(), bytearray()
        expired = threading.Event()

        def expire() -> None:
            expired.set()
            channel.abort()

        timer = threading.Timer(timeout, expire) if timeout is not None else None
        if timer is not None:
            timer.start()
        lost: OSError | None = None
        try:
            returncode = _read_frames(channel, out, err)
        except OSError as exc:
            returncode, lost = None, exc
        finally:
            if timer is not None:
                timer.cancel()
            channel.abort()
        if expired.is_set():
            raise subprocess.TimeoutExpired(list(argv), timeout or 0, bytes(out), bytes(err))
        if returncode is None:
            why = f" ({lost})" if lost else ""
            raise self._error(f"the agent dropped the connection running {list(argv)!r}{why}")
        return Completed(argv, returncode, bytes(out), bytes(err))

    def sh(self, script: str, *, check: bool = False, timeout: float | None = None) -> Completed:
        """Run `sh -c script` in the guest; with check, a non-zero exit raises HarnessError."""
        done = self.run(["sh", "-c", script], timeout=timeout)
        if check and done.returncode != 0:
            raise HarnessError(
                f"guest {self.name}: sh -c {script!r} exited with {done.returncode}: "
                f"{done.stderr.decode(errors='replace').strip()}"
            )
        return done

    def exec_argv(self, argv: Sequence[str]) -> list[str]:
        """A local argv that runs argv in the guest, streaming stdin/stdout/stderr both ways;
        its exit status is the guest command's (killed by signal N there: killed by N here).
        Killing it (SIGTERM/SIGINT/SIGHUP) or closing its stdout kills the guest command."""
        return [
            sys.executable, "-I", "-S", str(EXEC_PY), "--port", str(self.agent_port), "--",
            *_argv(argv),
        ]  # fmt: skip

    def ssh_destination(self) -> SshDestination:
        return SshDestination(
            host="127.0.0.1",
            port=self.ssh_port,
            user="root",
            identity_file=str(_identity_file()),
            options=SSH_OPTIONS,
        )

    def console_tail(self, lines: int = 40) -> str:
        return _tail(self.run_dir / "console.log", lines)

    def alive(self) -> bool:
        if self._process is not None:
            return self._process.poll() is None
        return _is_our_qemu(self.pid, self.name)

    def stop(self, remove_disks: bool = True) -> None:
        """Kill the guest's qemu (there is nothing to flush: the disks are throwaway) and forget
        it; with remove_disks, delete its run directory (disks, console log), else keep them.
        Safe to call twice."""
        if self._process is not None:
            _terminate(self._process)
        elif _is_our_qemu(self.pid, self.name):
            _kill_pid(self.pid)
        _LIVE.pop(self.name, None)
        if remove_disks:
            shutil.rmtree(self.run_dir, ignore_errors=True)
        else:
            (self.run_dir / "state.json").unlink(missing_ok=True)

    def __enter__(self) -> Guest:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _error(self, message: str) -> HarnessError:
        state = "running" if self.alive() else "no longer running"
        return HarnessError(
            f"guest {self.name} ({state}): {message}\n"
            f"--- serial console ({self.run_dir / 'console.log'}), last lines ---\n"
            f"{self.console_tail()}"
        )


def _read_frames(channel: wire.Channel, out: bytearray, err: bytearray) -> int | None:
    """Collect output until EXIT (its return code), or None if the connection ended first."""
    while (frame := channel.recv()) is not None:
        kind, payload = frame
        if kind == wire.STDOUT:
            out += payload
        elif kind == wire.STDERR:
            err += payload
        elif kind == wire.EXIT:
            return int(payload)
    return None


def _argv(argv: Sequence[str]) -> tuple[str, ...]:
    if isinstance(argv, str) or not argv or not all(isinstance(a, str) for a in argv):
        raise TypeError(f"argv must be a non-empty sequence of str, not {argv!r}")
    return tuple(argv)


# --- starting ----------------------------------------------------------------------------------

_LIVE: dict[str, Guest] = {}


def start_guest(
    name: str,
    pools: Mapping[str, str] | Sequence[str],
    *,
    disk_size: str = "1G",
    memory_mib: int = 1024,
    timeout: float = 180,
    share: Sequence[str] = (),
) -> Guest:
    """Boot a guest named name with one sparse virtio disk and one fresh pool per entry of pools
    (a mapping gives each pool its own disk size), mounted at /<pool>; share: host directories
    mounted read-write at the same path in the guest. The guest sees the host's root read-only
    (with a tmpfs overlay for its writes), so host programs and the project's venv run inside.
    Raises HarnessError when setup is missing or the guest does not come up within timeout
    seconds (per boot attempt)."""
    ensure_setup()
    _check_name(name)
    sizes = _pool_sizes(pools, disk_size)
    shares = _shares(share)
    run_dir = _fresh_run_dir(name)
    accel = os.environ.get("ZFS_RECONCILER_VM_ACCEL", "auto")
    if accel == "auto":
        accel = "try-kvm" if qemu.kvm_worth_trying() else "tcg"
    if accel not in ("tcg", "kvm", "try-kvm"):
        raise HarnessError(f"ZFS_RECONCILER_VM_ACCEL={accel!r}: use auto, tcg, kvm or try-kvm")
    boot = _Boot(name, run_dir, sizes, shares, memory_mib)
    try:
        if accel == "try-kvm":
            try:
                return boot.boot("kvm", min(timeout, KVM_PROBE_SECONDS))
            except HarnessError as exc:
                first_line = str(exc).splitlines()[0]
                print(f"harness: KVM boot failed ({first_line}); using TCG", file=sys.stderr)
        return boot.boot("kvm" if accel == "kvm" else "tcg", timeout)
    except BaseException:
        for image in run_dir.glob("disk-*.img"):  # the console log stays, for the post-mortem
            image.unlink()
        raise


def attach(name: str) -> Guest:
    """The running guest called name (started by any process, e.g. one kept for debugging)."""
    try:
        state = json.loads((run_dir_of(name) / "state.json").read_text())
    except (OSError, ValueError):
        raise HarnessError(f"no running guest called {name!r}") from None
    if not _is_our_qemu(state["pid"], name):
        raise HarnessError(f"guest {name!r} is not running any more")
    return Guest(
        name,
        state["agent_port"],
        state["ssh_port"],
        pid=state["pid"],
        accel=state["accel"],
        pools=tuple(state["pools"]),
        boot_seconds=state["boot_seconds"],
    )


def _check_name(name: str) -> None:
    if not _NAME.fullmatch(name):
        raise HarnessError(f"guest name {name!r}: use letters, digits, '_', '.', '-'")


def _pool_sizes(pools: Mapping[str, str] | Sequence[str], disk_size: str) -> dict[str, int]:
    if isinstance(pools, str):
        raise HarnessError("pools must be a sequence or mapping of pool names, not a str")
    wanted = dict(pools) if isinstance(pools, Mapping) else dict.fromkeys(pools, disk_size)
    sizes = {}
    for pool, size in wanted.items():
        if not _POOL.fullmatch(pool):
            raise HarnessError(f"pool name {pool!r}: a letter, then up to 19 of [A-Za-z0-9_.:-]")
        try:
            sizes[pool] = qemu.parse_size(size)
        except ValueError as exc:
            raise HarnessError(str(exc)) from None
    return sizes


def _shares(share: Sequence[str]) -> tuple[str, ...]:
    paths = tuple(str(Path(p).resolve()) for p in share)
    for path in paths:
        if re.search(r"[\s,]", path) or not Path(path).is_dir():
            raise HarnessError(f"share {path!r}: must be a directory without blanks or commas")
    return paths


def run_dir_of(name: str) -> Path:
    """Where the guest called name keeps its disks, console log and state."""
    return _cache() / "run" / name


def _fresh_run_dir(name: str) -> Path:
    run_dir = run_dir_of(name)
    state = run_dir / "state.json"
    if state.exists():
        try:
            pid = int(json.loads(state.read_text())["pid"])
        except (OSError, ValueError, KeyError):
            pid = 0
        if pid and _is_our_qemu(pid, name):
            raise HarnessError(f"a guest called {name!r} is already running (qemu pid {pid})")
    if run_dir.exists():
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True)
    return run_dir


class _Boot:
    """One guest's boot attempts (a failed KVM probe is followed by a TCG boot)."""

    def __init__(
        self,
        name: str,
        run_dir: Path,
        sizes: dict[str, int],
        shares: tuple[str, ...],
        memory_mib: int,
    ) -> None:
        self.name = name
        self.run_dir = run_dir
        self.sizes = sizes
        self.shares = shares
        self.memory_mib = memory_mib
        self.console = run_dir / "console.log"

    def boot(self, accel: str, timeout: float) -> Guest:
        started = time.monotonic()
        deadline = started + timeout
        for _ in range(5):  # a forwarded port taken between picking and binding: pick again
            machine = self._machine(accel, qemu.free_port(), qemu.free_port())
            process = self._spawn(machine)
            try:
                self._wait_ready(process, machine, deadline)
            except _PortTaken:
                continue
            except BaseException:
                _terminate(process)
                raise
            guest = Guest(
                self.name,
                machine.agent_port,
                machine.ssh_port,
                pid=process.pid,
                accel=accel,
                pools=tuple(self.sizes),
                boot_seconds=round(time.monotonic() - started, 2),
                process=process,
            )
            self._finish(guest)
            return guest
        raise HarnessError(f"guest {self.name}: no free host ports for qemu after 5 attempts")

    def _machine(self, accel: str, agent_port: int, ssh_port: int) -> qemu.Machine:
        disks = []
        for pool, size in self.sizes.items():
            image = self.run_dir / f"disk-{pool}.img"
            qemu.make_disk(image, size)
            disks.append((pool, image))
        return qemu.Machine(
            name=self.name,
            accel=accel,
            kernel=_boot_image(accel),
            initrd=_cache() / "initramfs.cpio",
            cmdline=self._cmdline(),
            memory_mib=self.memory_mib,
            cpus=min(2, os.cpu_count() or 1),
            disks=tuple(disks),
            shares=self.shares,
            console=self.console,
            agent_port=agent_port,
            ssh_port=ssh_port,
        )

    def _cmdline(self) -> str:
        hostid = zlib.crc32(self.name.encode()) or 1
        words = [
            "console=ttyS0", "panic=-1", "mitigations=off", "quiet", "loglevel=4",
            f"zr.name={self.name}", f"zr.hostid={hostid:08x}", f"zr.modules={_modules_dir()}",
            f"zr.arcmax={max(64, self.memory_mib // 4) << 20}", f"zr.ssh={_cache() / 'ssh'}",
        ]  # fmt: skip
        if self.sizes:
            words.append("zr.pools=" + ",".join(self.sizes))
        if self.shares:
            words.append("zr.shares=" + ",".join(self.shares))
        return " ".join(words)

    def _spawn(self, machine: qemu.Machine) -> subprocess.Popen[bytes]:
        argv = qemu.qemu_argv(machine)
        (self.run_dir / "qemu.argv").write_text(json.dumps(argv, indent=1) + "\n")
        self.console.unlink(missing_ok=True)
        keep = os.environ.get("ZFS_RECONCILER_VM_KEEP") == "1"
        tie = not keep and threading.current_thread() is threading.main_thread()
        with open(self.run_dir / "qemu.log", "wb") as log:
            return subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with_parent if tie else None,
            )

    def _wait_ready(
        self, process: subprocess.Popen[bytes], machine: qemu.Machine, deadline: float
    ) -> None:
        """Wait for stage2's ready line on the console, then for a round trip. Probing the port
        earlier costs seconds: slirp retries a SYN that arrived before the guest NIC was up
        only after about 3 s."""
        while True:
            console = _read(self.console)
            if FATAL_MARK in console:
                raise self._failed("the guest reported a fatal error")
            if READY_LINE in console:
                break
            if process.poll() is not None:
                log = _read(self.run_dir / "qemu.log").decode(errors="replace")
                if "host forwarding" in log:
                    raise _PortTaken
                raise self._failed(f"qemu exited with {process.returncode}: {log.strip()}")
            if time.monotonic() > deadline:
                raise self._failed(f"not ready within the timeout ({machine.accel})")
            time.sleep(0.05)
        self._wait_agent(machine.agent_port, deadline)

    def _wait_agent(self, port: int, deadline: float) -> None:
        while True:
            try:
                channel = wire.open_call(port, ["true"], connect_timeout=2.0)
                channel.sock.settimeout(5.0)
                returncode = _read_frames(channel, bytearray(), bytearray())
                channel.abort()
                if returncode == 0:
                    return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise self._failed("the command agent does not answer")
            time.sleep(0.2)

    def _finish(self, guest: Guest) -> None:
        # The guest's RTC has one-second resolution: set its clock from ours.
        guest.run(["date", "-u", "-s", f"@{time.time():.3f}"]).check()
        state = {
            "name": guest.name,
            "pid": guest.pid,
            "agent_port": guest.agent_port,
            "ssh_port": guest.ssh_port,
            "accel": guest.accel,
            "pools": list(guest.pools),
            "boot_seconds": guest.boot_seconds,
        }
        (self.run_dir / "state.json").write_text(json.dumps(state, indent=1) + "\n")
        _LIVE[guest.name] = guest

    def _failed(self, why: str) -> HarnessError:
        return HarnessError(
            f"guest {self.name} did not start: {why}\n"
            f"--- serial console ({self.console}), last lines ---\n{_tail(self.console, 40)}"
        )


class _PortTaken(Exception):
    pass


# --- processes ---------------------------------------------------------------------------------


_prctl = ctypes.CDLL(None, use_errno=True).prctl  # looked up here: the child only calls it


def _die_with_parent() -> None:
    """In the qemu child, before exec: be killed when the thread that started us ends."""
    _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def _terminate(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _is_our_qemu(pid: int, name: str) -> bool:
    """pid is alive and is a qemu started for the guest called name (never signal others)."""
    try:
        words = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    if not words or not words[0].endswith(qemu.QEMU.encode()):
        return False
    return any(a == b"-name" and b == name.encode() for a, b in itertools.pairwise(words))


def _kill_pid(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGTERM)
        for _ in range(100):
            time.sleep(0.05)
            os.kill(pid, 0)
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError:
        return b""


def _tail(path: Path, lines: int) -> str:
    text = _read(path).decode(errors="replace").replace("\r", "")
    return "\n".join(text.splitlines()[-lines:]) or "(empty)"


def _stop_live_guests() -> None:
    if os.environ.get("ZFS_RECONCILER_VM_KEEP") == "1":
        return
    for guest in list(_LIVE.values()):
        guest.stop()


def live_guests() -> Iterator[Guest]:
    """The guests this process started and has not stopped."""
    return iter(list(_LIVE.values()))


atexit.register(_stop_live_guests)
