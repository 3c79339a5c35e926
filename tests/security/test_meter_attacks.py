"""Attacks on the meter's upgrade path: each is refused with its code, raises a security alarm
(SEC-10), and changes nothing but the event log. All use real keys, packages and orders."""

from __future__ import annotations

from collections.abc import Callable

import cbor2
import pytest

from amiup.errors import AmiupError
from amiup.meter import MemoryStorage, Meter, MeterConfig
from amiup.meter.localport import LocalPort, issue_credential, sign_challenge
from amiup.package import build_package, decode_package, manifest_digest
from amiup.package.order import UpgradeOrder, sign_order
from amiup.trust import cose, generate_key
from amiup.trust.canonical import dumps, loads
from reqmark import req
from support_meter import (
    HW_REV,
    MODEL,
    SERIAL,
    T0,
    VENDOR,
    Orders,
    header,
    install,
    keys,
    new_meter,
    package,
    payload,
    send_blocks,
)

NOW = T0 + 100


def fingerprint(meter: Meter) -> dict[str, bytes]:
    """All flash except what legitimately changes on a refusal (log, metrology, port counters)."""
    storage = meter.storage
    assert isinstance(storage, MemoryStorage)
    skip = ("log/", "rec/logck/", "rec/metro/", "rec/lp/")
    return {k: v for k, v in storage.snapshot().items() if not k.startswith(skip)}


def refused(meter: Meter, code: str, attack: Callable[[], object]) -> None:
    """The attack raises ``code``, queues a matching alarm, logs it, and changes nothing else."""
    meter.pop_alarms()
    before = fingerprint(meter)
    versions = dict(meter.identity.versions)
    with pytest.raises(AmiupError) as info:
        attack()
    assert info.value.code == code, info.value.message
    alarms = meter.pop_alarms()
    assert [a.code for a in alarms] == [code]
    assert meter.log.entries[-1].kind == "alarm" and meter.log.entries[-1].outcome == code
    assert fingerprint(meter) == before
    assert meter.identity.versions == versions


def offer(meter: Meter, pkg: bytes, order: bytes) -> Callable[[], object]:
    return lambda: meter.offer(order, header(pkg), NOW)


@req("SEC-10", "SM-4")
def test_forged_manifest_refused() -> None:
    meter = new_meter()
    pkg = package("ami_app", "2.0.0", 2)
    doc = cose.decode_multi(header(pkg), content_type="application/amiup-manifest+cbor")
    manifest = loads(doc.payload)
    manifest["version"] = "9.9.9"  # attacker edits a signed field
    forged = dumps(cbor2.CBORTag(98, [doc.body_protected, {}, dumps(manifest),
                                      [[s.protected, {}, s.signature] for s in doc.signatures]]))
    # the UMS would even sign an order for it: the vendor signature still fails
    o = sign_order(UpgradeOrder(manifest_digest(dumps(manifest)), (SERIAL,), int(NOW - 10),
                                int(NOW + 100), 1), keys()["utility"])
    refused(meter, "bad-signature", lambda: meter.offer(o, forged, NOW))


@req("SEC-10")
def test_unsigned_or_garbage_manifest_refused() -> None:
    meter, orders = new_meter(), Orders()
    pkg = package("ami_app", "2.0.0", 2)
    order = orders.order(pkg, now=NOW)
    refused(meter, "malformed-package", lambda: meter.offer(order, b"\xa0not-a-cose", NOW))


@req("SEC-10")
def test_wrong_vendor_key_refused() -> None:
    meter, orders = new_meter(), Orders()
    pkg = package("ami_app", "2.0.0", 2, sign_key="vendor2")
    refused(meter, "unknown-key", offer(meter, pkg, orders.order(pkg, now=NOW)))


@req("SM-4", "SEC-10")
@pytest.mark.parametrize(("kw", "code"), [
    ({"model": "ZZ-9"}, "wrong-model"),
    ({"hw_revs": ("Q",)}, "wrong-hw-rev"),
    ({"vendor": "other"}, "wrong-vendor"),
    ({"requires": ["ami_comm>=5.0.0"]}, "dependency-unmet"),
])
def test_package_not_for_this_meter_refused(kw: dict[str, object], code: str) -> None:
    meter, orders = new_meter(), Orders()
    pkg = package("ami_app", "2.0.0", 2, **kw)  # type: ignore[arg-type]
    refused(meter, code, offer(meter, pkg, orders.order(pkg, now=NOW)))


