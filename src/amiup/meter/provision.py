"""Factory provisioning: a meter's identity, trust anchors, key, NV data and first images.

What the factory writes once, before a meter ships: after this, everything changes only
through the (signed, authorized) upgrade path. Images are generated (``firmware.make_image``)
unless given; the meter key is fresh per meter and never leaves its storage.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping

from cryptography.hazmat.primitives import serialization

from amiup import COMPONENTS
from amiup.errors import error
from amiup.meter.firmware import make_image
from amiup.meter.metrology import LoadProfile, Metrology, profile_to_list
from amiup.meter.slots import SlotWriter, slot_prefix
from amiup.meter.storage import Records, Storage
from amiup.package.semver import is_version
from amiup.trust import PrivateKey, TrustAnchors, generate_key

COMM_PROTOCOLS = {"ami_comm": "wisun-fan-1.0", "han_comm": "zigbee-sep-1.1"}


def provision(storage: Storage, *, serial: str, vendor: str, model: str, hw_rev: str,
              anchors: TrustAnchors, groups: tuple[str, ...] = (),
              versions: Mapping[str, str] | None = None,
              images: Mapping[str, bytes] | None = None, image_size: int = 4096,
              meter_key: PrivateKey | None = None, gain: float = 1.0012,
              profile: LoadProfile | None = None, legal_version: str = "1.0",
              now: float = 0.0) -> None:
    """Write the factory state; refuses storage that already holds a meter."""
    records = Records(storage)
    if records.load("meter") is not None:
        raise error("conflict", "storage already holds a provisioned meter")
    if not serial or len(serial) > 64:
        raise error("invalid-argument", "serial must be 1..64 characters")
    versions = dict(versions or {})
    for c, v in versions.items():
        if c not in COMPONENTS or not is_version(v):
            raise error("invalid-argument", f"bad component version {c}={v}")
    key = meter_key or generate_key()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    profile = profile or LoadProfile()
    for c in COMPONENTS:
        version = versions.get(c, "1.0.0")
        image = (images or {}).get(c) or make_image(c, version, size=image_size)
        writer = SlotWriter(storage, slot_prefix(c, 0))
        writer.write(image)
        digest = writer.close()
        slot = {"v": version, "h": bytes.fromhex(digest), "n": len(image), "s": 0,
                "l": legal_version if c == "metrology" else None,
                "r": "factory" if c == "metrology" else None, "p": COMM_PROTOCOLS.get(c)}
        records.save(f"comp/{c}", {"active": 0, "slots": [slot, None], "floor": 0,
                                   "state": "idle", "code": None, "x": None, "at": None,
                                   "trial": None, "last": None})
    records.save("trust", anchors.to_bytes())
    records.save("cred", {"meter_key": pem, "secrets": os.urandom(32)})
    records.save("cal", {"gain": gain, "profile": profile_to_list(profile),
                         "id": hashlib.sha256(f"cal/{serial}".encode()).hexdigest()[:16]})
    records.save("cfg", {"tariff": "TOU-A", "demand_interval_s": 900, "display": ["kWh"]})
    pairings = [{"mac": f"00:0d:6f:00:00:{i:02x}",
                 "key": hashlib.sha256(f"han/{serial}/{i}".encode()).digest()[:16]}
                for i in range(2)]
    records.save("han", {"pairings": pairings, "protocol": COMM_PROTOCOLS["han_comm"]})
    records.save("net", {"pan": "0xabcd", "registered": True, "collector": "c-1",
                         "key": hashlib.sha256(f"net/{serial}".encode()).digest()[:16]})
    records.save("metro", Metrology(gain, profile, now).to_dict())
    records.save("ctr", 0)
    records.save("meter", {"serial": serial, "vendor": vendor, "model": model,
                           "hw_rev": hw_rev, "groups": list(groups)})
