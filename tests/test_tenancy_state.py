"""The tenant kind's typed commands and pure rules, without an event loop:
a body of the wrong type fails alone with 422 naming its field, rules
refuse without changing the state, and events carry their own wire view."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from hubbub.actors.command import Command, CommandCodec, encode_commands
from hubbub.errors import AppError
from hubbub.tenancy import state as rules
from hubbub.tenancy.commands import (
    ChangeRole,
    CreateTenant,
    RemoveMember,
    SetPlan,
    TenantCommand,
)
from hubbub.tenancy.events import MemberRemoved, MemberRoleChanged, TenantDeleted
from hubbub.tenancy.records import TenantState

NOW = datetime(2030, 1, 1, tzinfo=UTC)


def _tenant() -> TenantState:
    create = CreateTenant(
        "u1", tenant_id="t1", name="T", slug="tee", plan="free", timezone="UTC", locale="en"
    )
    state = None
    for event in rules.decide(None, create, NOW):
        state = rules.apply(state, event)
    assert state is not None
    return state


def test_a_body_of_the_wrong_type_fails_alone_naming_its_field() -> None:
    good = Command("tenant", "t1", SetPlan("pro"), "t1")
    bad = Command("tenant", "t1", SetPlan(5), "t1")  # type: ignore[arg-type]
    decoded = CommandCodec(TenantCommand).decode(encode_commands([bad, good]))
    assert isinstance(decoded[0], AppError) and decoded[0].status == 422
    assert decoded[0].code == "validation_failed" and decoded[0].errors[0].field == "plan"
    assert isinstance(decoded[1], Command) and decoded[1].body == SetPlan("pro")


def test_apply_changes_the_state_in_place_and_counts_published_events() -> None:
    state = _tenant()
    assert state.members["u1"].role == "owner" and state.seq == 1
    (changed,) = rules.decide(state, SetPlan("pro", by="staff"), NOW)
    assert rules.apply(state, changed) is state
    assert (state.plan, state.seq) == ("pro", 2)
    assert rules.decide(state, SetPlan("pro"), NOW) == []


def test_a_refused_command_changes_nothing() -> None:
    state = _tenant()
    with pytest.raises(AppError) as refused:
        rules.decide(state, ChangeRole("u1", user_id="u1", role="admin"), NOW)
    assert refused.value.code == "last_owner"
    with pytest.raises(AppError) as refused:
        rules.decide(state, ChangeRole("u1", user_id="u1", role="boss"), NOW)
    assert (refused.value.code, refused.value.status) == ("validation_failed", 422)
    with pytest.raises(AppError) as refused:
        rules.decide(state, RemoveMember("stranger", user_id="u1"), NOW)
    assert refused.value.code == "not_found"
    assert state.members["u1"].role == "owner" and state.seq == 1


def test_events_carry_their_wire_view() -> None:
    removed = MemberRemoved("u2", "member", left=True)
    assert removed.wire_name == "tenant:member_removed"
    assert removed.payload() == {"user_id": "u2", "left": True}
    assert removed.access_revoked() == {"user_id": "u2"}
    deleted = TenantDeleted(NOW, NOW)
    assert deleted.payload() == {"purge_after": NOW.isoformat()}
    assert deleted.access_revoked() == {"user_id": None}


def test_only_a_lowered_role_is_published_on_the_access_topic() -> None:
    lowered = MemberRoleChanged("u2", role="member", previous="admin")
    assert lowered.role_lowered() == {"user_id": "u2", "role": "member"}
    assert lowered.access_revoked() is None
    assert MemberRoleChanged("u2", role="admin", previous="member").role_lowered() is None
    assert MemberRoleChanged("u2", role="admin", previous="admin").role_lowered() is None
    assert MemberRemoved("u2", "admin", left=False).role_lowered() is None
