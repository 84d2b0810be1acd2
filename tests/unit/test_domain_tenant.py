"""The Tenant aggregate: keys issued, expired, revoked; signing secrets rotated."""

from datetime import UTC, datetime, timedelta

import pytest

from domain.errors import InvalidRequestError
from domain.tenant import ApiKeyNotFoundError, Tenant, check_tenant_name, tenant_id_for

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _tenant() -> Tenant:
    tenant = Tenant.register("acme", "sealed-1", T0)
    tenant.issue_key("k1", "dc_acme_k1", "hash1", T0)
    return tenant


@pytest.mark.parametrize("name", ["", "Acme", "-acme", "a b", "a_b", "x" * 64, "é"])
def test_tenant_names_are_checked(name: str) -> None:
    with pytest.raises(InvalidRequestError):
        check_tenant_name(name)


def test_the_id_is_the_names() -> None:
    assert _tenant().id == tenant_id_for("acme") != tenant_id_for("acme2")


def test_an_issued_key_is_active_until_revoked() -> None:
    tenant = _tenant()
    assert tenant.key_for("k1", T0) is not None
    tenant.revoke_key("k1", T0 + timedelta(seconds=5))
    assert tenant.key_for("k1", T0 + timedelta(seconds=5)) is None
    assert tenant.keys["k1"].revoked_at == T0 + timedelta(seconds=5)
    with pytest.raises(ApiKeyNotFoundError):
        tenant.revoke_key("k1", T0 + timedelta(seconds=6))


def test_an_expiring_key_works_until_its_expiry() -> None:
    tenant = _tenant()
    tenant.expire_key("k1", T0 + timedelta(hours=1), T0)
    assert tenant.key_for("k1", T0 + timedelta(minutes=59)) is not None
    assert tenant.key_for("k1", T0 + timedelta(hours=1)) is None


def test_an_unknown_key_cannot_be_expired() -> None:
    with pytest.raises(ApiKeyNotFoundError):
        _tenant().expire_key("nope", T0, T0)


def test_a_rotation_signs_with_both_secrets_until_the_grace_ends() -> None:
    tenant = _tenant()
    tenant.rotate_signing_secret("sealed-2", T0, T0 + timedelta(hours=24))
    assert [s.sealed for s in tenant.signing_secrets_at(T0)] == ["sealed-2", "sealed-1"]
    later = T0 + timedelta(hours=24)
    assert [s.sealed for s in tenant.signing_secrets_at(later)] == ["sealed-2"]


def test_a_second_rotation_does_not_extend_an_older_secret() -> None:
    tenant = _tenant()
    tenant.rotate_signing_secret("sealed-2", T0, T0 + timedelta(hours=1))
    tenant.rotate_signing_secret("sealed-3", T0 + timedelta(minutes=10), T0 + timedelta(hours=24))
    at = T0 + timedelta(hours=2)
    assert [s.sealed for s in tenant.signing_secrets_at(at)] == ["sealed-3", "sealed-2"]


def test_the_state_is_rebuilt_from_its_events() -> None:
    tenant = _tenant()
    tenant.expire_key("k1", T0 + timedelta(hours=1), T0)
    tenant.issue_key("k2", "dc_acme_k2", "hash2", T0, rate_per_second=5.0, burst=10)
    tenant.rotate_signing_secret("sealed-2", T0, T0 + timedelta(hours=1))
    replayed = None
    for event in tenant.collect_events():
        replayed = event.mutate(replayed)
    assert isinstance(replayed, Tenant)
    assert replayed.keys == tenant.keys
    assert replayed.signing_secrets == tenant.signing_secrets
