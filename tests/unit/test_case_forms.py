"""Her case and the referral's story without JavaScript: the beneficiaries list finds a returning woman by
phone or name as typed (Arabic or Latin), keeps its filters across pages; the forms of her record and of a
referral post to the server, refuse an irreversible step until it is confirmed (without calling any service),
and send the browser back where it was. The services are stubbed: the edge of the unit."""

from urllib.parse import urlencode

import pytest
from actors import verifier  # tests/actors.py
from gateway_sessions import directory_sessions
from test_webapp_pages import (  # tests/unit/test_webapp_pages.py
    ASSOCIATIONS,
    BENEFICIARIES,
    EVENTS,
    HISTORY,
    RECORD,
    REFERRAL_RECEIVED,
    SENDER,
    SENT,
    Gateway,
    Stub,
    record_gateway,
    request,
)
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request

from services.gateway import web
from services.gateway.service import GatewayService
from tansiq import i18n

FATIMA = {"id": "s-safi-1", "association": "amal-safi", "roles": ["case_worker"], "language": "fr",
          "name": "Fatima Zahra"}
NAIMA = {"id": "s-wafae-1", "association": "wafae-marrakech", "roles": ["case_worker"], "language": "ar",
         "name": "Naima"}
ADMIN = {"id": "s-safi-9", "association": "amal-safi", "roles": ["admin"], "language": "fr", "name": "Admin"}


@pytest.fixture
def sessions(tmp_path):
    with directory_sessions(tmp_path) as sessions:
        yield sessions


def form_post(sessions, path, fields, who=FATIMA, csrf=True):
    token = sessions.signed_in(who)
    if csrf:
        fields = {**fields, "csrf_token": sessions.directory.session_staff(token)["csrf_token"]}
    headers = {"Host": "127.0.0.1:8000", "Origin": "http://127.0.0.1:8000",
               "Cookie": f"{web.SESSION_COOKIE}={token}"}
    return Request(EnvironBuilder(path=path, method="POST", headers=headers, data=urlencode(fields, doseq=True),
                                  content_type="application/x-www-form-urlencoded").get_environ())


def test_a_returning_woman_is_looked_for_by_phone_or_by_name_as_typed(sessions):
    intake = Stub(list_beneficiaries=BENEFICIARIES)
    token = sessions.signed_in(FATIMA)
    for typed, search in (("+212 6 61-23 45 67", {"phone": "+212 6 61-23 45 67"}),
                          ("خديجة بناني", {"name": "خديجة بناني"}), ("khadija BENNANI", {"name": "khadija BENNANI"})):
        html = GatewayService.beneficiaries_page(
            Gateway(intake_rpc=intake), request(f"/beneficiaries?{urlencode({'q': typed, 'lang': 'ar'})}", token)
        ).get_data(as_text=True)
        name, (actor,), kwargs = intake.calls[-1]
        assert name == "list_beneficiaries" and verifier("intake").actor(actor).id == FATIMA["id"]
        assert {key: kwargs[key] for key in ("phone", "name") if key in kwargs} == search
        assert 'href="/beneficiaries/b-1?lang=ar"' in html and 'dir="rtl"' in html


def test_the_list_filters_by_kind_and_date_and_its_next_page_keeps_them(sessions):
    intake = Stub(list_beneficiaries=BENEFICIARIES)
    response = GatewayService.beneficiaries_page(
        Gateway(intake_rpc=intake),
        request("/beneficiaries?kind=survivor&registered_since=2026-11-01&lang=fr", sessions.signed_in(FATIMA)))
    html = response.get_data(as_text=True)
    assert response.status_code == 200 and response.headers["Cache-Control"] == "no-store"
    kwargs = intake.calls[-1][2]
    assert (kwargs["kind"], kwargs["registered_since"], kwargs["cursor"]) == ("survivor", "2026-11-01", None)
    assert "phone" not in kwargs and "name" not in kwargs
    more = html.split('id="beneficiaries-more"')[0].rsplit('href="', 1)[1].split('"')[0].replace("&amp;", "&")
    assert more == "/beneficiaries?kind=survivor&lang=fr&registered_since=2026-11-01&cursor=bmV4dA"
    assert '<option value="survivor" selected>' in html
    refused = GatewayService.beneficiaries_page(Gateway(intake_rpc=intake),
                                                request("/beneficiaries?kind=nobody", sessions.signed_in(FATIMA)))
    assert refused.status_code == 422 and len(intake.calls) == 1  # refused before any service


