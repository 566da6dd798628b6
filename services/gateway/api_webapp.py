"""The staff web app's pages: sign-in, inbox, referrals, intake form, a beneficiary's record.

Pages are rendered on the server from the same RPC answers the JSON API returns; the
buttons and forms call the JSON API with a little vanilla JS (static/webapp.js).
A page that needs a session sends the browser to /login?next=<the page>.
Pages showing personal data are never cached (Cache-Control: no-store).
"""

import re
import uuid
from datetime import datetime
from urllib.parse import parse_qs, quote, urlencode, urlsplit
from zoneinfo import ZoneInfo

from werkzeug.utils import redirect

from services.gateway.pages import page
from services.gateway.routes import PUBLIC, SIGNED_IN, BodyBy, may_open, route
from services.gateway.schemas import (
    DeclineFormSchema,
    LoginSchema,
    RerouteFormSchema,
    TransitionFormSchema,
    WithdrawFormSchema,
)
from services.gateway.web import (
    LANGUAGES,
    forget_session_cookie,
    remember_language,
    request_language,
    response_for,
)
from services.referrals.domain import RECIPIENT, STEPS
from services.referrals.schemas import STATES, ActionSchema
from tansiq import i18n
from tansiq.contracts.actor import allows
from tansiq.contracts.fields import URGENCIES
from tansiq.contracts.intake import NEEDS
from tansiq.contracts.referrals import SHAREABLE_FIELDS
from tansiq.errors import DomainError, NotFound

RECENT = 20  # audit and disclosure entries on her record page; the JSON API pages through all of them
NAME_KEYS = ("first_name", "last_name", "first_name_ar", "last_name_ar")
LOCAL_TZ = ZoneInfo("Africa/Casablanca")  # deadlines are shown as Moroccan staff live them
# The forms a referral offers (close, by the recipient after accepting, stays in the JSON API).
PAGE_ACTIONS = ("acknowledge", "accept", "decline", "start", "complete", "withdraw", "reroute", "dismiss")
NEEDS_INPUT = {"decline": "reason", "complete": "outcome", "reroute": "to_association"}
# Steps that cannot be undone: their form needs a ticked confirmation (also without JavaScript).
IRREVERSIBLE = ("decline", "withdraw", "reroute", "dismiss")
# Inbox links that lead to a page of this app (notifications/rules.py makes them); others get no "open" link.
PAGE_LINK = re.compile(r"^/(referrals|referrals/[\w.-]+|beneficiaries/[\w.-]+|events/[\w.-]+)$")


def safe_next(target):
    """A local path to go back to after signing in; anything else goes home.

    Browsers drop tabs and newlines from URLs and read a backslash as a slash, so `/<tab>/evil.example`
    and `/<backslash>evil.example` mean //evil.example: refuse any control character, any backslash, and
    anything that parses with a scheme or a host.
    """
    if not target or not target.startswith("/") or "\\" in target:
        return "/"
    if any(ord(char) < 32 or ord(char) == 127 for char in target):
        return "/"
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or target.startswith("//"):
        return "/"
    return target


def when(value, lang):
    """An ISO time (UTC) as `lang` writes it, in Casablanca time."""
    if not value:
        return ""
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(value)
    return i18n.format_moment(moment, lang, tzinfo=LOCAL_TZ)


def actions_for(referral):
    """The page's buttons for this referral, from the referrals lifecycle (domain.STEPS)."""
    found = []
    for action in PAGE_ACTIONS:
        step = STEPS[action]
        direction = "received" if step.side == RECIPIENT else "sent"
        if referral["direction"] == direction and referral["state"] in step.sources:
            found.append({"name": action, "input": NEEDS_INPUT.get(action), "confirm": action in IRREVERSIBLE})
    return found


def staff_contact(directory, staff_id):
    """A staff member's name and work contact from the directory's read model; None if unknown (a partner's)."""
    try:
        member = directory.get_staff(staff_id) if staff_id else None
    except NotFound:
        return None
    return member and {key: member.get(key) for key in ("id", "name", "email", "phone", "association")}


def recipients_by_category(directory, own):
    """{category: the associations offering it, hers left out}: the consent and referral forms' choices drawn
    by the server (with JavaScript, webapp.js narrows them to the chosen category from the directory)."""
    return {need: sorted({service["association"] for service in directory.find_services(need)} - {own})
            for need in NEEDS}


