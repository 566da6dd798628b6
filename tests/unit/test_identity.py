"""Actor assertions (tansiq.identity) and the role matrix (tansiq.contracts.actor), without services."""

import stat

import pytest
from marshmallow import ValidationError

from tansiq.contracts.actor import MATRIX, Actor, allows
from tansiq.errors import Forbidden, InvalidActor
from tansiq.identity import ActorSigner, ActorVerifier, load_or_create_signing_key, load_public_key

FATIMA = {"id": "s-safi-1", "association": "amal-safi", "roles": ["case_worker"], "name": "Fatima", "language": "ar"}


def test_an_assertion_carries_the_actor_to_the_services_it_names_only():
    signer = ActorSigner.generate()
    assertion = signer.sign(FATIMA, "referrals", "intake")
    for service in ("referrals", "intake"):
        actor = signer.verifier(service).actor(assertion)
        assert (actor.id, actor.association, actor.roles, actor.language) == (
            "s-safi-1", "amal-safi", frozenset({"case_worker"}), "ar")
    with pytest.raises(InvalidActor, match="not meant for events"):
        signer.verifier("events").actor(assertion)


def test_an_assertion_lives_a_minute():
    now = [1_000_000.0]
    signer = ActorSigner.generate(clock=lambda: now[0])
    verifier = ActorVerifier(signer.public_key(), "intake", clock=lambda: now[0])
    assertion = signer.sign(FATIMA, "intake")
    now[0] += 59
    assert verifier.actor(assertion).id == "s-safi-1"
    now[0] += 1
    with pytest.raises(InvalidActor, match="expired"):
        verifier.actor(assertion)


@pytest.mark.parametrize("staff", [{**FATIMA, "roles": ["superuser"]}, {**FATIMA, "association": "Not A Slug"},
                                   {"association": "amal-safi", "roles": []}])
def test_the_gateway_refuses_to_sign_what_no_service_would_accept(staff):
    with pytest.raises(ValidationError):
        ActorSigner.generate().sign(staff, "intake")


def test_keys_are_created_once_private_0600_and_services_fail_closed_without_one(tmp_path):
    private, public = tmp_path / "keys" / "actor-signing.key", tmp_path / "keys" / "actor-signing.pub"
    with pytest.raises(InvalidActor):  # a service started before any gateway believes no one
        load_public_key(public)
    key = load_or_create_signing_key(private, public)
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    again = load_or_create_signing_key(private, public)
    assert again.public_key().public_bytes_raw() == key.public_key().public_bytes_raw()
    assertion = ActorSigner(key).sign(FATIMA, "intake")
    assert ActorVerifier(load_public_key(public), "intake").actor(assertion).id == "s-safi-1"


def test_the_matrix_gives_case_detail_to_case_workers_only():
    readers = {permission: roles for permission, roles in MATRIX.items() if permission.startswith(("cases.read",
                                                                                                  "referrals."))}
    assert all(roles == {"case_worker"} for roles in readers.values())
    assert not allows(["coordinator", "admin", "events_manager"], "cases.read")
    assert allows(["events_manager"], "calendar.edit") and not allows(["events_manager"], "referrals.read")
    with pytest.raises(Forbidden) as refused:
        Actor(association="amal-safi", id="s-safi-3", roles=frozenset({"events_manager"})).require("cases.read")
    assert refused.value.details == {"reason": "role_required", "permission": "cases.read"}
    with pytest.raises(ValueError):
        allows(["admin"], "cases.everything")


def test_every_gateway_route_declares_who_may_use_it_or_is_public_on_purpose():
    """A new route without a permission of the matrix fails here until someone decides (services.gateway.routes)."""
    from services.gateway.routes import declared_routes, undeclared_entrypoints
    from services.gateway.service import GatewayService

    assert undeclared_entrypoints(GatewayService) == []
    without_permission = {d.name: d.auth for d in declared_routes(GatewayService) if d.permission is None}
    public = {"healthz", "openapi_document", "login", "logout", "login_page", "login_form", "logout_form", "static",
              "events_venues", "ical_network", "ical_city", "ical_association", "ical_event"}
    # an event's own page and search: the public reads public events, staff the network's too
    optional = {"home", "calendar_page", "events_list", "occurrences_page", "events_get", "event_details_page",
                "calendar_search_page"}
    # nothing personal, or checked later (any staff member registers her own association)
    any_session = {"me", "directory_services", "events_register", "event_page", "event_register_page",
                   "event_register_submit"}
    assert without_permission == {**dict.fromkeys(public, "public"), **dict.fromkeys(optional, "optional"),
                                  **dict.fromkeys(any_session, "signed_in")}