def test_a_follow_up_session_is_added_once_and_she_is_back_on_her_record(sessions):
    intake = Stub(add_session={"id": "l-2"})
    fields = {"needs": ["shelter", "legal_orientation"], "urgency": "high", "notes": "Revenue avec sa fille",
              "idempotency_key": "k-123-session"}
    response = GatewayService.session_form(Gateway(intake_rpc=intake),
                                           form_post(sessions, "/beneficiaries/b-1/sessions?lang=ar", fields),
                                           beneficiary_id="b-1")
    assert response.status_code == 303 and response.headers["Location"] == "/beneficiaries/b-1?lang=ar#sessions"
    [(name, (beneficiary_id, body, actor), kwargs)] = intake.calls
    assert (name, beneficiary_id, kwargs) == ("add_session", "b-1", {"idempotency_key": "k-123-session"})
    assert body["needs"] == ["shelter", "legal_orientation"] and body["urgency"] == "high"
    assert "csrf_token" not in body and "idempotency_key" not in body
    one_need = {**fields, "needs": "shelter"}  # one ticked box arrives as a single value
    GatewayService.session_form(Gateway(intake_rpc=intake),
                                form_post(sessions, "/beneficiaries/b-1/sessions", one_need), beneficiary_id="b-1")
    assert intake.calls[-1][1][1]["needs"] == ["shelter"]


@pytest.mark.parametrize("lang", ["ar", "fr"])
def test_a_refused_session_is_shown_again_at_the_field_without_any_service(sessions, lang):
    intake = Stub()
    response = GatewayService.session_form(
        Gateway(intake_rpc=intake), form_post(sessions, f"/beneficiaries/b-1/sessions?lang={lang}",
                                              {"needs": ["shelter", "no-such-need"], "notes": "gardée"}),
        beneficiary_id="b-1")
    html = response.get_data(as_text=True)
    assert response.status_code == 422 and intake.calls == []
    say = i18n.translations(lang).gettext
    # needs.1 is refused: said at the list of needs, in her language (templates/_fields.html), with the summary
    assert f'<p class="field-error" id="needs-error" data-field="needs" >{say("field_error.not_one_of")}</p>' in html
    assert 'id="form-errors"' in html and say("app.check_fields") in html and "Must be one of" not in html
    assert 'aria-invalid' not in html.split('name="notes"')[1].split(">")[0]  # only the refused field is marked
    assert "gardée" in html  # what she wrote is kept


def test_a_form_without_the_session_csrf_token_is_refused(sessions):
    intake = Stub(add_session={"id": "l-2"})
    refused = GatewayService.session_form(  # 403 csrf_failed, an error page, before any service
        Gateway(intake_rpc=intake), form_post(sessions, "/beneficiaries/b-1/sessions", {"urgency": "high"}, csrf=False),
        beneficiary_id="b-1")
    assert refused.status_code == 403 and refused.mimetype == "text/html"
    assert intake.calls == []


