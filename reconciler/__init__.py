"""zfs-reconciler: declarative ZFS snapshots, retention and replication.

Layers (imports point one way): cli → loop → apply → zfs → core → manifest.
"""

__version__ = "0.1.0"
