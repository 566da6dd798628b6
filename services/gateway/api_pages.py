"""The web app's shell: home page and static files (each area adds its pages in its own mixin)."""

import logging
import mimetypes
from datetime import datetime, timedelta, timezone

from nameko.exceptions import UnknownService
from werkzeug.exceptions import NotFound
from werkzeug.security import safe_join
from werkzeug.wrappers import Response

from services.gateway.pages import page
from services.gateway.routes import OPTIONAL, PUBLIC, route
from services.gateway.web import HERE, request_language
from tansiq.contracts.actor import allows
from tansiq.errors import ServiceUnavailable

log = logging.getLogger(__name__)
STATIC_DIR = HERE / "static"
HOME_ITEMS = 5  # of each kind on the home page; each list links to the whole
NEXT_EVENTS = timedelta(days=14)
AWAITING = ("sent", "received")  # a received referral's states that await her association's answer


class PagesApi:
    @route("GET", "/", auth=OPTIONAL, page=True, summary="Home: what needs her now, and the links her roles open")
    def home(self, request, staff):
        """Signed in: referrals awaiting her association's answer (overdue first), her unread notifications
        and the network's next events; signed out: the links."""
        if not staff:
            return page("home.html", request, staff, now_for=None)
        return page("home.html", request, staff, now_for=self._needs_now(request, staff))

    def _needs_now(self, request, staff):
        """Each part on its own: a service that is down leaves its part out (and says so), not the whole page."""
        lang = request_language(request, staff)
        parts, unavailable = {"awaiting": [], "awaiting_total": 0, "unread": [], "unread_total": 0, "events": []}, []
        for name, read in (("referrals", awaiting_her_answer), ("notifications", unread_news), ("events", next_events)):
            try:
                parts.update(read(self, staff, lang))
            except (ServiceUnavailable, UnknownService) as down:  # the rest of the page still helps her
                log.warning("home page without %s: %r", name, down)
                unavailable.append(name)
        return {**parts, "unavailable": unavailable}

    @route("GET", "/static/<path:path>", auth=PUBLIC, summary="The web app's scripts, styles and fonts")
    def static(self, request, path):
        full = safe_join(str(STATIC_DIR), path)  # refuses ../ escapes
        if full is None:
            raise NotFound()
        try:
            with open(full, "rb") as handle:
                body = handle.read()
        except (FileNotFoundError, IsADirectoryError):
            raise NotFound() from None
        mimetype = mimetypes.guess_type(full)[0] or "application/octet-stream"
        return Response(body, mimetype=mimetype, headers={"Cache-Control": "public, max-age=300"})


def awaiting_her_answer(gateway, staff, lang):
    from services.gateway.api_webapp import for_page  # api_webapp imports pages too

    if not allows(staff["roles"], "referrals.read"):
        return {}
    actor, awaiting = gateway.identity.sign(staff, "referrals"), []
    for state in AWAITING:  # only what awaits her answer is read, not the whole received list
        awaiting += [for_page(r, lang) for r in gateway.referrals_rpc.list_referrals(actor, "received", state)
                     if r["state"] == state]
    # Overdue first, then the nearest deadline (ISO times in UTC sort as text).
    awaiting.sort(key=lambda referral: (not referral.get("overdue"), referral.get("deadline") or "~"))
    return {"awaiting": awaiting[:HOME_ITEMS * 2], "awaiting_total": len(awaiting)}

def unread_news(gateway, staff, lang):
    from services.gateway.api_webapp import has_page, when
    from services.gateway.routes import may_open

    notifications = gateway.identity.sign(staff, "notifications")
    unread = gateway.notifications_rpc.inbox(notifications, unread_only=True, limit=HOME_ITEMS, language=lang,
                                          paged=True)["items"]
    for item in unread:
        item["when"] = when(item.get("created_at"), lang)
        item["open"] = has_page(item.get("link")) and may_open(staff, item["link"])
    return {"unread": unread, "unread_total": gateway.notifications_rpc.unread_count(notifications)}

def next_events(gateway, staff, lang):
    from services.gateway.api_webapp import when

    start = datetime.now(timezone.utc)
    events = gateway.events_rpc.list_occurrences_page(start.isoformat(), (start + NEXT_EVENTS).isoformat(),
                                                   audience="network", limit=HOME_ITEMS)["items"]
    for event in events:
        event["when"] = when(event["start"], lang)
    return {"events": events}