@req("SM-4")
def test_dependency_met_is_accepted() -> None:
    meter, orders = new_meter(), Orders()
    pkg = package("ami_app", "2.0.0", 2, requires=["ami_comm>=1.0.0"])
    assert install(meter, pkg, orders, NOW) == "committed"


@req("SEC-6", "SEC-10")
def test_rollback_of_security_seq_refused() -> None:
    meter, orders = new_meter(), Orders()
    assert install(meter, package("ami_app", "2.0.0", 5), orders, NOW) == "committed"
    old = package("ami_app", "1.5.0", 4)
    refused(meter, "rollback-refused", offer(meter, old, orders.order(old, now=NOW)))


@req("SEC-6")
def test_downgrade_only_with_explicit_signed_order() -> None:
    meter, orders = new_meter(), Orders()
    assert install(meter, package("ami_app", "2.0.0", 5), orders, NOW) == "committed"
    old = package("ami_app", "1.5.0", 4)
    o = orders.order(old, now=NOW, allow_downgrade=True, activation="now")
    acc = meter.offer(o, header(old), NOW)
    send_blocks(meter, acc, payload(old), NOW)
    assert meter.verify("ami_app", NOW) == "committed"
    assert meter.identity.versions["ami_app"] == "1.5.0"
    assert meter.comp["ami_app"]["floor"] == 4


@req("SEC-3", "SEC-10")
@pytest.mark.parametrize(("kw", "code"), [
    ({"not_before": NOW - 200, "not_after": NOW - 1}, "order-expired"),
    ({"not_before": NOW + 60, "not_after": NOW + 600}, "order-not-yet-valid"),
    ({"targets": ("MTR-9999",)}, "order-wrong-target"),
])
def test_bad_order_refused(kw: dict[str, object], code: str) -> None:
    meter, orders = new_meter(), Orders()
    pkg = package("ami_app", "2.0.0", 2)
    refused(meter, code, offer(meter, pkg, orders.order(pkg, now=NOW, **kw)))  # type: ignore[arg-type]


@req("SEC-3")
def test_order_naming_the_meters_group_is_accepted() -> None:
    meter, orders = new_meter(groups=("north",)), Orders()
    pkg = package("ami_app", "2.0.0", 2)
    o = orders.order(pkg, now=NOW, targets=(), groups=("north",))
    assert meter.offer(o, header(pkg), NOW).component == "ami_app"


@req("SEC-3", "SEC-10")
def test_order_signed_by_unknown_utility_refused() -> None:
    meter, orders = new_meter(), Orders(key="utility2")
    pkg = package("ami_app", "2.0.0", 2)
    refused(meter, "unknown-key", offer(meter, pkg, orders.order(pkg, now=NOW)))


@req("SEC-3", "SEC-10")
def test_replayed_order_refused() -> None:
    meter, orders = new_meter(), Orders()
    pkg = package("ami_app", "2.0.0", 2)
    assert install(meter, pkg, orders, NOW) == "committed"
    first = orders.issued[-1]
    refused(meter, "order-replayed", offer(meter, pkg, first))
    # an older counter, freshly signed, is a replay too
    pkg2 = package("han_app", "2.0.0", 2)
    stale = orders.order(pkg2, now=NOW, counter=1)
    refused(meter, "order-replayed", offer(meter, pkg2, stale))


@req("SEC-3", "SEC-10")
def test_order_for_another_package_refused() -> None:
    meter, orders = new_meter(), Orders()
    pkg, other = package("ami_app", "2.0.0", 2), package("ami_app", "2.0.1", 2)
    refused(meter, "order-mismatch", offer(meter, pkg, orders.order(other, now=NOW)))


