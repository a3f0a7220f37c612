"""The ZFS port's contract suite (`zfs_contract.py`) and its run on the in-memory model."""
