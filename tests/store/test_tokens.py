import pytest

from modelyard.core.errors import Conflict, InvalidInput, NotFound, Unauthorized
from modelyard.store.tokens import TokenStore, hash_token, role_allows


def test_token_lifecycle(workspace):
    store = TokenStore(workspace.engine)
    info, secret = store.create("ci", "editor", created_by="admin")
    assert secret.startswith("myd_") and len(secret) > 40
    assert store.authenticate(secret).id == info.id
    with workspace.engine.connect() as conn:
        stored = conn.exec_driver_sql("SELECT token_hash FROM tokens").scalars().all()
    assert stored == [hash_token(secret)], "only the hash is stored"
    assert secret not in str(store.list()[0].to_dict())
    store.revoke(info.id)
    with pytest.raises(Unauthorized, match="revoked"):
        store.authenticate(secret)
    with pytest.raises(Conflict):
        store.revoke(info.id)


def test_bad_tokens_are_unauthorized(workspace):
    store = TokenStore(workspace.engine)
    store.create("a", "viewer")
    for secret in (None, "", "myd_wrong"):
        with pytest.raises(Unauthorized):
            store.authenticate(secret)


def test_validation(workspace):
    store = TokenStore(workspace.engine)
    with pytest.raises(InvalidInput, match="role"):
        store.create("x", "root")
    with pytest.raises(InvalidInput, match="name"):
        store.create("  ", "viewer")
    with pytest.raises(NotFound):
        store.revoke("tok_missing")


def test_roles_are_ordered():
    assert role_allows("admin", "editor") and role_allows("editor", "viewer")
    assert not role_allows("viewer", "editor") and not role_allows("editor", "admin")