@pytest.mark.parametrize("route, path, values, fields, call", [
    ("consent_revoke_form", "/consents/c-1/revoke", {"consent_id": "c-1"}, {}, "revoke_consent"),
    ("duplicate_form", "/duplicates/4", {"flag_id": 4}, {"decision": "same"}, "resolve_duplicate_flag"),
])
def test_revoking_a_consent_or_deciding_a_duplicate_waits_for_the_confirmation(sessions, route, path, values, fields,
                                                                                 call):
    intake = Stub(**{call: {"ok": True}})
    back = {"next": "/beneficiaries/b-1?lang=fr"}
    unconfirmed = getattr(GatewayService, route)(Gateway(intake_rpc=intake),
                                                 form_post(sessions, f"{path}?lang=fr", {**fields, **back}), **values)
    html = unconfirmed.get_data(as_text=True)
    assert unconfirmed.status_code == 422 and intake.calls == []  # nothing done on one tap
    assert 'name="confirm"' in html and 'id="confirm-error"' in html and f'action="{path}?lang=fr"' in html
    assert 'name="next" value="/beneficiaries/b-1?lang=fr"' in html  # the confirm page goes back to her record
    done = getattr(GatewayService, route)(Gateway(intake_rpc=intake), form_post(
        sessions, f"{path}?lang=fr", {**fields, **back, "confirm": "true"}), **values)
    assert done.status_code == 303 and done.headers["Location"] == "/beneficiaries/b-1?lang=fr"
    assert [c[0] for c in intake.calls] == [call]
    evil = getattr(GatewayService, route)(Gateway(intake_rpc=intake), form_post(
        sessions, path, {**fields, "next": "https://evil.example/", "confirm": "true"}), **values)
    assert evil.headers["Location"] == "/"


def test_erasure_is_for_admins_behind_its_own_confirmation_page(sessions):
    confirm = GatewayService.erase_page(Gateway(), request("/beneficiaries/b-1/erase?lang=fr",
                                                           sessions.signed_in(ADMIN)), beneficiary_id="b-1")
    html = confirm.get_data(as_text=True)
    assert confirm.status_code == 200 and 'method="post" action="/beneficiaries/b-1/erase?lang=fr"' in html
    assert 'name="confirm" value="true" required' in html
    refused = GatewayService.erase_page(Gateway(), request("/beneficiaries/b-1/erase", sessions.signed_in(FATIMA)),
                                        beneficiary_id="b-1")
    assert refused.status_code == 403  # a case worker cannot erase
    intake = Stub(erase_beneficiary={"erased": True})
    unconfirmed = GatewayService.erase_form(Gateway(intake_rpc=intake), form_post(
        sessions, "/beneficiaries/b-1/erase", {}, who=ADMIN), beneficiary_id="b-1")
    assert unconfirmed.status_code == 422 and intake.calls == []
    done = GatewayService.erase_form(Gateway(intake_rpc=intake), form_post(
        sessions, "/beneficiaries/b-1/erase", {"confirm": "true"}, who=ADMIN), beneficiary_id="b-1")
    assert done.status_code == 200 and 'id="confirm-done"' in done.get_data(as_text=True)
    assert [c[0] for c in intake.calls] == ["erase_beneficiary"]


def test_the_recipient_declines_straight_from_sent_once_she_confirms(sessions):
    referrals = Stub(transition={"id": "r-1", "state": "declined"})
    path = "/referrals/r-1/decline?lang=ar"
    unconfirmed = GatewayService.referral_action_form(
        Gateway(referrals_rpc=referrals), form_post(sessions, path, {"reason": "Pas de place"}, who=NAIMA),
        referral_id="r-1", action="decline")
    html = unconfirmed.get_data(as_text=True)
    assert unconfirmed.status_code == 422 and referrals.calls == []
    assert "Pas de place" in html  # her reason is kept on the confirmation page
    done = GatewayService.referral_action_form(
        Gateway(referrals_rpc=referrals), form_post(sessions, path, {"reason": "Pas de place", "confirm": "on",
                                                                     "idempotency_key": "k-1-r-1-decline"}, who=NAIMA),
        referral_id="r-1", action="decline")
    assert done.status_code == 303 and done.headers["Location"] == "/referrals/r-1?lang=ar"
    [(name, (referral_id, action, body, actor), kwargs)] = referrals.calls
    assert (name, referral_id, action, body["reason"]) == ("transition", "r-1", "decline", "Pas de place")
    assert "confirm" not in body and kwargs == {"idempotency_key": "k-1-r-1-decline"}
    assert verifier("referrals").actor(actor).association == "wafae-marrakech"
    acknowledged = GatewayService.referral_action_form(  # a step that can be undone needs no confirmation
        Gateway(referrals_rpc=referrals), form_post(sessions, "/referrals/r-1/acknowledge", {}, who=NAIMA),
        referral_id="r-1", action="acknowledge")
    assert acknowledged.status_code == 303 and referrals.calls[-1][1][1] == "acknowledge"