def timeline(referral, lang, directory):
    """Who did what, when: each history entry with the person's name when the directory knows her."""
    people = {}
    for entry in referral.get("history", []):
        if entry.get("by") and entry["by"] not in people:
            people[entry["by"]] = staff_contact(directory, entry["by"])
        person = people.get(entry.get("by"))
        entry["by_name"] = person["name"] if person else None
        entry["at_local"] = when(entry.get("at"), lang)
    return referral.get("history", [])


def has_page(link):
    return bool(link) and PAGE_LINK.match(link) is not None


def consent_status(consent):
    return "revoked" if consent.get("revoked_at") else "valid" if consent.get("valid") else "expired"


def for_page(referral, lang):
    """A referral as the service returns it, plus its next deadline and creation time in Casablanca time."""
    # The deadline that runs now: acknowledging a sent referral, answering a received one; none after that.
    referral["deadline"] = {"sent": referral.get("ack_due"), "received": referral.get("response_due")}.get(
        referral["state"])
    referral["deadline_local"] = when(referral["deadline"], lang)
    referral["created_local"] = when(referral["created_at"], lang)
    referral["actions"] = actions_for(referral)
    referral["awaiting"] = referral["direction"] == "received" and referral["state"] in ("sent", "received")
    return referral


def login_form_page(request, status=200, failed=None, errors=None, email=""):
    """The sign-in form, in the language of the page she asked for; again with what refused her."""
    target = safe_next(request.args.get("next") or request.form.get("next"))
    # /login?next=/inbox?lang=ar speaks Arabic already, like the page she asked for.
    wanted = parse_qs(urlsplit(target).query).get("lang", [None])[0]
    lang = request.args.get("lang") if request.args.get("lang") in LANGUAGES else None
    lang = lang or (wanted if wanted in LANGUAGES else None)
    return page("login.html", request, None, status=status, lang=lang, next=target, failed=failed,
                errors=errors or {}, email=email)


