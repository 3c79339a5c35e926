"""The UMS store on SQLite and PostgreSQL: migrations, one active assignment, the audit chain."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import func, select, text, update
from sqlalchemy.exc import IntegrityError

from amiup.errors import AmiupError
from amiup.ums import audit, auth
from amiup.ums.models import (
    Assignment,
    AuditEntry,
    Base,
    Campaign,
    Meter,
    Package,
    User,
)
from amiup.ums.store import Store
from reqmark import req
from support_ums import NOW, store_fixture  # noqa: F401


def test_migrated_schema_matches_models(store: Store) -> None:
    from alembic.script import ScriptDirectory

    from amiup.ums.store import MIGRATIONS_DIR

    head = ScriptDirectory(str(MIGRATIONS_DIR)).get_current_head()  # one head: a chain
    assert store.current_revision() == head
    with store.engine.connect() as conn:
        diffs = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diffs == []
    store.migrate()  # idempotent
    assert store.current_revision() == head


def _campaign(db: object, creator: int, pkg: int, name: str) -> Campaign:
    c = Campaign(name=name, package_id=pkg, component="ami_comm", created_by=creator,
                 created_at=NOW)
    db.add(c)  # type: ignore[attr-defined]
    db.flush()  # type: ignore[attr-defined]
    return c


def _seed(store: Store) -> tuple[int, int, int, int]:
    with store.session() as db:
        u = User(username="op", roles=["operator"], created_at=NOW)
        p = Package(digest="d" * 64, file_sha256="f" * 64, size=1, vendor="v", model="m",
                    component="ami_comm", version="2.0.0", security_seq=2, payload_kind="full",
                    uploaded_by="u", uploaded_at=NOW)
        m = Meter(serial="M1", model="m", created_at=NOW)
        db.add_all([u, p, m])
        db.flush()
        c1 = _campaign(db, u.id, p.id, "one")
        c2 = _campaign(db, u.id, p.id, "two")
        return m.id, c1.id, c2.id, u.id


def _assign(store: Store, meter: int, campaign: int, state: str = "pending") -> None:
    with store.session() as db:
        db.add(Assignment(campaign_id=campaign, meter_id=meter, component="ami_comm",
                          state=state, created_at=NOW, updated_at=NOW))


@req("UMS-12")
def test_two_campaigns_never_hold_one_meter_component(store: Store) -> None:
    meter, c1, c2, _ = _seed(store)
    _assign(store, meter, c1)
    with pytest.raises(IntegrityError):
        _assign(store, meter, c2)
    # once the first one is final, the component is free again
    with store.session() as db:
        db.execute(update(Assignment).where(Assignment.campaign_id == c1)
                   .values(state="confirmed"))
    _assign(store, meter, c2)
    with store.session() as db:
        assert db.scalar(select(func.count()).select_from(Assignment)) == 2


@req("UMS-12")
def test_transition_into_active_state_refused_while_other_active(store: Store) -> None:
    meter, c1, c2, _ = _seed(store)
    _assign(store, meter, c1, state="failed")
    _assign(store, meter, c2, state="offered")
    with pytest.raises(IntegrityError), store.session() as db:  # retry c1 while c2 active
        db.execute(update(Assignment).where(Assignment.campaign_id == c1)
                   .values(state="pending"))


def _chain(store: Store, n: int) -> None:
    with store.session() as db:
        for i in range(n):
            audit.record(db, at=NOW + i, actor="alice", action="test.act", object=f"x:{i}",
                         before={"i": i}, after={"i": i + 1, "f": 0.1 * i, "s": "é"})


def _bypass(store: Store, sql: str) -> None:
    """What an attacker with database access does: drop the guard, then tamper."""
    with store.engine.begin() as conn:
        if store.dialect == "postgresql":
            conn.execute(text("ALTER TABLE audit DISABLE TRIGGER USER"))
            conn.exec_driver_sql(sql)
            conn.execute(text("ALTER TABLE audit ENABLE TRIGGER USER"))
        else:
            conn.exec_driver_sql("DROP TRIGGER IF EXISTS audit_no_update")
            conn.exec_driver_sql("DROP TRIGGER IF EXISTS audit_no_delete")
            conn.exec_driver_sql(sql)


@req("SEC-5", "UMS-11")
def test_audit_chain_verifies(store: Store) -> None:
    _chain(store, 12)
    with store.session() as db:
        res = audit.verify(db)
    assert res.ok and res.rows == 12 and res.first_bad is None


@req("SEC-5")
def test_audit_refuses_update_and_delete_in_the_store(store: Store) -> None:
    _chain(store, 3)
    for sql in ("UPDATE audit SET actor='mallory' WHERE seq=2", "DELETE FROM audit WHERE seq=2"):
        with pytest.raises((AmiupError, IntegrityError)) as exc, store.session() as db:
            db.execute(text(sql))
        assert "append-only" in str(exc.value)
    with store.session() as db:
        assert audit.verify(db).rows == 3


@req("SEC-5")
@pytest.mark.parametrize(
    ("sql", "bad", "word"),
    [
        ("UPDATE audit SET actor='mallory' WHERE seq=5", 5, "edited"),
        ("UPDATE audit SET after='{\"i\":99}' WHERE seq=7", 7, "edited"),
        ("DELETE FROM audit WHERE seq=4", 5, "deleted"),
        ("UPDATE audit SET seq=CASE seq WHEN 3 THEN 6 ELSE 3 END WHERE seq IN (3, 6)", 3, ""),
    ],
    ids=["edited-actor", "edited-after", "deleted", "reordered"],
)
def test_audit_tampering_named_at_first_bad_row(store: Store, sql: str, bad: int,
                                                 word: str) -> None:
    _chain(store, 10)
    if "seq IN" in sql:  # swap two rows' positions (via a free seq, unique PK)
        _bypass(store, "UPDATE audit SET seq=1000 WHERE seq=3")
        _bypass(store, "UPDATE audit SET seq=3 WHERE seq=6")
        _bypass(store, "UPDATE audit SET seq=6 WHERE seq=1000")
    else:
        _bypass(store, sql)
    with store.session() as db:
        res = audit.verify(db)
    assert not res.ok
    assert res.first_bad == bad
    assert word in res.reason


@req("SEC-5")
def test_audit_chain_continues_across_sessions(store: Store) -> None:
    _chain(store, 2)
    _chain(store, 2)
    with store.session() as db:
        assert audit.verify(db).rows == 4
        seqs = db.scalars(select(AuditEntry.seq).order_by(AuditEntry.seq)).all()
    assert seqs == [1, 2, 3, 4]


@req("SEC-4")
def test_passwords_are_argon2_and_tokens_hashed(store: Store) -> None:
    with store.session() as db:
        u = auth.create_user(db, username="alice", password="correct horse", roles=["viewer"],
                             now=NOW, actor="test")
        token, row = auth.issue_token(db, user=u, name="cli", now=NOW, ttl_s=60)
    assert u.password_hash and u.password_hash.startswith("$argon2id$")
    assert token not in row.token_hash and row.token_hash == auth.token_hash(token)
    with store.session() as db:
        assert auth.authenticate_password(db, "alice", "correct horse").username == "alice"
        with pytest.raises(AmiupError):
            auth.authenticate_password(db, "alice", "wrong horse!")
        p = auth.authenticate_token(db, token, now=NOW + 1)
        assert p.roles == {"viewer"}
        with pytest.raises(AmiupError) as exc:
            auth.authenticate_token(db, token, now=NOW + 61)
        assert exc.value.code == "unauthenticated"
        with pytest.raises(AmiupError):
            auth.authenticate_token(db, token[:-1] + ("A" if token[-1] != "A" else "B"), now=NOW)
        stored = db.scalar(select(User.password_hash).where(User.username == "alice"))
        assert "correct horse" not in str(stored)