def test_the_sender_reroutes_a_declined_referral_and_lands_on_the_new_one(sessions):
    referrals = Stub(reroute={"id": "r-3", "state": "sent"})
    fields = {"to_association": "nour-agadir", "confirm": "true"}
    done = GatewayService.referral_action_form(Gateway(referrals_rpc=referrals),
                                               form_post(sessions, "/referrals/r-2/reroute?lang=fr", fields),
                                               referral_id="r-2", action="reroute")
    assert done.status_code == 303 and done.headers["Location"] == "/referrals/r-3?lang=fr"
    [(name, (referral_id, body, actor), kwargs)] = referrals.calls
    assert (name, referral_id, body["to_association"]) == ("reroute", "r-2", "nour-agadir")
    unconfirmed = GatewayService.referral_action_form(
        Gateway(referrals_rpc=referrals), form_post(sessions, "/referrals/r-2/reroute", {"to_association": "x"}),
        referral_id="r-2", action="reroute")
    assert unconfirmed.status_code == 422 and len(referrals.calls) == 1


def referral_gateway(referral, **intake_answers):
    return Gateway(referrals_rpc=Stub(get_referral=referral), intake_rpc=Stub(**intake_answers),
                   directory=Stub(list_associations=ASSOCIATIONS, get_staff=SENDER,
                                  find_services=[{"association": "nour-agadir"}, {"association": "amal-safi"},
                                                 {"association": "wafae-marrakech"}]))


def test_the_sender_sees_whom_it_is_about_the_timeline_and_the_re_route_form(sessions):
    gateway = referral_gateway(dict(SENT, history=[dict(h) for h in HISTORY]), get_beneficiary=dict(RECORD))
    html = GatewayService.referral_page(gateway, request("/referrals/r-2?lang=fr", sessions.signed_in(FATIMA)),
                                        referral_id="r-2").get_data(as_text=True)
    about = html.split('class="about"')[1].split("</dd>")[0]
    assert "Khadija Bennani" in about and "خديجة" in about and 'href="/beneficiaries/b-1?lang=fr"' in about
    assert html.count('class="timeline-entry"') == 2 and "Fatima Zahra" in html
    assert 'class="pill state state-declined"' in html and "Refusée" in html  # the words, not only the colour
    reroute = html.split('id="form-reroute"')[1].split("</form>")[0]
    assert 'value="nour-agadir"' in reroute and 'value="amal-safi"' not in reroute  # not hers, not the decliner
    assert 'value="wafae-marrakech"' not in reroute and 'name="confirm" value="true" required' in reroute


def test_the_recipient_sees_who_sent_it_and_how_to_reach_her_never_the_sender_record(sessions):
    gateway = referral_gateway(dict(REFERRAL_RECEIVED))
    html = GatewayService.referral_page(gateway, request("/referrals/r-1?lang=ar", sessions.signed_in(NAIMA)),
                                        referral_id="r-1").get_data(as_text=True)
    sender = html.split('class="sender"')[1].split("</dd>")[0]
    assert "Fatima Zahra" in sender and 'href="tel:+212 524 00 00 01"' in sender
    assert 'href="mailto:fatima@amal-safi.example"' in sender
    assert gateway.intake_rpc.calls == [] and "/beneficiaries/" not in html  # her record stays with the sender
    # decline is offered straight from "sent", as a confirmed form
    decline = html.split('id="form-decline"')[1].split("</form>")[0]
    assert 'name="reason"' in decline and 'name="confirm" value="true" required' in decline
    assert 'action="/referrals/r-1/acknowledge?lang=ar"' in html