class WebAppPages:
    # notifications_rpc, referrals_rpc, intake_rpc, events_rpc and directory are declared by the
    # InboxApi, ReferralsApi, IntakeApi, EventsApi and DirectoryApi mixins that GatewayService also inherits.

    @route("GET", "/login", auth=PUBLIC, page=True, summary="The sign-in form")
    def login_page(self, request):
        return login_form_page(request)

    @route("POST", "/login", auth=PUBLIC, page=True, form=True, body=LoginSchema,
           summary="The sign-in form posted without JavaScript: the password travels in the body, never the URL")
    def login_form(self, request, body=None, errors=None):
        """Signed in: her page (`next`) with the session cookie; else the form again, its errors at the fields."""
        if errors:
            return login_form_page(request, status=422, errors=errors, email=request.form.get("email", ""))
        try:
            opened = self.open_session(request, body)
        except DomainError as refused:  # unknown email or wrong password, or too many attempts
            return login_form_page(request, status=response_for(refused).status_code, failed=refused.code,
                                   email=body["email"])
        response = redirect(safe_next(request.form.get("next")), code=303)
        self.sessions.set_cookie(response, opened["token"])
        remember_language(response, request.args.get("lang") or opened["staff"].get("language"))
        return response

    @route("POST", "/logout", auth=PUBLIC, page=True, form=True,
           summary="Sign out from a page's form (works without JavaScript); the language stays")
    def logout_form(self, request):
        self.end_session(request)
        response = redirect("/login", code=303)
        forget_session_cookie(response)
        return response

    @route("GET", "/inbox", auth="staff.self", page=True, summary="Her inbox")
    def inbox_page(self, request, staff):
        lang = request_language(request, staff)
        actor = self.identity.sign(staff, "notifications")
        # The newest 100, and a link to the older ones (tansiq.paging): never a silent cut.
        inbox = self.notifications_rpc.inbox(actor, limit=100, language=lang, cursor=request.args.get("cursor") or None,
                                             paged=True)
        items = inbox["items"]
        for item in items:
            item["when"] = when(item.get("created_at"), lang)
            item["open"] = has_page(item.get("link")) and may_open(staff, item["link"])  # only pages she may open
        unread = self.notifications_rpc.unread_count(actor)
        return page("inbox.html", request, staff, items=items, unread=unread, next=inbox["next"])

    @route("POST", "/inbox/<int:item_id>/read", auth="staff.self", page=True, form=True,
           summary="Mark one inbox item read from the page's form (works without JavaScript)")
    def inbox_read_form(self, request, staff, item_id):
        self.notifications_rpc.mark_read(self.identity.sign(staff, "notifications"), item_id)
        return redirect(f"/inbox#item-{item_id}", code=303)

    @route("GET", "/account", auth="staff.self", page=True, summary="Her account: change her password")
    def account_page(self, request, staff):
        """Her password (POST /api/password: the current one required, her other sessions end)."""
        return page("account.html", request, staff, changed=request.args.get("changed") == "1")

    @route("GET", "/staff", auth="staff.manage", page=True, summary="Her association's staff (admins)")
    def staff_list_page(self, request, staff):
        """An admin's colleagues (her association's active staff), each with a deactivate button
        (POST /api/staff/<id>/deactivate, after a confirmation)."""
        members = self.directory.list_staff(staff["association"])
        return page("staff.html", request, staff, members=members, deactivated=request.args.get("deactivated") == "1")

    @route("GET", "/inbox/<int:item_id>", auth="staff.self", page=True, summary="One inbox item (e-mails link here)")
    def inbox_item_page(self, request, staff, item_id):
        """E-mails and SMS link here (notifications' inbox_link): the inbox, scrolled to that item."""
        return redirect(f"/inbox?{urlencode(list(request.args.items(multi=True)))}#item-{item_id}", code=303)

    @route("GET", "/referrals", auth="referrals.read", page=True, summary="Referrals sent and received")
    def referrals_page(self, request, staff):
        lang = request_language(request, staff)
        status = request.args.get("status") or None
        if status not in STATES:
            status = None
        lists = {}
        actor = self.identity.sign(staff, "referrals")
        for direction in ("received", "sent"):
            referrals = self.referrals_rpc.list_referrals(actor, direction, status)
            # The service orders them already; keep overdue first even if that ever changes (stable sort).
            referrals.sort(key=lambda referral: not referral.get("overdue"))
            lists[direction] = [for_page(referral, lang) for referral in referrals]
        return page("referrals.html", request, staff, lists=lists, selected_status=status or "", states=STATES,
                    single=False, names=self._association_names(lang), form_key=uuid.uuid4().hex)

    @route("GET", "/referrals/<string:referral_id>", auth="referrals.read", page=True, summary="One referral")
    def referral_page(self, request, staff, referral_id):
        """One referral (the inbox links here); the service refuses it to anyone but its two associations."""
        lang = request_language(request, staff)
        referral = for_page(self.referrals_rpc.get_referral(referral_id, self.identity.sign(staff, "referrals")),
                            lang)
        timeline(referral, lang, self.directory)
        if referral["direction"] == "received":  # who sent it and how to reach her (the directory's read model)
            referral["sender"] = staff_contact(self.directory, referral.get("created_by"))
        elif referral.get("beneficiary_id") and allows(staff["roles"], "cases.read"):
            # For the sender only: whom it is about, from intake (an audited read of her record).
            record = self.intake_rpc.get_beneficiary(referral["beneficiary_id"], self.identity.sign(staff, "intake"))
            referral["about"] = {key: record.get(key) for key in NAME_KEYS if record.get(key)}
        if any(action["name"] == "reroute" for action in referral["actions"]):
            referral["recipients"] = sorted({s["association"] for s in self.directory.find_services(
                referral["service_category"])} - {staff["association"], referral["to_association"]})
        lists = {"received": [], "sent": [], referral["direction"]: [referral]}
        return page("referrals.html", request, staff, lists=lists, selected_status="", states=STATES, single=True,
                    names=self._association_names(lang), form_key=uuid.uuid4().hex)

    @route("POST", "/referrals/<string:referral_id>/<string:action>", auth="referrals.act",
           audience=("referrals", "intake"), page=True, form=True, path=ActionSchema,
           body=BodyBy("action", {"decline": DeclineFormSchema, "withdraw": WithdrawFormSchema,
                                  "dismiss": WithdrawFormSchema, "reroute": RerouteFormSchema}, TransitionFormSchema),
           summary="Act on a referral from its page's form (works without JavaScript); irreversible steps "
                   "(decline, withdraw, reroute, dismiss) need the confirmation ticked")
    def referral_action_form(self, request, staff, actor, referral_id, action, body=None, errors=None):
        from services.gateway.api_cases import confirm_again, form_key, with_lang  # api_cases imports this module

        if errors:
            return confirm_again(request, staff, errors, with_lang(f"/referrals/{referral_id}/{action}", request),
                                 "action." + action, {"to_association": request.form.get("to_association")},
                                 texts=[NEEDS_INPUT[action]] if action in ("decline", "complete") else [])
        body.pop("confirm", None)
        key = form_key(request)
        if action == "reroute":
            referral_id = self.referrals_rpc.reroute(referral_id, body, actor, idempotency_key=key)["id"]
        else:
            self.referrals_rpc.transition(referral_id, action, body, actor, idempotency_key=key)
        return redirect(with_lang(f"/referrals/{referral_id}", request), code=303)

    def _association_names(self, lang):
        """slug -> the association's name as the page's reader writes it (Arabic, else French)."""
        return {a["slug"]: a.get("name_ar" if lang == "ar" else "name_fr") or a["slug"]
                for a in self.directory.list_associations()}

    @route("GET", "/beneficiaries/<string:beneficiary_id>", auth="cases.read", page=True, summary="Her record")
    def beneficiary_page(self, request, staff, beneficiary_id):
        """Her record, sessions, consents and duplicate flags, with the consent and referral forms.

        Intake refuses (and audits) anyone outside her association: that becomes the error page.
        """
        lang = request_language(request, staff)
        record = self.intake_rpc.get_beneficiary(beneficiary_id, self.identity.sign(staff, "intake"))
        record["registered_local"] = when(record.get("registered_at"), lang)
        for listening in record.get("sessions", []):
            listening["held_local"] = when(listening.get("held_at"), lang)
        for consent in record.get("consents", []):
            consent["given_local"] = when(consent.get("given_at"), lang)
            consent["expires_local"] = when(consent.get("expires_at"), lang)
            consent["status"] = consent_status(consent)
        # The forms start on a need noted in her sessions (most often the one she is referred for).
        suggested = next((need for listening in record.get("sessions", []) for need in listening["needs"]), None)
        referrals, audit, disclosures = [], {"items": []}, {"items": []}
        if not record.get("erased"):
            intake_actor = self.identity.sign(staff, "intake")
            if allows(staff["roles"], "referrals.read"):  # her referrals, each with who did what and when
                referrals = self.referrals_rpc.referrals_about(beneficiary_id, self.identity.sign(staff, "referrals"))
                for referral in referrals:
                    for_page(referral, lang)
                    timeline(referral, lang, self.directory)
            audit = self.intake_rpc.audit_trail(beneficiary_id, intake_actor, paged=True, limit=RECENT)
            disclosures = self.intake_rpc.list_disclosures(beneficiary_id, intake_actor, paged=True, limit=RECENT)
            for entry in audit["items"] + disclosures["items"]:
                entry["at_local"] = when(entry.get("at"), lang)
            people = {}
            for entry in audit["items"]:  # who: her colleagues by name (the directory's read model)
                if entry["staff_id"] not in people:
                    people[entry["staff_id"]] = staff_contact(self.directory, entry["staff_id"])
                entry["by_name"] = (people[entry["staff_id"]] or {}).get("name")
        return page("beneficiary.html", request, staff, record=record, needs=NEEDS, urgencies=URGENCIES,
                    shareable=SHAREABLE_FIELDS, names=self._association_names(lang), suggested=suggested,
                    referrals=referrals, audit=audit, disclosures=disclosures, form_key=uuid.uuid4().hex,
                    here=f"/beneficiaries/{beneficiary_id}?lang={lang}", registered=request.args.get("registered"),
                    recipients={} if record.get("erased") else recipients_by_category(self.directory,
                                                                                      staff["association"]))

    @route("GET", "/events/<string:event_id>", auth=SIGNED_IN, page=True,
           summary="An event's older notification link: its own page now")
    def event_page(self, request, staff, event_id):
        """Notifications written before their links went to the event's own page (notifications' event_link)
        still open it; that page says clearly when the event is unknown or cancelled."""
        lang = f"?lang={request.args['lang']}" if request.args.get("lang") in LANGUAGES else ""
        return redirect(f"/calendar/events/{quote(event_id, safe='')}{lang}", code=303)
