"""The platform-test harness: one small qemu guest running real OpenZFS, driven from the host.

`vm.py` is the API (`start_guest`, `Guest`, `ensure_setup`); `setup.sh` prepares its cache
(`make vm-setup`); docs/platform-tests.md explains how it works and what it costs.
"""

from .vm import (
    CACHE_DIR,
    Completed,
    Guest,
    HarnessError,
    SshDestination,
    attach,
    ensure_setup,
    start_guest,
)

__all__ = [
    "CACHE_DIR",
    "Completed",
    "Guest",
    "HarnessError",
    "SshDestination",
    "attach",
    "ensure_setup",
    "start_guest",
]
