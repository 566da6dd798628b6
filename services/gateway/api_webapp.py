"""The staff web app's pages: sign-in, inbox, referrals, intake form, a beneficiary's record.

Pages are rendered on the server from the same RPC answers the JSON API returns; the
buttons and forms call the JSON API with a little vanilla JS (static/webapp.js).
A page that needs a session sends the browser to /login?next=<the page>.
Pages showing personal data are never cached (Cache-Control: no-store).
"""

import functools
import inspect
import json
import logging
import re
from datetime import datetime
from urllib.parse import parse_qs, quote, urlencode, urlsplit
from zoneinfo import ZoneInfo

from babel.dates import format_datetime
from werkzeug.exceptions import HTTPException
from werkzeug.utils import redirect

from services.gateway.access import can, check
from services.gateway.web import (
    LANGUAGES,
    Unauthorized,
    api,
    csrf_token,
    current_staff,
    render,
    request_language,
    response_for,
)
from services.intake.schemas import KINDS
from services.intake.schemas import LANGUAGES as SPOKEN_LANGUAGES
from services.referrals.domain import RECIPIENT, STEPS
from services.referrals.schemas import STATES
from tansiq.contracts.fields import URGENCIES
from tansiq.contracts.intake import NEEDS
from tansiq.contracts.referrals import SHAREABLE_FIELDS
from tansiq.errors import DomainError

log = logging.getLogger(__name__)
LOCAL_TZ = ZoneInfo("Africa/Casablanca")  # deadlines are shown as Moroccan staff live them
BABEL_LOCALES = {"ar": "ar_MA", "fr": "fr_MA", "en": "en_GB"}  # ar_MA: Western digits, as written in Morocco
WHEN_FORMAT = "EEE d MMM y, HH:mm"
NO_STORE = {"Cache-Control": "no-store"}
# The buttons a referral list offers (close and reroute need more than a button: not here).
PAGE_ACTIONS = ("acknowledge", "accept", "decline", "start", "complete", "withdraw")
NEEDS_INPUT = {"decline": "reason", "complete": "outcome"}
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


def to_login(request):
    here = request.full_path.rstrip("?")
    return redirect(f"/login?next={quote(here, safe='')}", code=303)


def when(value, lang):
    """An ISO time (UTC) as `lang` writes it, in Casablanca time."""
    if not value:
        return ""
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(value)
    return format_datetime(moment, WHEN_FORMAT, tzinfo=LOCAL_TZ, locale=BABEL_LOCALES[lang])


def actions_for(referral):
    """The page's buttons for this referral, from the referrals lifecycle (domain.STEPS)."""
    found = []
    for action in PAGE_ACTIONS:
        step = STEPS[action]
        direction = "received" if step.side == RECIPIENT else "sent"
        if referral["direction"] == direction and referral["state"] in step.sources:
            found.append({"name": action, "input": NEEDS_INPUT.get(action)})
    return found


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
    return referral


def page(template, request, staff, status=200, lang=None, **context):
    def lang_href(code):  # switching language keeps the page's other parameters (next, status)
        args = request.args.copy()
        args["lang"] = code
        return "?" + urlencode(list(args.items(multi=True)))

    response = render(template, lang or request_language(request, staff), status=status, staff=staff,
                      lang_href=lang_href, can=can(staff), csrf_token=csrf_token(request), **context)
    response.headers.update(NO_STORE)
    return response


def error_page(request, staff, exc):
    """A refused or failed page as an HTML page in the reader's language (the JSON API answers JSON)."""
    if not isinstance(exc, (DomainError, HTTPException)):
        log.exception("page %s failed", request.path)
    answer = response_for(exc)
    error = json.loads(answer.get_data(as_text=True))["error"]
    return page("error.html", request, staff, status=answer.status_code, code=error["code"],
                message=error["message"])


def staff_page(url, permission=None):
    """GET route of a page for signed-in staff whose roles hold `permission` (tansiq.contracts.actor):
    `fn(self, request, staff, **url_values)`.

    Without a valid session the browser goes to /login?next=<this page>; a refusal or a
    failure of a service becomes an error page instead of the JSON error body.
    """
    def decorate(fn):
        @functools.wraps(fn)
        def route(self, request, **values):
            try:
                staff = current_staff(request)
            except Unauthorized:
                return to_login(request)
            try:
                if permission is not None:
                    check(staff, permission)
                return fn(self, request, staff, **values)
            except Unauthorized:
                return to_login(request)
            except Exception as exc:  # noqa: BLE001 - shown as a page; unexpected ones are logged
                return error_page(request, staff, exc)

        route.__signature__ = inspect.Signature([p for name, p in inspect.signature(fn).parameters.items()
                                                 if name != "staff"])  # nameko checks the URL's arguments
        route.permission, route.optional = permission, False
        return api("GET", url)(route)

    return decorate


