"""Pure checks a meter makes on a verified manifest: is it for me, and not a rollback."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from amiup import COMPONENTS
from amiup.errors import error
from amiup.package.manifest import Manifest
from amiup.package.semver import satisfies


@dataclass(frozen=True, slots=True)
class Identity:
    """What a meter is: maker, model, hardware revision and its components' running versions."""

    vendor: str
    model: str
    hw_rev: str
    versions: Mapping[str, str] = field(default_factory=dict)


def check_compatible(manifest: Manifest, identity: Identity, component: str | None = None) -> None:
    """Raise the first mismatch, in the order a utility engineer reads them.

    ``component`` is the slot the sender says the package is for (an offer names it); the
    manifest must agree and the meter must have that component.
    """
    if manifest.vendor != identity.vendor:
        raise error("wrong-vendor", f"package is for {manifest.vendor!r}, meter is {identity.vendor!r}")
    if manifest.model != identity.model:
        raise error("wrong-model", f"package is for {manifest.model!r}, meter is {identity.model!r}")
    if identity.hw_rev not in manifest.hw_revs:
        raise error("wrong-hw-rev",
                    f"package supports {', '.join(manifest.hw_revs)}, meter is {identity.hw_rev!r}")
    if manifest.component not in COMPONENTS or (component is not None and manifest.component != component):
        raise error("wrong-component", f"package is for {manifest.component!r}"
                    + (f", offered for {component!r}" if component else ""))
    for req in manifest.requires:
        have = identity.versions.get(req.component)
        if have is None or not satisfies(have, req.op, req.version):
            raise error("dependency-unmet", f"needs {req}, meter runs {req.component} {have or 'none'}")


def check_rollback(installed_seq: int, offered_seq: int, allow_downgrade: bool = False) -> None:
    """Anti-rollback: a lower security sequence needs an explicit signed downgrade order."""
    if offered_seq < installed_seq and not allow_downgrade:
        raise error("rollback-refused",
                    f"security_seq {offered_seq} < installed {installed_seq} and no downgrade order")
