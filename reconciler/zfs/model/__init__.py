"""The in-memory ZFS model: a deterministic `ZFS` port for unit tests, never for the product.

Owned here: the subpackage's public names, re-exported for tests (`ModelZFS`, the port; and
`encode_token`, the model's `receive_resume_token` writer). Modules: `zfs` (`ModelZFS` and its
test helpers), `data` (per-host records), `send`, `receive`, `destroy` (the verbs) and `stream`
(streams and tokens). Imported by tests/ and platform_tests/ only: no product module outside
`reconciler.zfs.model` may import it (tests/test_layers.py checks). docs/model.md lists the
OpenZFS behaviour each rule mirrors; the contract suite (tests/contract/) keeps it honest.
"""

from __future__ import annotations

from reconciler.zfs.model.stream import encode_token
from reconciler.zfs.model.zfs import ModelZFS

__all__ = ["ModelZFS", "encode_token"]