class WebAppPages:
    # notifications_rpc, referrals_rpc, intake_rpc, events_rpc and directory_rpc are declared by the
    # InboxApi, ReferralsApi, IntakeApi, EventsApi and DirectoryApi mixins that GatewayService also inherits.

    @api("GET", "/login")
    def login_page(self, request):
        target = safe_next(request.args.get("next"))
        # /login?next=/inbox?lang=ar speaks Arabic already, like the page she asked for.
        wanted = parse_qs(urlsplit(target).query).get("lang", [None])[0]
        lang = request.args.get("lang") if request.args.get("lang") in LANGUAGES else None
        lang = lang or (wanted if wanted in LANGUAGES else None)
        return page("login.html", request, None, lang=lang, next=target)

    @staff_page("/inbox", "staff.self")
    def inbox_page(self, request, staff):
        lang = request_language(request, staff)
        actor = self.identity.sign(staff, "notifications")
        # The newest 100, and a link to the older ones (tansiq.paging): never a silent cut.
        inbox = self.notifications_rpc.inbox(actor, limit=100, language=lang, cursor=request.args.get("cursor") or None,
                                             paged=True)
        items = inbox["items"]
        for item in items:
            item["when"] = when(item.get("created_at"), lang)
            item["open"] = has_page(item.get("link"))
        unread = self.notifications_rpc.unread_count(actor)
        return page("inbox.html", request, staff, items=items, unread=unread, next=inbox["next"])

    @staff_page("/account", "staff.self")
    def account_page(self, request, staff):
        """Her password (POST /api/password: the current one required, her other sessions end)."""
        return page("account.html", request, staff, changed=request.args.get("changed") == "1")

    @staff_page("/staff", "staff.manage")
    def staff_list_page(self, request, staff):
        """An admin's colleagues (her association's active staff), each with a deactivate button
        (POST /api/staff/<id>/deactivate, after a confirmation)."""
        members = self.directory_rpc.list_staff(staff["association"])
        return page("staff.html", request, staff, members=members, deactivated=request.args.get("deactivated") == "1")

    @staff_page("/inbox/<int:item_id>", "staff.self")
    def inbox_item_page(self, request, staff, item_id):
        """E-mails and SMS link here (notifications' inbox_link): the inbox, scrolled to that item."""
        return redirect(f"/inbox?{urlencode(list(request.args.items(multi=True)))}#item-{item_id}", code=303)

    @staff_page("/referrals", "referrals.read")
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
                    single=False, names=self._association_names(lang))

    @staff_page("/referrals/<string:referral_id>", "referrals.read")
    def referral_page(self, request, staff, referral_id):
        """One referral (the inbox links here); the service refuses it to anyone but its two associations."""
        referral = for_page(self.referrals_rpc.get_referral(referral_id, self.identity.sign(staff, "referrals")),
                            request_language(request, staff))
        lists = {"received": [], "sent": [], referral["direction"]: [referral]}
        return page("referrals.html", request, staff, lists=lists, selected_status="", states=STATES, single=True,
                    names=self._association_names(request_language(request, staff)))

    def _association_names(self, lang):
        """slug -> the association's name as the page's reader writes it (Arabic, else French)."""
        return {a["slug"]: a.get("name_ar" if lang == "ar" else "name_fr") or a["slug"]
                for a in self.directory_rpc.list_associations()}

    @staff_page("/intake", "cases.write")
    def intake_page(self, request, staff):
        return page("intake.html", request, staff, needs=NEEDS, urgencies=URGENCIES, kinds=KINDS,
                    spoken=SPOKEN_LANGUAGES, this_year=datetime.now(LOCAL_TZ).year)

    @staff_page("/beneficiaries/<string:beneficiary_id>", "cases.read")
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
        return page("beneficiary.html", request, staff, record=record, needs=NEEDS, urgencies=URGENCIES,
                    shareable=SHAREABLE_FIELDS, names=self._association_names(lang), suggested=suggested)

    @staff_page("/events/<string:event_id>")
    def event_page(self, request, staff, event_id):
        """Notifications link here: the calendar at the event's first day, its details open (staff also
        see network-only events)."""
        event = self.events_rpc.get_event(event_id, audience="network", actor=self.identity.sign(staff, "events"))
        args = [("date", (event.get("start_local") or event["starts_at"])[:10]), ("event", event_id)]
        args += [("lang", request.args["lang"])] if request.args.get("lang") in LANGUAGES else []
        return redirect(f"/calendar?{urlencode(args)}", code=303)
