"""Pages of her case that work without JavaScript: the list of her association's beneficiaries (search,
filters, cursor paging), the intake form, her consent and her referral from her record, a follow-up
listening session, and the irreversible steps of her record (revoke a consent, decide a possible duplicate,
erase her data), each behind a confirmation checkbox.

Each form posts `application/x-www-form-urlencoded` with the session's CSRF token (routes `form=True`),
then sends the browser back to the page it came from (303); a form refused at a field is shown again, the
error at that field and what she wrote kept, by the generic `confirm.html` (or `session_form.html`,
`case_form.html`, the intake page), without calling any service. Each carries the idempotency key drawn with
the page (tansiq.commands): a double submit or a reload of the post is one record.
"""

import re
import uuid
from datetime import datetime
from urllib.parse import urlencode

from werkzeug.utils import redirect

from services.gateway.api_webapp import LOCAL_TZ, recipients_by_category, safe_next, when
from services.gateway.pages import page
from services.gateway.routes import route
from services.gateway.schemas import (
    BeneficiarySearchSchema,
    ConfirmFormSchema,
    ConsentFormSchema,
    DuplicateFormSchema,
    IntakeFormSchema,
    ReferFormSchema,
    SessionFormSchema,
)
from services.gateway.web import LANGUAGES, request_language
from services.intake.schemas import KINDS
from services.intake.schemas import LANGUAGES as SPOKEN_LANGUAGES
from tansiq.commands import check_key
from tansiq.contracts.fields import URGENCIES
from tansiq.contracts.intake import NEEDS
from tansiq.contracts.referrals import SHAREABLE_FIELDS
from tansiq.errors import DomainError

# A search that reads as a phone number (digits, spaces, +, dots, dashes, brackets) looks for a phone.
PHONE_LIKE = re.compile(r"^\+?[\d\s().-]{6,}$")
# The referrals service's refusals of a new referral that are about one field of the form: shown there.
REFERRAL_REFUSALS = {"no_consent": "fields", "invalid_fields": "fields", "service_not_offered": "to_association",
                     "self_referral": "to_association"}


def form_key(request):
    """The idempotency key the form carried (made when the page was drawn): a double submit is one change."""
    return check_key(request.form.get("idempotency_key") or None)


def new_form_key():
    return uuid.uuid4().hex


def with_lang(path, request, anchor="", **params):
    """`path` in the language of the page that posted (its action URL carries ?lang=), with `params`."""
    lang = request.args.get("lang")
    params = {**({"lang": lang} if lang in LANGUAGES else {}), **params}
    query = f"?{urlencode(params)}" if params else ""
    return f"{path}{query}{'#' + anchor if anchor else ''}"


def back(request, path, anchor="", **params):
    return redirect(with_lang(path, request, anchor, **params), code=303)


def search_of(text):
    """{"phone": ...} or {"name": ...} for the list's one search box; {} when empty."""
    text = (text or "").strip()
    if not text:
        return {}
    return {"phone": text} if PHONE_LIKE.match(text) else {"name": text}


def intake_form_page(request, staff, errors=None, chosen=None):
    """The intake form; again with `errors` at their fields and what she wrote (`chosen`) when refused."""
    return page("intake.html", request, staff, status=422 if errors else 200, errors=errors or {},
                chosen=chosen or {}, form_key=new_form_key(), needs=NEEDS, urgencies=URGENCIES, kinds=KINDS,
                spoken=SPOKEN_LANGUAGES, this_year=datetime.now(LOCAL_TZ).year)


def confirm_again(request, staff, errors, action, title, hidden=None, texts=()):
    """A form refused at a field (usually: the confirmation not ticked), shown again with the error there."""
    return page("confirm.html", request, staff, status=422, errors=errors, action=action, title=title,
                hidden={key: value for key, value in (hidden or {}).items() if value is not None},
                texts=[(name, request.form.get(name, "")) for name in texts], form_key=new_form_key())


