"""Initial UMS schema: every table of amiup.ums.models as first released.

Revision ID: 0001
Revises: (none)
Create Date: 2026-11-28 22:27:45.376864
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

# Types spelled once: JSONB on PostgreSQL, ROWID-alias integer keys on SQLite.
JSON_T = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
# Active assignment states: one per meter component across campaigns (UMS-12).
ACTIVE = sa.text(
    "state IN ('pending', 'offered', 'transferring', 'transferred', 'verified', "
    "'scheduled', 'activated')"
)

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audit",
        sa.Column("seq", BIG_ID, autoincrement=False, nullable=False),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.Column("at", sa.Float(), nullable=False),
        sa.Column("actor", sa.String(length=64), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("object", sa.String(length=128), nullable=False),
        sa.Column("before", sa.Text(), nullable=True),
        sa.Column("after", sa.Text(), nullable=True),
        sa.Column("outcome", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_audit")),
        sa.UniqueConstraint("hash", name=op.f("uq_audit_hash")),
    )
    with op.batch_alter_table("audit", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_audit_action"), ["action"], unique=False)

    op.create_table(
        "groups",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("filter_expr", sa.Text(), nullable=True),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_groups")),
        sa.UniqueConstraint("name", name=op.f("uq_groups_name")),
    )
    op.create_table(
        "meters",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("serial", sa.String(length=64), nullable=False),
        sa.Column("vendor", sa.String(length=128), nullable=False),
        sa.Column("model", sa.String(length=128), nullable=False),
        sa.Column("hw_rev", sa.String(length=64), nullable=False),
        sa.Column("region", sa.String(length=64), nullable=False),
        sa.Column("cell", sa.String(length=64), nullable=False),
        sa.Column("groups", JSON_T, nullable=False),
        sa.Column("attributes", JSON_T, nullable=False),
        sa.Column("public_key_der", sa.LargeBinary(), nullable=True),
        sa.Column("report_nonce", sa.String(length=64), nullable=True),
        sa.Column("order_counter", sa.BigInteger(), nullable=False),
        sa.Column("last_contact", sa.Float(), nullable=True),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_meters")),
        sa.UniqueConstraint("serial", name=op.f("uq_meters_serial")),
    )
    with op.batch_alter_table("meters", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_meters_cell"), ["cell"], unique=False)
        batch_op.create_index(batch_op.f("ix_meters_last_contact"), ["last_contact"], unique=False)
        batch_op.create_index(batch_op.f("ix_meters_model"), ["model"], unique=False)
        batch_op.create_index(batch_op.f("ix_meters_region"), ["region"], unique=False)

    op.create_table(
        "packages",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("file_sha256", sa.String(length=64), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("vendor", sa.String(length=128), nullable=False),
        sa.Column("model", sa.String(length=128), nullable=False),
        sa.Column("hw_revs", JSON_T, nullable=False),
        sa.Column("component", sa.String(length=32), nullable=False),
        sa.Column("version", sa.String(length=64), nullable=False),
        sa.Column("version_key", sa.String(length=128), nullable=True),
        sa.Column("security_seq", sa.BigInteger(), nullable=False),
        sa.Column("payload_kind", sa.String(length=16), nullable=False),
        sa.Column("from_sha256", sa.String(length=64), nullable=True),
        sa.Column("encrypted", sa.Boolean(), nullable=False),
        sa.Column("metrology", sa.Boolean(), nullable=False),
        sa.Column("legal_ref", sa.String(length=128), nullable=True),
        sa.Column("manifest", JSON_T, nullable=False),
        sa.Column("signer_ids", JSON_T, nullable=False),
        sa.Column("notes", sa.Text(), nullable=False),
        sa.Column("uploaded_by", sa.String(length=64), nullable=False),
        sa.Column("uploaded_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_packages")),
        sa.UniqueConstraint("digest", name=op.f("uq_packages_digest")),
        sa.UniqueConstraint("file_sha256", name=op.f("uq_packages_file_sha256")),
    )
    with op.batch_alter_table("packages", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_packages_vendor_model_component_version_key"),
            ["vendor", "model", "component", "version_key"],
            unique=False,
        )

    op.create_table(
        "users",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("username", sa.String(length=64), nullable=False),
        sa.Column("password_hash", sa.String(length=255), nullable=True),
        sa.Column("roles", JSON_T, nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("username", name=op.f("uq_users_username")),
    )
    op.create_table(
        "vendor_keys",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("vendor", sa.String(length=128), nullable=False),
        sa.Column("key_id", sa.String(length=64), nullable=False),
        sa.Column("public_der", sa.LargeBinary(), nullable=False),
        sa.Column("added_by", sa.String(length=64), nullable=False),
        sa.Column("added_at", sa.Float(), nullable=False),
        sa.Column("revoked", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_vendor_keys")),
        sa.UniqueConstraint("key_id", name=op.f("uq_vendor_keys_key_id")),
    )
    with op.batch_alter_table("vendor_keys", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_vendor_keys_vendor"), ["vendor"], unique=False)

    op.create_table(
        "api_tokens",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("user_id", BIG_ID, nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("prefix", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=True),
        sa.Column("last_used_at", sa.Float(), nullable=True),
        sa.Column("revoked", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_api_tokens_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_tokens")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_api_tokens_token_hash")),
    )
    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_api_tokens_user_id"), ["user_id"], unique=False)

    op.create_table(
        "campaigns",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("package_id", BIG_ID, nullable=False),
        sa.Column("component", sa.String(length=32), nullable=False),
        sa.Column("metrology", sa.Boolean(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("target", JSON_T, nullable=False),
        sa.Column("waves_plan", JSON_T, nullable=False),
        sa.Column("success_gate", sa.Float(), nullable=False),
        sa.Column("failure_threshold", sa.Float(), nullable=False),
        sa.Column("windows", JSON_T, nullable=False),
        sa.Column("blackout_dates", JSON_T, nullable=False),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("activation", JSON_T, nullable=False),
        sa.Column("retry", JSON_T, nullable=False),
        sa.Column("assignment_timeout_s", sa.Float(), nullable=False),
        sa.Column("deadline", sa.Float(), nullable=True),
        sa.Column("allow_downgrade", sa.Boolean(), nullable=False),
        sa.Column("created_by", BIG_ID, nullable=False),
        sa.Column("approved_by", BIG_ID, nullable=True),
        sa.Column("state_reason", sa.Text(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("approved_at", sa.Float(), nullable=True),
        sa.Column("started_at", sa.Float(), nullable=True),
        sa.Column("finished_at", sa.Float(), nullable=True),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["approved_by"], ["users.id"], name=op.f("fk_campaigns_approved_by_users")
        ),
        sa.ForeignKeyConstraint(
            ["created_by"], ["users.id"], name=op.f("fk_campaigns_created_by_users")
        ),
        sa.ForeignKeyConstraint(
            ["package_id"], ["packages.id"], name=op.f("fk_campaigns_package_id_packages")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_campaigns")),
    )
    with op.batch_alter_table("campaigns", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_campaigns_state"), ["state"], unique=False)

    op.create_table(
        "group_members",
        sa.Column("group_id", BIG_ID, nullable=False),
        sa.Column("meter_id", BIG_ID, nullable=False),
        sa.ForeignKeyConstraint(
            ["group_id"],
            ["groups.id"],
            name=op.f("fk_group_members_group_id_groups"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["meter_id"],
            ["meters.id"],
            name=op.f("fk_group_members_meter_id_meters"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("group_id", "meter_id", name=op.f("pk_group_members")),
    )
    with op.batch_alter_table("group_members", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_group_members_meter_id"), ["meter_id"], unique=False)

    op.create_table(
        "meter_components",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("meter_id", BIG_ID, nullable=False),
        sa.Column("component", sa.String(length=32), nullable=False),
        sa.Column("running_version", sa.String(length=64), nullable=False),
        sa.Column("running_key", sa.String(length=128), nullable=True),
        sa.Column("running_sha256", sa.String(length=64), nullable=True),
        sa.Column("staged_version", sa.String(length=64), nullable=True),
        sa.Column("staged_key", sa.String(length=128), nullable=True),
        sa.Column("security_seq", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["meter_id"],
            ["meters.id"],
            name=op.f("fk_meter_components_meter_id_meters"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_meter_components")),
        sa.UniqueConstraint(
            "meter_id", "component", name=op.f("uq_meter_components_meter_id_component")
        ),
    )
    with op.batch_alter_table("meter_components", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_meter_components_component_running_key"),
            ["component", "running_key"],
            unique=False,
        )

    op.create_table(
        "meter_events",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("meter_id", BIG_ID, nullable=False),
        sa.Column("at", sa.Float(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("component", sa.String(length=32), nullable=True),
        sa.Column("code", sa.String(length=64), nullable=True),
        sa.Column("data", JSON_T, nullable=False),
        sa.Column("campaign_id", sa.BigInteger(), nullable=True),
        sa.Column("assignment_id", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(
            ["meter_id"],
            ["meters.id"],
            name=op.f("fk_meter_events_meter_id_meters"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_meter_events")),
    )
    with op.batch_alter_table("meter_events", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_meter_events_meter_id_at"), ["meter_id", "at"], unique=False
        )

    op.create_table(
        "waves",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("campaign_id", BIG_ID, nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("planned", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.Float(), nullable=True),
        sa.Column("finished_at", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["campaigns.id"],
            name=op.f("fk_waves_campaign_id_campaigns"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_waves")),
        sa.UniqueConstraint("campaign_id", "number", name=op.f("uq_waves_campaign_id_number")),
    )
    op.create_table(
        "assignments",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("campaign_id", BIG_ID, nullable=False),
        sa.Column("wave_id", BIG_ID, nullable=True),
        sa.Column("meter_id", BIG_ID, nullable=False),
        sa.Column("component", sa.String(length=32), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("error_code", sa.String(length=64), nullable=True),
        sa.Column("retriable", sa.Boolean(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.Float(), nullable=True),
        sa.Column("deadline", sa.Float(), nullable=True),
        sa.Column("order_counter", sa.BigInteger(), nullable=True),
        sa.Column("claimed_by", sa.String(length=64), nullable=True),
        sa.Column("lease_until", sa.Float(), nullable=True),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.Column("confirmed_at", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["campaigns.id"],
            name=op.f("fk_assignments_campaign_id_campaigns"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["meter_id"],
            ["meters.id"],
            name=op.f("fk_assignments_meter_id_meters"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["wave_id"],
            ["waves.id"],
            name=op.f("fk_assignments_wave_id_waves"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_assignments")),
        sa.UniqueConstraint(
            "campaign_id",
            "meter_id",
            "component",
            name=op.f("uq_assignments_campaign_id_meter_id_component"),
        ),
    )
    with op.batch_alter_table("assignments", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_assignments_campaign_id_state"), ["campaign_id", "state"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_assignments_state_next_attempt_at"),
            ["state", "next_attempt_at"],
            unique=False,
        )
        batch_op.create_index(
            batch_op.f("ix_assignments_wave_id_state"), ["wave_id", "state"], unique=False
        )
        batch_op.create_index(
            "uq_assignments_active",
            ["meter_id", "component"],
            unique=True,
            sqlite_where=ACTIVE,
            postgresql_where=ACTIVE,
        )


def downgrade() -> None:
    with op.batch_alter_table("assignments", schema=None) as batch_op:
        batch_op.drop_index("uq_assignments_active", sqlite_where=ACTIVE, postgresql_where=ACTIVE)
        batch_op.drop_index(batch_op.f("ix_assignments_wave_id_state"))
        batch_op.drop_index(batch_op.f("ix_assignments_state_next_attempt_at"))
        batch_op.drop_index(batch_op.f("ix_assignments_campaign_id_state"))

    op.drop_table("assignments")
    op.drop_table("waves")
    with op.batch_alter_table("meter_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_meter_events_meter_id_at"))

    op.drop_table("meter_events")
    with op.batch_alter_table("meter_components", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_meter_components_component_running_key"))

    op.drop_table("meter_components")
    with op.batch_alter_table("group_members", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_group_members_meter_id"))

    op.drop_table("group_members")
    with op.batch_alter_table("campaigns", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_campaigns_state"))

    op.drop_table("campaigns")
    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_api_tokens_user_id"))

    op.drop_table("api_tokens")
    with op.batch_alter_table("vendor_keys", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_vendor_keys_vendor"))

    op.drop_table("vendor_keys")
    op.drop_table("users")
    with op.batch_alter_table("packages", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_packages_vendor_model_component_version_key"))

    op.drop_table("packages")
    with op.batch_alter_table("meters", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_meters_region"))
        batch_op.drop_index(batch_op.f("ix_meters_model"))
        batch_op.drop_index(batch_op.f("ix_meters_last_contact"))
        batch_op.drop_index(batch_op.f("ix_meters_cell"))

    op.drop_table("meters")
    op.drop_table("groups")
    with op.batch_alter_table("audit", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_audit_action"))

    op.drop_table("audit")