@req("SM-3", "SEC-10")
def test_tampered_block_detected_and_image_discarded() -> None:
    meter, orders = new_meter(), Orders()
    pkg = package("ami_app", "2.0.0", 2, size=8192)
    acc = meter.offer(orders.order(pkg, now=NOW), header(pkg), NOW)
    data = bytearray(payload(pkg))
    data[3000] ^= 0x01
    send_blocks(meter, acc, bytes(data), NOW)
    before = {k: v for k, v in fingerprint(meter).items() if not k.startswith(("xfer/", "rec/comp/"))}
    with pytest.raises(AmiupError) as info:
        meter.verify("ami_app", NOW)
    assert info.value.code == "digest-mismatch"
    assert [a.code for a in meter.pop_alarms()] == ["digest-mismatch"]
    st = meter.status(b"n", NOW).components["ami_app"]
    assert (st.state, st.code, st.running_version, st.staged_version) == (
        "failed", "digest-mismatch", "1.0.0", None)
    assert not meter.storage.keys("xfer/ami_app/")
    after = {k: v for k, v in fingerprint(meter).items() if not k.startswith(("xfer/", "rec/comp/"))}
    assert after == before
    with pytest.raises(AmiupError):
        meter.activate("ami_app", None, NOW)


@req("SEC-10")
def test_oversized_image_refused() -> None:
    meter = new_meter(config=MeterConfig(slot_capacity=16384))
    orders = Orders()
    pkg = package("ami_app", "2.0.0", 2, size=20000)
    refused(meter, "too-large", offer(meter, pkg, orders.order(pkg, now=NOW)))


@req("SEC-10")
def test_block_beyond_the_image_refused_without_write() -> None:
    meter, orders = new_meter(), Orders()
    pkg = package("ami_app", "2.0.0", 2)
    acc = meter.offer(orders.order(pkg, now=NOW), header(pkg), NOW)
    writes = meter.storage.writes
    for index, data in ((acc.n_blocks, b"x" * 1024), (0, b"x" * 5000)):
        with pytest.raises(AmiupError) as info:
            meter.block(acc.transfer_id, index, data, NOW)
        assert info.value.code == "malformed-message"
    assert meter.storage.writes == writes


@req("SEC-7", "SEC-10")
def test_payload_encrypted_for_another_meter_refused() -> None:
    meter, orders = new_meter(), Orders()
    pkg = build_package(b"x" * 4096, component="han_app", version="2.0.0", security_seq=2,
                        vendor=VENDOR, model=MODEL, hw_revs=[HW_REV],
                        sign_keys=[keys()["vendor"]], encrypt_for=[generate_key().public_key()])
    refused(meter, "decrypt-failed", offer(meter, pkg, orders.order(pkg, now=NOW)))


@req("SEC-1", "SEC-10")
def test_delta_for_another_base_refused() -> None:
    meter, orders = new_meter(), Orders()
    pkg = package("han_app", "2.0.0", 2, delta_from=b"some other image" * 100)
    refused(meter, "delta-base-mismatch", offer(meter, pkg, orders.order(pkg, now=NOW)))


@req("SEC-8", "SEC-10")
def test_local_port_brute_force_locks_out() -> None:
    meter = new_meter()
    port = LocalPort(meter, max_failures=3, lockout=600, min_interval=1)
    tool = generate_key()
    cred = issue_credential(keys()["utility"], tool.public_key(), tool_id="t1", role="installer",
                            not_before=int(T0), not_after=int(T0 + 86400), meters=(SERIAL,))
    t = NOW
    codes = []
    for _ in range(3):
        t += 5
        port.challenge(t)
        with pytest.raises(AmiupError) as info:
            port.login(cred, b"\x00" * 64, t)  # guessing the response
        codes.append(info.value.code)
    assert codes == ["auth-failed", "auth-failed", "locked-out"]
    # even the right answer is refused while locked, and a reboot does not reset the lock
    meter.power_loss()
    meter.boot(t + 10)
    port = LocalPort(meter, max_failures=3, lockout=600, min_interval=1)
    ch = port.challenge(t + 10)
    with pytest.raises(AmiupError) as info:
        port.login(cred, sign_challenge(tool, ch, SERIAL), t + 10)
    assert info.value.code == "locked-out"
    alarms = [a.code for a in meter.pop_alarms()]
    assert alarms.count("auth-failed") == 3 and alarms[-1] == "locked-out"
    assert sum(e.kind == "alarm" for e in meter.log.entries) == 4
    ch = port.challenge(t + 700)
    session = port.login(cred, sign_challenge(tool, ch, SERIAL), t + 700)
    assert session.credential.tool_id == "t1"


