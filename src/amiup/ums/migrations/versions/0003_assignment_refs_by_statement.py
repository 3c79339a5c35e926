"""Assignments check their meter, campaign and wave once per statement, not once per row.

Revision ID: 0003
Revises: 0002

Why: creating a campaign inserts one assignment per meter (a million in one statement). With
declared foreign keys PostgreSQL runs three row-level checks per inserted row (each a lookup
and a ``FOR KEY SHARE`` lock on the meter, campaign and wave rows): about 20 of the 51 s a
1M-meter campaign took. The three foreign keys are replaced by triggers that keep the same
integrity, enforced by the store:

* PostgreSQL: an ``AFTER INSERT ... FOR EACH STATEMENT`` trigger checks every new row with
  set-based anti-joins over the transition table (one pass, whatever the row count), and a
  row trigger checks the rare UPDATE of ``meter_id``, ``campaign_id`` or ``wave_id``. A
  wave must also belong to the assignment's campaign (stronger than before). A violation
  raises SQLSTATE 23503 (``foreign_key_violation``), as a foreign key does.
* The old ``ON DELETE`` actions are row triggers on the parents: deleting a meter or a
  campaign deletes its assignments, deleting a wave sets ``wave_id`` to NULL. The parent
  delete first takes ``SHARE ROW EXCLUSIVE`` on ``assignments``, so it waits for every
  transaction still inserting assignments (which hold ``ROW EXCLUSIVE``) and its cascade
  then sees their rows: no orphan can slip between the insert check and the commit. Parents
  are deleted rarely (nothing in amiup deletes meters, campaigns or waves yet; an operator
  may), so that table lock costs nothing in practice. TRUNCATE of a parent is refused
  while any assignment exists, as a foreign key refused it.
* SQLite checks per row anyway (as its foreign keys did), with the same rules as triggers.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_FKS = (  # (constraint, column, parent table, ondelete) as created by 0001
    ("fk_assignments_campaign_id_campaigns", "campaign_id", "campaigns", "CASCADE"),
    ("fk_assignments_wave_id_waves", "wave_id", "waves", "SET NULL"),
    ("fk_assignments_meter_id_meters", "meter_id", "meters", "CASCADE"),
)
_ACTIVE = sa.text(
    "state IN ('pending', 'offered', 'transferring', 'transferred', 'verified', "
    "'scheduled', 'activated')"
)

_PG = [
    # --- the child side: every new or re-pointed assignment refers to existing rows
    """CREATE FUNCTION assignments_refs_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF EXISTS (
       SELECT 1 FROM (SELECT DISTINCT campaign_id, wave_id FROM new_rows) r
       WHERE NOT EXISTS (SELECT 1 FROM campaigns c WHERE c.id = r.campaign_id)
          OR (r.wave_id IS NOT NULL AND NOT EXISTS (
                SELECT 1 FROM waves w WHERE w.id = r.wave_id AND w.campaign_id = r.campaign_id)))
     OR EXISTS (
       SELECT 1 FROM new_rows n
       WHERE NOT EXISTS (SELECT 1 FROM meters m WHERE m.id = n.meter_id)) THEN
    RAISE EXCEPTION 'assignments: a row refers to a missing meter, campaign or wave'
      USING ERRCODE = 'foreign_key_violation';
  END IF;
  RETURN NULL;
END $$""",
    "CREATE TRIGGER assignments_refs_insert AFTER INSERT ON assignments "
    "REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT "
    "EXECUTE FUNCTION assignments_refs_insert()",
    """CREATE FUNCTION assignments_refs_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF (NEW.meter_id IS DISTINCT FROM OLD.meter_id
        AND NOT EXISTS (SELECT 1 FROM meters m WHERE m.id = NEW.meter_id))
     OR (NEW.campaign_id IS DISTINCT FROM OLD.campaign_id
        AND NOT EXISTS (SELECT 1 FROM campaigns c WHERE c.id = NEW.campaign_id))
     OR (NEW.wave_id IS NOT NULL
        AND (NEW.wave_id IS DISTINCT FROM OLD.wave_id
             OR NEW.campaign_id IS DISTINCT FROM OLD.campaign_id)
        AND NOT EXISTS (SELECT 1 FROM waves w
                        WHERE w.id = NEW.wave_id AND w.campaign_id = NEW.campaign_id))
  THEN
    RAISE EXCEPTION 'assignments: row % refers to a missing meter, campaign or wave', NEW.id
      USING ERRCODE = 'foreign_key_violation';
  END IF;
  RETURN NEW;
END $$""",
    "CREATE TRIGGER assignments_refs_update BEFORE UPDATE OF meter_id, campaign_id, wave_id "
    "ON assignments FOR EACH ROW EXECUTE FUNCTION assignments_refs_update()",
    # --- the parent side: the former ON DELETE actions, after waiting for inserters
    """CREATE FUNCTION assignments_parent_lock() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  LOCK TABLE assignments IN SHARE ROW EXCLUSIVE MODE;
  RETURN NULL;
END $$""",
    # a foreign key refused TRUNCATE of a referenced table; so does this while rows refer
    """CREATE FUNCTION assignments_parent_truncate() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF EXISTS (SELECT 1 FROM assignments) THEN
    RAISE EXCEPTION 'cannot truncate %: assignments refer to it', TG_TABLE_NAME
      USING ERRCODE = 'foreign_key_violation';
  END IF;
  RETURN NULL;
END $$""",
    """CREATE FUNCTION assignments_parent_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_TABLE_NAME = 'meters' THEN
    DELETE FROM assignments WHERE meter_id = OLD.id;
  ELSIF TG_TABLE_NAME = 'campaigns' THEN
    DELETE FROM assignments WHERE campaign_id = OLD.id;
  ELSE
    UPDATE assignments SET wave_id = NULL WHERE wave_id = OLD.id;
  END IF;
  RETURN NULL;
