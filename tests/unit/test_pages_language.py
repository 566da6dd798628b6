"""The pages in the reader's language: remembered across links and sign-out, real plural forms, right to left
done properly (the back arrow, isolated names), and API errors as field codes a page can translate."""

import json

from gateway_sessions import directory_sessions
from test_webapp_pages import ASSOCIATIONS, HANANE, Gateway, Stub  # tests/unit/test_webapp_pages.py
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request

from services.gateway import web
from services.gateway.service import GatewayService

REFERRAL = {"id": "r-1", "direction": "received", "state": "sent", "from_association": "wafae-marrakech",
            "to_association": "amal-safi", "service_category": "legal_orientation", "urgency": "normal",
            "reason": "x", "overdue": False, "ack_due": None, "response_due": None,
            "created_at": "2026-11-29T14:00:00+00:00"}


def request(path, token=None, cookies=None):
    jar = {**({web.SESSION_COOKIE: token} if token else {}), **(cookies or {})}
    headers = {"Cookie": "; ".join(f"{k}={v}" for k, v in jar.items())} if jar else {}
    return Request(EnvironBuilder(path=path, headers=headers).get_environ())


def inbox(token, unread, path="/inbox", cookies=None):
    notifications = Stub(inbox={"items": [], "next": None}, unread_count=unread)
    return GatewayService.inbox_page(Gateway(notifications_rpc=notifications), request(path, token, cookies))


def test_the_language_is_remembered_across_links_and_sign_out(tmp_path):
    with directory_sessions(tmp_path) as sessions:
        token = sessions.signed_in({**HANANE, "language": "fr"})
        chosen = inbox(token, 1, "/inbox?lang=ar")
        assert any(c.startswith("lang=ar") for c in chosen.headers.getlist("Set-Cookie"))
        # the next link carries no ?lang=: the cookie speaks (over her staff preference, French)
        assert 'dir="rtl"' in inbox(token, 1, cookies={"lang": "ar"}).get_data(as_text=True)
        assert '<html lang="fr"' in inbox(token, 1).get_data(as_text=True)  # no cookie: her preference
        signed_out = GatewayService.login_page(None, request("/login", cookies={"lang": "ar"}))
        assert 'dir="rtl"' in signed_out.get_data(as_text=True)
        refused = GatewayService.login_page(None, request("/login?lang=../../etc", cookies={"lang": "x/../y"}))
        assert '<html lang="fr"' in refused.get_data(as_text=True) or '<html lang="en"' in refused.get_data(
            as_text=True)


def test_unread_counts_use_the_language_plural_forms(tmp_path):
    with directory_sessions(tmp_path) as sessions:
        token = sessions.signed_in(HANANE)
        assert "5 non lues" in inbox(token, 5, "/inbox?lang=fr").get_data(as_text=True)
        assert "1 non lue<" in inbox(token, 1, "/inbox?lang=fr").get_data(as_text=True)
        assert "إشعاران غير مقروءين" in inbox(token, 2, "/inbox?lang=ar").get_data(as_text=True)  # the dual
        page = inbox(token, 3, "/inbox?lang=ar").get_data(as_text=True)
        messages = json.loads(page.split('id="messages">')[1].split("</script>")[0])
        assert set(messages["unread"]) == {"zero", "one", "two", "few", "many", "other"}  # for Intl.PluralRules


def test_right_to_left_points_back_the_right_way_and_isolates_names(tmp_path):
    with directory_sessions(tmp_path) as sessions:
        token = sessions.signed_in(HANANE)
        gateway = Gateway(referrals_rpc=Stub(get_referral=dict(REFERRAL)),
                          directory=Stub(list_associations=ASSOCIATIONS))
        arabic = GatewayService.referral_page(gateway, request("/referrals/r-1?lang=ar", token),
                                              referral_id="r-1").get_data(as_text=True)
        french = GatewayService.referral_page(gateway, request("/referrals/r-1?lang=fr", token),
                                              referral_id="r-1").get_data(as_text=True)
        assert 'dir="rtl"' in arabic and '<span aria-hidden="true">→</span>' in arabic
        assert '<span aria-hidden="true">←</span>' in french
        assert "<bdi>جمعية وفاء للمرأة</bdi>" in arabic and "<bdi>Hanane Benali</bdi>" in arabic


def test_a_validation_error_carries_a_code_per_field():
    from marshmallow import ValidationError

    from services.intake.schemas import BeneficiarySchema

    try:
        BeneficiarySchema().load({"needs": ["cooking"], "birth_year": 1700, "first_name": "x" * 500, "colour": 1})
    except ValidationError as invalid:
        answer = json.loads(web.response_for(invalid).get_data(as_text=True))["error"]
    assert answer["code"] == "validation_error"
    assert answer["fields"] == {"needs.0": "not_one_of", "birth_year": "out_of_range", "first_name": "length",
                                "colour": "unknown_field"}