def test_home_shows_what_needs_her_now_overdue_first(sessions):
    late = dict(REFERRAL_RECEIVED, id="r-late", overdue=True, state="received")
    done = dict(REFERRAL_RECEIVED, id="r-done", state="accepted")
    item = {"id": 7, "kind": "referral.sent", "urgency": "normal", "subject": "Nouvelle", "body": "",
            "link": "/referrals/r-1", "created_at": "2026-11-29T14:00:00+00:00", "read": False}
    notifications = Stub(inbox={"items": [item], "next": None}, unread_count=3)
    gateway = Gateway(referrals_rpc=Stub(list_referrals=[dict(REFERRAL_RECEIVED), done, late]),
                      notifications_rpc=notifications, events_rpc=Stub(list_occurrences_page=EVENTS))
    html = GatewayService.home(gateway, request("/?lang=fr", sessions.signed_in(FATIMA))).get_data(as_text=True)
    awaiting = html.split('id="home-awaiting"')[1].split("</section>")[0]
    assert awaiting.index('data-id="r-late"') < awaiting.index('data-id="r-1"') and 'data-id="r-done"' not in awaiting
    assert 'id="home-unread"' in html and "Nouvelle" in html and 'href="/events/e-1?lang=fr"' in html
    assert notifications.calls[0][2]["unread_only"] is True


# --- the intake, consent and referral forms without JavaScript ---

HANANE_FORM = {"first_name": "", "last_name": "", "first_name_ar": "", "last_name_ar": "", "phone": "",
               "birth_year": "", "city": "", "language": "", "kind": "survivor", "urgency": "high", "notes": ""}


class Refusing(Stub):
    """A service that refuses every call with `error` (what the RPC proxy raises for a remote DomainError)."""

    def __init__(self, error):
        super().__init__()
        self.error = error

    def __getattr__(self, name):
        def call(*args, **kwargs):
            self.calls.append((name, args, kwargs))
            raise self.error
        return call


@pytest.mark.parametrize("lang, words", [("fr", "obligatoire"), ("ar", "إلزامي")])
def test_an_intake_form_without_a_name_comes_back_at_the_field_in_her_language_with_what_she_wrote(
        sessions, lang, words):
    intake = Stub()
    fields = {**HANANE_FORM, "phone": "0661 23 45 67", "birth_year": "1990", "needs": "shelter",
              "notes": "Arrivée la nuit <b>"}
    response = GatewayService.intake_form(Gateway(intake_rpc=intake), form_post(sessions, f"/intake?lang={lang}",
                                                                              fields))
    html = response.get_data(as_text=True)
    assert response.status_code == 422 and intake.calls == []  # refused before any service
    error = html.split('id="first_name-error"')[1].split("</p>")[0]
    assert "hidden" not in error.split(">")[0] and words in error
    assert 'value="0661 23 45 67"' in html and 'value="1990"' in html and "Arrivée la nuit &lt;b&gt;" in html
    assert 'value="shelter" checked' in html and 'value="high" checked' in html
    assert 'value="survivor" selected' in html
    assert 'name="idempotency_key" value="' in html  # a new key: nothing was done with the first


