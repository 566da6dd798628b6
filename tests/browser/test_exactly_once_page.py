"""The intake page sends its form again with the same Idempotency-Key: an answer lost on the way registers
her once (the real gateway and intake; the answer is lost between the gateway and the page)."""

import pytest
from sqlalchemy import select
from test_webapp import sign_in

from services.intake.models import Beneficiary
from tansiq import config
from tansiq.db import make_engine, session_scope

pytestmark = pytest.mark.browser


def beneficiaries(network):
    engine = make_engine(config.load("intake", environ=network.env)["DB_URI"])
    try:
        with session_scope(engine) as session:
            return set(session.scalars(select(Beneficiary.id)).all())
    finally:
        engine.dispose()


def test_a_form_sent_again_after_a_lost_answer_registers_her_once(network, phone):
    from playwright.sync_api import expect

    fatima = phone("fr-FR")
    sign_in(fatima, network.web, "/intake?lang=fr", "fatima@amal-safi.example")
    before = beneficiaries(network)
    keys = []

    def lose_the_first_answer(route):
        keys.append(route.request.headers.get("idempotency-key"))
        if len(keys) == 1:
            route.fetch()  # the gateway and intake carry it out...
            route.abort("connectionreset")  # ...and the answer never reaches the page
        else:
            route.continue_()

    fatima.route("**/api/beneficiaries", lose_the_first_answer)
    form = fatima.locator("#intake-form")
    form.locator("input[name=first_name]").fill("Zineb")
    form.locator("input[name=needs][value=shelter]").check()
    form.locator("button[type=submit]").click()
    expect(form.locator(".error")).to_be_visible()
    assert len(beneficiaries(network) - before) == 1  # it was registered, though the page could not know

    form.locator("button[type=submit]").click()  # she sends it again
    result = fatima.locator("#intake-result")
    expect(result).to_be_visible()
    registered = result.locator(".result-id").inner_text().strip()
    assert beneficiaries(network) - before == {registered}  # once
    assert keys[0] and keys[0] == keys[1]