class CasePages:
    # intake_rpc is declared by IntakeApi, which GatewayService also inherits.

    @route("GET", "/beneficiaries", auth="cases.read", audience=("intake",), page=True,
           query=BeneficiarySearchSchema, summary="Her association's beneficiaries: search, filters, pages")
    def beneficiaries_page(self, request, staff, actor, query):
        """The list holds no personal data (intake lists ids and coarse fields); a name or a phone finds her
        through intake's blind index, exactly as typed (any case, any phone format, Arabic or Latin)."""
        lang = request.args.get("lang") if request.args.get("lang") in LANGUAGES else None
        since = query["registered_since"]
        found = self.intake_rpc.list_beneficiaries(
            actor, **search_of(query["q"]), kind=query["kind"] or None,
            registered_since=since.isoformat() if since else None, limit=query["limit"], cursor=query["cursor"])
        for item in found["items"]:
            item["registered_local"] = when(item.get("registered_at"), lang or staff.get("language") or "fr")
        kept = {"q": query["q"], "kind": query["kind"] or "", "lang": lang or "",
                "registered_since": since.isoformat() if since else ""}
        next_href = None
        if found["next"]:
            next_href = "/beneficiaries?" + urlencode({**{k: v for k, v in kept.items() if v}, "cursor": found["next"]})
        return page("beneficiaries.html", request, staff, items=found["items"], kinds=KINDS, search=kept,
                    searched=bool(query["q"].strip()), next_href=next_href, paged=bool(query["cursor"]))

    @route("POST", "/beneficiaries/<string:beneficiary_id>/sessions", auth="cases.write", audience=("intake",),
           page=True, form=True, body=SessionFormSchema,
           summary="Add a follow-up listening session from her record's form")
    def session_form(self, request, staff, actor, beneficiary_id, body=None, errors=None):
        if errors:
            return page("session_form.html", request, staff, status=422, errors=errors, record={"id": beneficiary_id},
                        needs=NEEDS, urgencies=URGENCIES, chosen=request.form, form_key=new_form_key())
        self.intake_rpc.add_session(beneficiary_id, body, actor, idempotency_key=form_key(request))
        return back(request, f"/beneficiaries/{beneficiary_id}", "sessions")

    @route("GET", "/intake", auth="cases.write", page=True, summary="The intake form")
    def intake_page(self, request, staff):
        return intake_form_page(request, staff)

    @route("POST", "/intake", auth="cases.write", audience=("intake",), page=True, form=True, body=IntakeFormSchema,
           summary="Register a woman from the intake form (works without JavaScript); then her record, where "
                   "possible duplicates are decided")
    def intake_form(self, request, staff, actor, body=None, errors=None):
        if errors:
            return intake_form_page(request, staff, errors, request.form)
        registered = self.intake_rpc.register_beneficiary(body, actor, idempotency_key=form_key(request))
        return back(request, f"/beneficiaries/{registered['id']}", "duplicates" if registered["possible_duplicates"]
                    else "identity", registered="1")

    @route("POST", "/beneficiaries/<string:beneficiary_id>/consents", auth="cases.write", audience=("intake",),
           page=True, form=True, body=ConsentFormSchema,
           summary="Record her consent from her record's form (works without JavaScript)")
    def consent_form(self, request, staff, actor, beneficiary_id, body=None, errors=None):
        if errors:
            return self._case_form(request, staff, "consent", beneficiary_id, errors)
        self.intake_rpc.record_consent(beneficiary_id, body, actor, idempotency_key=form_key(request))
        return back(request, f"/beneficiaries/{beneficiary_id}", "consents")

    @route("POST", "/beneficiaries/<string:beneficiary_id>/referrals", auth="referrals.act",
           audience=("referrals", "intake"), page=True, form=True, body=ReferFormSchema,
           summary="Refer her from her record's form (works without JavaScript); then the new referral's page")
    def refer_form(self, request, staff, actor, beneficiary_id, body=None, errors=None):
        if errors:
            return self._case_form(request, staff, "refer", beneficiary_id, errors)
        try:
            referral = self.referrals_rpc.create_referral({**body, "beneficiary_id": beneficiary_id}, actor,
                                                          idempotency_key=form_key(request))
        except DomainError as refused:
            if refused.code not in REFERRAL_REFUSALS:
                raise
            return self._case_form(request, staff, "refer", beneficiary_id,
                                   {REFERRAL_REFUSALS[refused.code]: refused.code})
        return back(request, f"/referrals/{referral['id']}")

    def _case_form(self, request, staff, form, beneficiary_id, errors):
        """Her consent or referral form again, alone, with the errors at their fields and what she chose."""
        return page("case_form.html", request, staff, status=422, form=form, record={"id": beneficiary_id},
                    errors=errors, chosen=request.form, form_key=new_form_key(), needs=NEEDS,
                    urgencies=URGENCIES, shareable=SHAREABLE_FIELDS,
                    recipients=recipients_by_category(self.directory, staff["association"]),
                    names=self._association_names(request_language(request, staff)))

    @route("POST", "/consents/<string:consent_id>/revoke", auth="cases.write", audience=("intake",), page=True,
           form=True, body=ConfirmFormSchema, summary="Revoke a consent, once confirmed (her record's form)")
    def consent_revoke_form(self, request, staff, actor, consent_id, body=None, errors=None):
        if errors:
            return confirm_again(request, staff, errors, with_lang(f"/consents/{consent_id}/revoke", request),
                                 "consent.revoke", {"next": request.form.get("next")})
        self.intake_rpc.revoke_consent(consent_id, actor, idempotency_key=form_key(request))
        return redirect(safe_next(request.form.get("next")), code=303)

    @route("POST", "/duplicates/<int:flag_id>", auth="cases.write", audience=("intake",), page=True, form=True,
           body=DuplicateFormSchema, summary="Decide a possible duplicate, once confirmed (her record's form)")
    def duplicate_form(self, request, staff, actor, flag_id, body=None, errors=None):
        if errors:
            return confirm_again(request, staff, errors, with_lang(f"/duplicates/{flag_id}", request),
                                 "beneficiary.duplicates", {"next": request.form.get("next"),
                                                            "decision": request.form.get("decision")})
        self.intake_rpc.resolve_duplicate_flag(flag_id, body["decision"], actor)
        return redirect(safe_next(request.form.get("next")), code=303)

    @route("GET", "/beneficiaries/<string:beneficiary_id>/erase", auth="cases.erase", page=True,
           summary="Erasure of her personal data: the confirmation page (admins)")
    def erase_page(self, request, staff, beneficiary_id):
        return page("confirm.html", request, staff, errors={}, title="erase.title", intro="erase.intro",
                    action=with_lang(f"/beneficiaries/{beneficiary_id}/erase", request), hidden={}, texts=[],
                    subject=beneficiary_id, form_key=new_form_key(), danger=True)

    @route("POST", "/beneficiaries/<string:beneficiary_id>/erase", auth="cases.erase", audience=("intake",),
           page=True, form=True, body=ConfirmFormSchema, summary="Erase her personal data, once confirmed (admins)")
    def erase_form(self, request, staff, actor, beneficiary_id, body=None, errors=None):
        if errors:
            return confirm_again(request, staff, errors, with_lang(f"/beneficiaries/{beneficiary_id}/erase", request),
                                 "erase.title")
        self.intake_rpc.erase_beneficiary(beneficiary_id, actor)
        return page("confirm.html", request, staff, errors={}, title="erase.title", done="erase.done",
                    subject=beneficiary_id, action=None, hidden={}, texts=[])