def test_the_intake_form_registers_her_once_under_the_pages_key_then_shows_her_record_and_duplicates(sessions):
    intake = Stub(register_beneficiary={"id": "b-9", "possible_duplicates": [{"id": "b-1", "reasons": ["same_phone"]}],
                                        "shared_values": []})
    fields = {**HANANE_FORM, "first_name_ar": "خديجة", "needs": ["shelter", "legal_orientation"],
              "idempotency_key": "k-intake-1"}
    response = GatewayService.intake_form(Gateway(intake_rpc=intake), form_post(sessions, "/intake?lang=ar", fields))
    assert response.status_code == 303
    assert response.headers["Location"] == "/beneficiaries/b-9?lang=ar&registered=1#duplicates"
    [(name, (body, actor), kwargs)] = intake.calls
    assert (name, kwargs) == ("register_beneficiary", {"idempotency_key": "k-intake-1"})
    assert body["first_name_ar"] == "خديجة" and body["needs"] == ["shelter", "legal_orientation"]
    assert body["birth_year"] is None and body["phone"] is None  # an empty box is no value, not ""
    assert verifier("intake").actor(actor).id == FATIMA["id"]
    intake.answers["register_beneficiary"] = {"id": "b-9", "possible_duplicates": [], "shared_values": []}
    alone = GatewayService.intake_form(Gateway(intake_rpc=intake), form_post(sessions, "/intake", fields))
    assert alone.headers["Location"] == "/beneficiaries/b-9?registered=1#identity"


def test_her_record_says_she_was_registered_and_leads_to_the_duplicates_to_decide(sessions):
    gateway = record_gateway()
    html = GatewayService.beneficiary_page(gateway, request("/beneficiaries/b-1?lang=fr&registered=1",
                                                            sessions.signed_in(FATIMA)),
                                           beneficiary_id="b-1").get_data(as_text=True)
    assert 'id="registered"' in html and 'href="#duplicates"' in html
    assert 'action="/duplicates/4?lang=fr"' in html  # the decision is a form: no script needed
    # The consent and referral forms post to the server, their recipients drawn there (not hers).
    consent = html.split('id="consent-form"')[1].split("</form>")[0]
    assert 'method="post" action="/beneficiaries/b-1/consents?lang=fr"' in consent.split(">")[0]
    assert 'value="wafae-marrakech"' in consent and 'value="amal-safi"' not in consent
    refer = html.split('id="refer-form"')[1].split("</form>")[0]
    assert 'value="wafae-marrakech"' in refer and 'name="idempotency_key"' in refer
    assert 'id="erase-link"' not in html  # a case worker is not offered the erasure


def test_an_admin_is_offered_her_erasure_from_her_record(sessions):
    admin = {**ADMIN, "roles": ["case_worker", "admin"]}
    html = GatewayService.beneficiary_page(record_gateway(), request("/beneficiaries/b-1?lang=fr",
                                                                     sessions.signed_in(admin)),
                                           beneficiary_id="b-1").get_data(as_text=True)
    assert 'id="erase-link" href="/beneficiaries/b-1/erase?lang=fr"' in html


def test_a_consent_form_to_any_partner_until_a_day_is_recorded_once_as_the_api_would(sessions):
    intake = Stub(record_consent={"id": "c-2"})
    fields = {"purpose": "legal_orientation", "recipient_kind": "category", "recipient_association": "",
              "fields": ["first_name", "phone"], "expires_on": "2027-03-31", "idempotency_key": "k-consent"}
    response = GatewayService.consent_form(Gateway(intake_rpc=intake),
                                           form_post(sessions, "/beneficiaries/b-1/consents?lang=fr", fields),
                                           beneficiary_id="b-1")
    assert response.status_code == 303 and response.headers["Location"] == "/beneficiaries/b-1?lang=fr#consents"
    [(name, (beneficiary_id, body, actor), kwargs)] = intake.calls
    assert (name, beneficiary_id, kwargs) == ("record_consent", "b-1", {"idempotency_key": "k-consent"})
    assert body == {"purpose": "legal_orientation", "recipient_category": "legal_orientation",
                    "recipient_association": None, "fields": ["first_name", "phone"],
                    "expires_at": "2027-03-31T23:59:59+01:00"}  # the end of that day in Morocco
    one = {**fields, "recipient_kind": "association", "recipient_association": "wafae-marrakech", "fields": "phone",
           "expires_on": ""}
    GatewayService.consent_form(Gateway(intake_rpc=intake), form_post(sessions, "/beneficiaries/b-1/consents", one),
                                beneficiary_id="b-1")
    body = intake.calls[-1][1][1]
    assert (body["recipient_association"], body["recipient_category"], body["fields"], body["expires_at"]) == (
        "wafae-marrakech", None, ["phone"], None)


