"""Confirmations in manifests: which policies confirm the destroys of their current spec.

Owned here: `spec_digest` (a short hash of a policy's spec, the value the destroy guard asks
for) and `confirmed_policies`. A Policy whose `metadata.annotations` carries
`zfs-reconciler.dev/confirm-destroy: DIGEST` with the digest of its own spec lifts the destroy
guard (`core/guard.py`) for as long as that spec stays as it is: the next edit of the spec
changes the digest, and the old confirmation no longer matches. This fits review in git: the
confirmation is a line in the same pull request as the change it confirms. Called by
`apply/passes.run_pass` and by the CLI when it prints how to confirm.
"""

from __future__ import annotations

import hashlib
import json

from reconciler.manifest.changes import GENERATION_LENGTH
from reconciler.manifest.models import CONFIRM_DESTROY, Manifests, Policy


def spec_digest(policy: Policy) -> str:
    """A short hash of the policy's effective spec (defaults included; metadata excluded, so
    adding the confirmation does not change what it confirms)."""
    spec = policy.spec.model_dump(mode="json", by_alias=True)
    text = json.dumps(spec, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:GENERATION_LENGTH]


def confirmed_policies(manifests: Manifests) -> frozenset[str]:
    """The policies whose confirm-destroy annotation names the digest of their spec."""
    return frozenset(
        name
        for name, policy in manifests.policies.items()
        if policy.metadata.annotations.get(CONFIRM_DESTROY) == spec_digest(policy)
    )


def confirmation_hint(policy: Policy) -> str:
    """How to confirm the destroys of the policy's current spec, in words."""
    digest = spec_digest(policy)
    given = policy.metadata.annotations.get(CONFIRM_DESTROY)
    stale = f" (the one there, {given}, confirms an earlier spec)" if given else ""
    return (
        f"run a one-shot reconcile with --force, or add to Policy {policy.metadata.name}: "
        f'metadata.annotations: {{{CONFIRM_DESTROY}: "{digest}"}}{stale}'
    )