END $$""",
]
_PARENTS = ("meters", "campaigns", "waves")
for _t in _PARENTS:
    _PG += [
        f"CREATE TRIGGER {_t}_lock_assignments BEFORE DELETE ON {_t} "
        "FOR EACH STATEMENT EXECUTE FUNCTION assignments_parent_lock()",
        f"CREATE TRIGGER {_t}_cascade_assignments AFTER DELETE ON {_t} "
        "FOR EACH ROW EXECUTE FUNCTION assignments_parent_deleted()",
        f"CREATE TRIGGER {_t}_truncate_assignments BEFORE TRUNCATE ON {_t} "
        "FOR EACH STATEMENT EXECUTE FUNCTION assignments_parent_truncate()",
    ]

_SQLITE_BAD = (
    "NOT EXISTS (SELECT 1 FROM meters WHERE id = NEW.meter_id) "
    "OR NOT EXISTS (SELECT 1 FROM campaigns WHERE id = NEW.campaign_id) "
    "OR (NEW.wave_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM waves "
    "WHERE id = NEW.wave_id AND campaign_id = NEW.campaign_id))"
)
# an update is checked only on the references it changes (as a foreign key is): setting
# wave_id to NULL, as deleting a wave does, always passes
_SQLITE_BAD_UPDATE = (
    "(NEW.meter_id IS NOT OLD.meter_id "
    "AND NOT EXISTS (SELECT 1 FROM meters WHERE id = NEW.meter_id)) "
    "OR (NEW.campaign_id IS NOT OLD.campaign_id "
    "AND NOT EXISTS (SELECT 1 FROM campaigns WHERE id = NEW.campaign_id)) "
    "OR (NEW.wave_id IS NOT NULL "
    "AND (NEW.wave_id IS NOT OLD.wave_id OR NEW.campaign_id IS NOT OLD.campaign_id) "
    "AND NOT EXISTS (SELECT 1 FROM waves "
    "WHERE id = NEW.wave_id AND campaign_id = NEW.campaign_id))"
)
_SQLITE = [
    f"CREATE TRIGGER assignments_refs_insert BEFORE INSERT ON assignments WHEN {_SQLITE_BAD} "
    "BEGIN SELECT RAISE(ABORT, 'FOREIGN KEY constraint failed'); END",
    "CREATE TRIGGER assignments_refs_update BEFORE UPDATE OF meter_id, campaign_id, wave_id "
    f"ON assignments WHEN {_SQLITE_BAD_UPDATE} "
    "BEGIN SELECT RAISE(ABORT, 'FOREIGN KEY constraint failed'); END",
    "CREATE TRIGGER meters_cascade_assignments AFTER DELETE ON meters "
    "BEGIN DELETE FROM assignments WHERE meter_id = OLD.id; END",
    "CREATE TRIGGER campaigns_cascade_assignments AFTER DELETE ON campaigns "
    "BEGIN DELETE FROM assignments WHERE campaign_id = OLD.id; END",
    "CREATE TRIGGER waves_cascade_assignments AFTER DELETE ON waves "
    "BEGIN UPDATE assignments SET wave_id = NULL WHERE wave_id = OLD.id; END",
]


def _pg() -> bool:
    return bool(op.get_bind().dialect.name == "postgresql")


def upgrade() -> None:
    if _pg():
        for name, *_ in _FKS:
            op.drop_constraint(name, "assignments", type_="foreignkey")
        for stmt in _PG:
            op.execute(stmt)
        return
    # SQLite rebuilds the table to drop constraints; the partial unique index (UMS-12) is
    # put back explicitly so its WHERE clause survives whatever reflection keeps.
    op.drop_index("uq_assignments_active", table_name="assignments")
    with op.batch_alter_table("assignments", recreate="always") as batch_op:
        for name, *_ in _FKS:
            batch_op.drop_constraint(name, type_="foreignkey")
    op.create_index("uq_assignments_active", "assignments", ["meter_id", "component"],
                    unique=True, sqlite_where=_ACTIVE)
    for stmt in _SQLITE:
        op.execute(stmt)


def downgrade() -> None:
    if _pg():
        for t in _PARENTS:
            op.execute(f"DROP TRIGGER {t}_truncate_assignments ON {t}")
            op.execute(f"DROP TRIGGER {t}_cascade_assignments ON {t}")
            op.execute(f"DROP TRIGGER {t}_lock_assignments ON {t}")
        op.execute("DROP TRIGGER assignments_refs_update ON assignments")
        op.execute("DROP TRIGGER assignments_refs_insert ON assignments")
        for fn in ("assignments_parent_truncate", "assignments_parent_deleted",
                   "assignments_parent_lock",
                   "assignments_refs_update", "assignments_refs_insert"):
            op.execute(f"DROP FUNCTION {fn}()")
        for name, col, parent, ondelete in _FKS:
            op.create_foreign_key(name, "assignments", parent, [col], ["id"],
                                  ondelete=ondelete)
        return
    for trig in ("assignments_refs_insert", "assignments_refs_update",
                 "meters_cascade_assignments", "campaigns_cascade_assignments",
                 "waves_cascade_assignments"):
        op.execute(f"DROP TRIGGER {trig}")
    op.drop_index("uq_assignments_active", table_name="assignments")
    with op.batch_alter_table("assignments", recreate="always") as batch_op:
        for name, col, parent, ondelete in _FKS:
            batch_op.create_foreign_key(name, parent, [col], ["id"], ondelete=ondelete)
    op.create_index("uq_assignments_active", "assignments", ["meter_id", "component"],
                    unique=True, sqlite_where=_ACTIVE)