@pytest.mark.parametrize("fields, field", [
    ({"purpose": "legal_orientation", "recipient_kind": "association", "recipient_association": "",
      "fields": "phone"}, "recipient_association"),
    ({"purpose": "legal_orientation", "recipient_kind": "association", "recipient_association": "wafae-marrakech"},
     "fields"),
    ({"purpose": "legal_orientation", "recipient_kind": "category", "fields": "phone", "expires_on": "31/03/2027"},
     "expires_on"),
    ({"purpose": "legal_orientation", "recipient_kind": "category", "fields": ["phone", "password"]}, "fields"),
])
def test_a_refused_consent_form_comes_back_alone_with_the_error_at_its_field(sessions, fields, field):
    intake = Stub()
    response = GatewayService.consent_form(GatewayWithDirectory(intake_rpc=intake), form_post(
        sessions, "/beneficiaries/b-1/consents?lang=ar", fields), beneficiary_id="b-1")
    html = response.get_data(as_text=True)
    assert response.status_code == 422 and intake.calls == []
    assert "hidden" not in html.split(f'id="{field}-error"')[1].split(">")[0]
    if field != "fields":  # a control of its own: marked invalid and described by its error (_fields.html invalid)
        control = html.split(f'name="{field}"')[1].split(">")[0]
        assert f'aria-invalid="true" aria-describedby="{field}-error"' in control
    assert 'action="/beneficiaries/b-1/consents?lang=ar"' in html and 'dir="rtl"' in html
    assert 'value="legal_orientation" selected' in html  # her choices are kept


def GatewayWithDirectory(**proxies):
    return Gateway(directory=Stub(list_associations=ASSOCIATIONS, find_services=[
        {"association": "wafae-marrakech"}, {"association": "amal-safi"}]), **proxies)


def test_the_referral_form_refers_her_once_and_lands_on_the_new_referral(sessions):
    referrals = Stub(create_referral={"id": "r-9", "state": "sent"})
    fields = {"service_category": "legal_orientation", "to_association": "wafae-marrakech", "reason": "Avocate",
              "urgency": "high", "fields": "first_name", "idempotency_key": "k-refer",
              "beneficiary_id": "b-someone-else"}  # whom it is about is her record's URL, not a form field
    response = GatewayService.refer_form(Gateway(referrals_rpc=referrals),
                                         form_post(sessions, "/beneficiaries/b-1/referrals?lang=fr", fields),
                                         beneficiary_id="b-1")
    assert response.status_code == 303 and response.headers["Location"] == "/referrals/r-9?lang=fr"
    [(name, (body, actor), kwargs)] = referrals.calls
    assert (name, kwargs) == ("create_referral", {"idempotency_key": "k-refer"})
    assert (body["beneficiary_id"], body["to_association"], body["fields"], body["urgency"]) == (
        "b-1", "wafae-marrakech", ["first_name"], "high")
    assert verifier("referrals").actor(actor).association == "amal-safi"


@pytest.mark.parametrize("refusal, field", [("no_consent", "fields"), ("service_not_offered", "to_association")])
def test_a_referral_the_service_refuses_comes_back_with_the_refusal_at_its_field(sessions, refusal, field):
    from tansiq.errors import DomainError

    referrals = Refusing(DomainError("refused", code=refusal))
    fields = {"service_category": "legal_orientation", "to_association": "wafae-marrakech",
              "reason": "Accompagnement", "urgency": "normal", "fields": "phone"}
    response = GatewayService.refer_form(GatewayWithDirectory(referrals_rpc=referrals),
                                         form_post(sessions, "/beneficiaries/b-1/referrals?lang=fr", fields),
                                         beneficiary_id="b-1")
    html = response.get_data(as_text=True)
    assert response.status_code == 422 and len(referrals.calls) == 1
    error = html.split(f'id="{field}-error"')[1].split("</p>")[0]
    assert "hidden" not in error.split(">")[0] and error.split(">", 1)[1].strip()  # words, in French
    assert "Accompagnement" in html and 'value="phone" checked' in html


