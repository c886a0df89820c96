"""Baseline: the tables of commit 0aa9263, as its ``create_all`` made them.

A database made before migrations existed has these tables but no ``alembic_version``;
``bot/storage/migrate.py`` recognises it and stamps it here (or at a later revision whose
changes it already has). One that has only some of them (each feature used to create its own
tables at start) runs this revision, which creates only the missing ones.

Revision ID: 0001_baseline
Revises:
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from opencomputer.bot.storage.migrations.ops import has_table

revision = "0001_baseline"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create the 22 tables of the baseline (those a database made before migrations
    lacks: every feature created its own tables at start, so an older store may have only some).
    """
    if not has_table("access_grants"):
        op.create_table(
            "access_grants",
            sa.Column("subject", sa.String(length=300), nullable=False),
            sa.Column("role", sa.String(length=16), nullable=False),
            sa.Column("granted_by", sa.String(length=255), nullable=False),
            sa.Column("note", sa.String(length=255), nullable=False),
            sa.Column("at", sa.Float(), nullable=False),
            sa.PrimaryKeyConstraint("subject"),
        )
    if not has_table("approvals"):
        op.create_table(
            "approvals",
            sa.Column("id", sa.Integer(), nullable=False),
            sa.Column("thread_id", sa.String(length=600), nullable=False),
            sa.Column("conversation", sa.String(length=512), nullable=False),
            sa.Column("user_key", sa.String(length=300), nullable=False),
            sa.Column("user_name", sa.String(length=255), nullable=False),
            sa.Column("calls", sa.String(), nullable=False),
            sa.Column("status", sa.String(length=16), nullable=False),
            sa.Column("decided_by", sa.String(length=300), nullable=False),
            sa.Column("run_id", sa.String(length=64), nullable=False),
            sa.Column("reply_id", sa.Integer(), nullable=True),
            sa.Column("created_at", sa.Float(), nullable=False),
            sa.Column("decided_at", sa.Float(), nullable=True),
            sa.PrimaryKeyConstraint("id"),
        )
        op.create_index(
            op.f("ix_approvals_conversation"), "approvals", ["conversation"], unique=False
        )
        op.create_index(op.f("ix_approvals_reply_id"), "approvals", ["reply_id"], unique=False)
        op.create_index(op.f("ix_approvals_run_id"), "approvals", ["run_id"], unique=False)
        op.create_index(op.f("ix_approvals_status"), "approvals", ["status"], unique=False)
        op.create_index(op.f("ix_approvals_thread_id"), "approvals", ["thread_id"], unique=False)
        op.create_index(op.f("ix_approvals_user_key"), "approvals", ["user_key"], unique=False)
    if not has_table("audit_log"):
        op.create_table(
            "audit_log",
            sa.Column("id", sa.Integer(), nullable=False),
            sa.Column("seq", sa.Integer(), nullable=False),
            sa.Column("at", sa.Float(), nullable=False),
            sa.Column("actor", sa.String(length=255), nullable=False),
            sa.Column("action", sa.String(length=64), nullable=False),
            sa.Column("detail", sa.String(), nullable=False),
            sa.Column("prev_hash", sa.String(length=64), nullable=False),
            sa.Column("hash", sa.String(length=64), nullable=False),
            sa.PrimaryKeyConstraint("id"),
        )
        op.create_index(op.f("ix_audit_log_action"), "audit_log", ["action"], unique=False)
        op.create_index(op.f("ix_audit_log_actor"), "audit_log", ["actor"], unique=False)
        op.create_index(op.f("ix_audit_log_seq"), "audit_log", ["seq"], unique=True)
    if not has_table("conversations"):
        op.create_table(
            "conversations",
            sa.Column("key", sa.String(length=512), nullable=False),
            sa.Column("epoch", sa.Integer(), nullable=False),
            sa.Column("updated_at", sa.Float(), nullable=False),
            sa.PrimaryKeyConstraint("key"),
        )
    if not has_table("feedback_notes"):
        op.create_table(
            "feedback_notes",
            sa.Column("id", sa.Integer(), nullable=False),
            sa.Column("user_key", sa.String(length=255), nullable=False),
            sa.Column("conversation", sa.String(length=512), nullable=False),
            sa.Column("reply_id", sa.Integer(), nullable=True),
            sa.Column("variant_id", sa.Integer(), nullable=True),
            sa.Column("text", sa.String(), nullable=False),
            sa.Column("created_at", sa.Float(), nullable=False),
            sa.PrimaryKeyConstraint("id"),
        )
        op.create_index(
            op.f("ix_feedback_notes_reply_id"), "feedback_notes", ["reply_id"], unique=False
        )
        op.create_index(
            op.f("ix_feedback_notes_user_key"), "feedback_notes", ["user_key"], unique=False
        )
    if not has_table("feedback_votes"):
        op.create_table(
            "feedback_votes",
            sa.Column("id", sa.Integer(), nullable=False),
            sa.Column("reply_id", sa.Integer(), nullable=False),
            sa.Column("user_key", sa.String(length=255), nullable=False),
            sa.Column("variant_id", sa.Integer(), nullable=True),
            sa.Column("model", sa.String(length=255), nullable=False),
            sa.Column("conversation", sa.String(length=512), nullable=False),
            sa.Column("score", sa.Integer(), nullable=False),
            sa.Column("emoji", sa.String(length=64), nullable=False),
            sa.Column("blamed", sa.Boolean(), nullable=False),
            sa.Column("created_at", sa.Float(), nullable=False),
            sa.PrimaryKeyConstraint("id"),
            sa.UniqueConstraint("reply_id", "user_key", name="uq_feedback_vote"),
        )
        op.create_index(
            op.f("ix_feedback_votes_created_at"), "feedback_votes", ["created_at"], unique=False
        )
        op.create_index(
            op.f("ix_feedback_votes_reply_id"), "feedback_votes", ["reply_id"], unique=False
        )
        op.create_index(
            op.f("ix_feedback_votes_user_key"), "feedback_votes", ["user_key"], unique=False
        )
        op.create_index(
            op.f("ix_feedback_votes_variant_id"), "feedback_votes", ["variant_id"], unique=False
        )
    if not has_table("identity_link_codes"):
        op.create_table(
            "identity_link_codes",
            sa.Column("code", sa.String(length=16), nullable=False),
            sa.Column("user_key", sa.String(length=300), nullable=False),
            sa.Column("expires_at", sa.Float(), nullable=False),
            sa.PrimaryKeyConstraint("code"),
        )
        op.create_index(
            op.f("ix_identity_link_codes_user_key"),
            "identity_link_codes",
            ["user_key"],
            unique=False,
        )
    if not has_table("identity_links"):
        op.create_table(
            "identity_links",
            sa.Column("user_key", sa.String(length=300), nullable=False),
            sa.Column("person_id", sa.String(length=300), nullable=False),
            sa.Column("linked_at", sa.Float(), nullable=False),
            sa.PrimaryKeyConstraint("user_key"),
        )
        op.create_index(
            op.f("ix_identity_links_person_id"), "identity_links", ["person_id"], unique=False
        )
    if not has_table("inbound_messages"):
        op.create_table(
            "inbound_messages",
            sa.Column("id", sa.Integer(), nullable=False),
            sa.Column("platform", sa.String(length=32), nullable=False),
            sa.Column("event_id", sa.String(length=255), nullable=False),
            sa.Column("conversation", sa.String(length=512), nullable=False),
            sa.Column("chat_id", sa.String(length=255), nullable=False),
            sa.Column("thread_id", sa.String(length=255), nullable=True),
            sa.Column("message_id", sa.String(length=255), nullable=False),
            sa.Column("user_id", sa.String(length=255), nullable=False),
            sa.Column("user_name", sa.String(length=255), nullable=False),
            sa.Column("chat_kind", sa.String(length=16), nullable=False),
            sa.Column("text", sa.String(), nullable=False),
            sa.Column("status", sa.String(length=16), nullable=False),
            sa.Column("owner", sa.String(length=64), nullable=True),
            sa.Column("claimed_at", sa.Float(), nullable=True),
            sa.Column("error", sa.String(), nullable=True),
            sa.Column("received_at", sa.Float(), nullable=False),
            sa.PrimaryKeyConstraint("id"),
            sa.UniqueConstraint("platform", "event_id", name="uq_inbound_event"),
        )
        op.create_index(
            op.f("ix_inbound_messages_conversation"),
            "inbound_messages",
            ["conversation"],
            unique=False,
        )
        op.create_index(
            op.f("ix_inbound_messages_status"), "inbound_messages", ["status"], unique=False
        )
        op.create_index(
            op.f("ix_inbound_messages_user_id"), "inbound_messages", ["user_id"], unique=False
        )
    if not has_table("memories"):
        op.create_table(
            "memories",
            sa.Column("id", sa.Integer(), nullable=False),
            sa.Column("person", sa.String(length=255), nullable=False),
            sa.Column("text", sa.String(), nullable=False),
            sa.Column("vector", sa.LargeBinary(), nullable=False),
            sa.Column("dim", sa.Integer(), nullable=False),
            sa.Column("source", sa.String(length=512), nullable=False),
            sa.Column("created_at", sa.Float(), nullable=False),
            sa.Column("updated_at", sa.Float(), nullable=False),
            sa.PrimaryKeyConstraint("id"),
        )
        op.create_index(op.f("ix_memories_person"), "memories", ["person"], unique=False)
    if not has_table("memory_citations"):
        op.create_table(
            "memory_citations",
            sa.Column("id", sa.Integer(), nullable=False),
            sa.Column("run_id", sa.String(length=64), nullable=False),
            sa.Column("memory_id", sa.Integer(), nullable=False),
            sa.Column("score", sa.Float(), nullable=False),
            sa.Column("created_at", sa.Float(), nullable=False),
            sa.PrimaryKeyConstraint("id"),
        )
        op.create_index(
            op.f("ix_memory_citations_memory_id"), "memory_citations", ["memory_id"], unique=False
        )
        op.create_index(
            op.f("ix_memory_citations_run_id"), "memory_citations", ["run_id"], unique=False
        )
    if not has_table("model_choices"):
        op.create_table(
            "model_choices",
            sa.Column("scope", sa.String(length=512), nullable=False),
            sa.Column("model", sa.String(length=255), nullable=False),
            sa.Column("set_by", sa.String(length=255), nullable=False),
            sa.Column("at", sa.Float(), nullable=False),
            sa.PrimaryKeyConstraint("scope"),
        )
    if not has_table("pairing_codes"):
        op.create_table(
            "pairing_codes",
            sa.Column("code", sa.String(length=16), nullable=False),
            sa.Column("user_key", sa.String(length=300), nullable=False),
            sa.Column("user_name", sa.String(length=255), nullable=False),
            sa.Column("address", sa.String(length=512), nullable=False),
            sa.Column("created_at", sa.Float(), nullable=False),
            sa.Column("expires_at", sa.Float(), nullable=False),
            sa.PrimaryKeyConstraint("code"),
        )
        op.create_index(
            op.f("ix_pairing_codes_user_key"), "pairing_codes", ["user_key"], unique=False
        )
    if not has_table("plugin_state"):
        op.create_table(
            "plugin_state",
            sa.Column("id", sa.Integer(), nullable=False),
            sa.Column("plugin", sa.String(length=80), nullable=False),
            sa.Column("scope", sa.String(length=300), nullable=False),
            sa.Column("enabled", sa.Boolean(), nullable=False),
            sa.Column("updated_at", sa.Float(), nullable=False),
            sa.PrimaryKeyConstraint("id"),
            sa.UniqueConstraint("plugin", "scope"),
        )
        op.create_index(op.f("ix_plugin_state_plugin"), "plugin_state", ["plugin"], unique=False)
    if not has_table("prompt_assignments"):
        op.create_table(
            "prompt_assignments",
            sa.Column("conversation", sa.String(length=512), nullable=False),
            sa.Column("variant_id", sa.Integer(), nullable=False),
            sa.Column("epoch", sa.Integer(), nullable=False),
            sa.Column("turns", sa.Integer(), nullable=False),
            sa.Column("assigned_at", sa.Float(), nullable=False),
            sa.PrimaryKeyConstraint("conversation"),
        )
    if not has_table("prompt_tuning_events"):
        op.create_table(
            "prompt_tuning_events",
            sa.Column("id", sa.Integer(), nullable=False),
            sa.Column("at", sa.Float(), nullable=False),
            sa.Column("kind", sa.String(length=32), nullable=False),
            sa.Column("variant_id", sa.Integer(), nullable=True),
            sa.Column("actor", sa.String(length=255), nullable=False),
            sa.Column("reason", sa.String(), nullable=False),
            sa.Column("changes", sa.String(), nullable=False),
            sa.Column("undone_by", sa.Integer(), nullable=True),
            sa.PrimaryKeyConstraint("id"),
        )
        op.create_index(
            op.f("ix_prompt_tuning_events_at"), "prompt_tuning_events", ["at"], unique=False
        )
    if not has_table("prompt_variants"):
        op.create_table(
            "prompt_variants",
            sa.Column("id", sa.Integer(), nullable=False),
            sa.Column("name", sa.String(length=64), nullable=False),
            sa.Column("version", sa.Integer(), nullable=False),
            sa.Column("template", sa.String(), nullable=False),
            sa.Column("scope", sa.String(length=16), nullable=False),
            sa.Column("scope_key", sa.String(length=512), nullable=False),
            sa.Column("status", sa.String(length=16), nullable=False),
            sa.Column("author", sa.String(length=16), nullable=False),
            sa.Column("created_by", sa.String(length=255), nullable=False),
            sa.Column("parent_id", sa.Integer(), nullable=True),
            sa.Column("replaced_id", sa.Integer(), nullable=True),
            sa.Column("note", sa.String(), nullable=False),
            sa.Column("created_at", sa.Float(), nullable=False),
            sa.Column("updated_at", sa.Float(), nullable=False),
            sa.Column("promoted_at", sa.Float(), nullable=True),
            sa.ForeignKeyConstraint(
                ["parent_id"],
                ["prompt_variants.id"],
            ),
            sa.PrimaryKeyConstraint("id"),
        )
        op.create_index(op.f("ix_prompt_variants_name"), "prompt_variants", ["name"], unique=False)
        op.create_index(
            op.f("ix_prompt_variants_status"), "prompt_variants", ["status"], unique=False
        )
    if not has_table("reply_failures"):
        op.create_table(
            "reply_failures",
            sa.Column("id", sa.Integer(), nullable=False),
            sa.Column("reply_id", sa.Integer(), nullable=False),
            sa.Column("variant_id", sa.Integer(), nullable=True),
            sa.Column("conversation", sa.String(length=512), nullable=False),
            sa.Column("kind", sa.String(length=32), nullable=False),
            sa.Column("detail", sa.String(), nullable=False),
            sa.Column("created_at", sa.Float(), nullable=False),
            sa.PrimaryKeyConstraint("id"),
            sa.UniqueConstraint("reply_id"),
        )
        op.create_index(
            op.f("ix_reply_failures_variant_id"), "reply_failures", ["variant_id"], unique=False
        )
    if not has_table("schedules"):
        op.create_table(
            "schedules",
            sa.Column("id", sa.Integer(), nullable=False),
            sa.Column("person", sa.String(length=255), nullable=False),
            sa.Column("platform", sa.String(length=32), nullable=False),
            sa.Column("chat_id", sa.String(length=255), nullable=False),
            sa.Column("chat_kind", sa.String(length=16), nullable=False),
            sa.Column("thread_id", sa.String(length=255), nullable=True),
            sa.Column("user_id", sa.String(length=255), nullable=False),
            sa.Column("user_name", sa.String(length=255), nullable=False),
            sa.Column("action", sa.String(length=16), nullable=False),
            sa.Column("text", sa.String(), nullable=False),
            sa.Column("repeat", sa.String(length=255), nullable=False),
            sa.Column("tz", sa.String(length=64), nullable=False),
            sa.Column("next_run", sa.Float(), nullable=False),
            sa.Column("last_run", sa.Float(), nullable=True),
            sa.Column("runs", sa.Integer(), nullable=False),
            sa.Column("status", sa.String(length=16), nullable=False),
            sa.Column("created_at", sa.Float(), nullable=False),
            sa.PrimaryKeyConstraint("id"),
        )
        op.create_index(op.f("ix_schedules_next_run"), "schedules", ["next_run"], unique=False)
        op.create_index(op.f("ix_schedules_person"), "schedules", ["person"], unique=False)
        op.create_index(op.f("ix_schedules_status"), "schedules", ["status"], unique=False)
    if not has_table("replies"):
        op.create_table(
            "replies",
            sa.Column("id", sa.Integer(), nullable=False),
            sa.Column("inbound_id", sa.Integer(), nullable=True),
            sa.Column("conversation", sa.String(length=512), nullable=False),
            sa.Column("platform", sa.String(length=32), nullable=False),
            sa.Column("chat_id", sa.String(length=255), nullable=False),
            sa.Column("thread_id", sa.String(length=255), nullable=True),
            sa.Column("text", sa.String(), nullable=False),
            sa.Column("status", sa.String(length=16), nullable=False),
            sa.Column("model", sa.String(length=255), nullable=False),
            sa.Column("variant_id", sa.Integer(), nullable=True),
            sa.Column("run_id", sa.String(length=64), nullable=False),
            sa.Column("failure", sa.String(), nullable=True),
            sa.Column("created_at", sa.Float(), nullable=False),
            sa.Column("sent_at", sa.Float(), nullable=True),
            sa.ForeignKeyConstraint(
                ["inbound_id"],
                ["inbound_messages.id"],
            ),
            sa.PrimaryKeyConstraint("id"),
        )
        op.create_index(op.f("ix_replies_conversation"), "replies", ["conversation"], unique=False)
        op.create_index(op.f("ix_replies_inbound_id"), "replies", ["inbound_id"], unique=False)
        op.create_index(op.f("ix_replies_status"), "replies", ["status"], unique=False)
        op.create_index(op.f("ix_replies_variant_id"), "replies", ["variant_id"], unique=False)
    if not has_table("reactions"):
        op.create_table(
            "reactions",
            sa.Column("id", sa.Integer(), nullable=False),
            sa.Column("platform", sa.String(length=32), nullable=False),
            sa.Column("chat_id", sa.String(length=255), nullable=False),
            sa.Column("message_id", sa.String(length=255), nullable=False),
            sa.Column("reply_id", sa.Integer(), nullable=True),
            sa.Column("user_id", sa.String(length=255), nullable=False),
            sa.Column("emoji", sa.String(length=64), nullable=False),
            sa.Column("created_at", sa.Float(), nullable=False),
            sa.ForeignKeyConstraint(
                ["reply_id"],
                ["replies.id"],
            ),
            sa.PrimaryKeyConstraint("id"),
            sa.UniqueConstraint(
                "platform", "chat_id", "message_id", "user_id", "emoji", name="uq_react"
            ),
        )
        op.create_index(op.f("ix_reactions_reply_id"), "reactions", ["reply_id"], unique=False)
    if not has_table("reply_parts"):
        op.create_table(
            "reply_parts",
            sa.Column("id", sa.Integer(), nullable=False),
            sa.Column("reply_id", sa.Integer(), nullable=False),
            sa.Column("platform", sa.String(length=32), nullable=False),
            sa.Column("chat_id", sa.String(length=255), nullable=False),
            sa.Column("message_id", sa.String(length=255), nullable=False),
            sa.Column("position", sa.Integer(), nullable=False),
            sa.ForeignKeyConstraint(
                ["reply_id"],
                ["replies.id"],
            ),
            sa.PrimaryKeyConstraint("id"),
            sa.UniqueConstraint("platform", "chat_id", "message_id", name="uq_reply_part"),
        )
        op.create_index(op.f("ix_reply_parts_reply_id"), "reply_parts", ["reply_id"], unique=False)


def downgrade() -> None:
    """Not supported: restore the backup taken before the upgrade instead."""
    raise NotImplementedError("downgrades are not supported; restore a backup")
