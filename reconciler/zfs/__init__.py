"""The boundary to the `zfs` command: the port, its in-memory model, typed errors."""