def test_a_referral_form_without_a_reason_or_recipient_calls_nobody(sessions):
    referrals = Stub()
    response = GatewayService.refer_form(GatewayWithDirectory(referrals_rpc=referrals), form_post(
        sessions, "/beneficiaries/b-1/referrals", {"service_category": "legal_orientation", "to_association": "",
                                                   "reason": ""}), beneficiary_id="b-1")
    html = response.get_data(as_text=True)
    assert response.status_code == 422 and referrals.calls == []
    for field in ("to_association", "reason"):
        assert "hidden" not in html.split(f'id="{field}-error"')[1].split(">")[0]


def test_an_events_manager_cannot_post_the_case_forms(sessions):
    events_manager = {**FATIMA, "id": "s-ev", "roles": ["events_manager"]}
    intake, referrals = Stub(), Stub()
    for route, path, values in (("intake_form", "/intake", {}),
                                ("consent_form", "/beneficiaries/b-1/consents", {"beneficiary_id": "b-1"}),
                                ("refer_form", "/beneficiaries/b-1/referrals", {"beneficiary_id": "b-1"})):
        refused = getattr(GatewayService, route)(Gateway(intake_rpc=intake, referrals_rpc=referrals),
                                                 form_post(sessions, path, {"first_name": "x"}, who=events_manager),
                                                 **values)
        assert refused.status_code == 403, route
    assert intake.calls == referrals.calls == []


def test_the_sender_dismisses_a_declined_referral_once_she_confirms(sessions):
    referrals = Stub(transition={"id": "r-2", "state": "closed"})
    unconfirmed = GatewayService.referral_action_form(
        Gateway(referrals_rpc=referrals), form_post(sessions, "/referrals/r-2/dismiss?lang=fr", {}),
        referral_id="r-2", action="dismiss")
    assert unconfirmed.status_code == 422 and referrals.calls == []
    assert 'name="confirm"' in unconfirmed.get_data(as_text=True)
    done = GatewayService.referral_action_form(
        Gateway(referrals_rpc=referrals), form_post(sessions, "/referrals/r-2/dismiss?lang=fr",
                                                    {"confirm": "true", "idempotency_key": "k-dismiss"}),
        referral_id="r-2", action="dismiss")
    assert done.status_code == 303 and done.headers["Location"] == "/referrals/r-2?lang=fr"
    [(name, (referral_id, action, body, actor), kwargs)] = referrals.calls
    assert (name, referral_id, action, kwargs) == ("transition", "r-2", "dismiss", {"idempotency_key": "k-dismiss"})
    assert "confirm" not in body


def test_the_sender_is_offered_dismiss_with_a_confirmation_on_a_declined_referral(sessions):
    gateway = referral_gateway(dict(SENT, history=[dict(h) for h in HISTORY]), get_beneficiary=dict(RECORD))
    html = GatewayService.referral_page(gateway, request("/referrals/r-2?lang=fr", sessions.signed_in(FATIMA)),
                                        referral_id="r-2").get_data(as_text=True)
    dismiss = html.split('id="form-dismiss"')[1].split("</form>")[0]
    assert 'name="confirm" value="true" required' in dismiss and "Clore sans réorienter" in dismiss
    received = referral_gateway(dict(REFERRAL_RECEIVED, state="declined"))
    html = GatewayService.referral_page(received, request("/referrals/r-1?lang=fr", sessions.signed_in(NAIMA)),
                                        referral_id="r-1").get_data(as_text=True)
    assert 'form-dismiss' not in html and "/dismiss" not in html  # not the recipient's to close