@req("SEC-8", "SEC-10")
def test_local_port_rate_limit() -> None:
    meter = new_meter()
    port = LocalPort(meter, max_failures=10, min_interval=5)
    port.challenge(NOW)
    with pytest.raises(AmiupError):
        port.login(b"junk", b"", NOW)
    port.challenge(NOW + 1)
    with pytest.raises(AmiupError) as info:
        port.login(b"junk", b"", NOW + 1)
    assert info.value.code == "locked-out" and "rate limited" in info.value.detail


@req("SEC-8", "SEC-10")
@pytest.mark.parametrize("case", ["expired", "other-meter", "forged", "wrong-tool-key", "reader"])
def test_local_port_bad_credentials_refused(case: str) -> None:
    meter = new_meter()
    tool = generate_key()
    signer = keys()["utility2"] if case == "forged" else keys()["utility"]
    cred = issue_credential(
        signer, tool.public_key(), tool_id="t", role="reader" if case == "reader" else "installer",
        not_before=int(T0), not_after=int(NOW - 1 if case == "expired" else NOW + 999),
        meters=("OTHER",) if case == "other-meter" else (SERIAL,))
    port = LocalPort(meter)
    ch = port.challenge(NOW)
    key = generate_key() if case == "wrong-tool-key" else tool
    if case == "reader":
        session = port.login(cred, sign_challenge(key, ch, SERIAL), NOW)
        pkg = package("ami_app", "2.0.0", 2)
        with pytest.raises(AmiupError) as info:
            session.offer(header(pkg), NOW)
        assert info.value.code == "not-authorized"
        return
    with pytest.raises(AmiupError) as info:
        port.login(cred, sign_challenge(key, ch, SERIAL), NOW)
    assert info.value.code == "auth-failed"
    assert [a.code for a in meter.pop_alarms()] == ["auth-failed"]


@req("SEC-8", "G-3")
def test_local_upgrade_gets_the_same_checks() -> None:
    meter, orders = new_meter(), Orders()
    assert install(meter, package("ami_app", "2.0.0", 5), orders, NOW) == "committed"
    tool = generate_key()
    cred = issue_credential(keys()["utility"], tool.public_key(), tool_id="t", role="installer",
                            not_before=int(T0), not_after=int(NOW + 999), meters=(SERIAL,))
    port = LocalPort(meter)
    session = port.login(cred, sign_challenge(tool, port.challenge(NOW), SERIAL), NOW)
    for pkg, code in ((package("ami_app", "1.0.1", 4), "rollback-refused"),
                      (package("ami_app", "3.0.0", 6, sign_key="vendor2"), "unknown-key"),
                      (package("ami_app", "3.0.0", 6, model="ZZ"), "wrong-model")):
        refused(meter, code, lambda p=pkg: session.offer(header(p), NOW))  # type: ignore[misc]
    assert decode_package(package("ami_app", "3.0.0", 6)).manifest.version == "3.0.0"


@req("SEC-9", "SEC-10")
def test_revoked_vendor_key_is_refused_after_a_root_signed_revocation() -> None:
    from amiup.trust import key_id, sign_revocations

    meter, orders = new_meter(), Orders()
    vendor_kid = key_id(keys()["vendor"].public_key())
    forged = sign_revocations(1, [vendor_kid], [keys()["utility2"]])
    refused(meter, "threshold-not-met", lambda: meter.update_trust(NOW, revocations=forged))
    meter.update_trust(NOW, revocations=sign_revocations(1, [vendor_kid], [keys()["root"]]))
    meter.power_loss()
    meter.boot(NOW + 1)  # the revocation is persistent
    pkg = package("ami_app", "2.0.0", 2)
    refused(meter, "revoked-key", offer(meter, pkg, orders.order(pkg, now=NOW)))
