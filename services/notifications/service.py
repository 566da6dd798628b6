"""nameko entrypoints of the notifications service: thin — validate, call domain, commit, return."""

import os
import secrets
import time

from nameko.dependency_providers import Config
from nameko.rpc import rpc
from nameko.timer import timer

from services.notifications import channels, domain, schemas
from services.notifications.render import renderer
from services.notifications.rules import RULES
from tansiq.db import Database
from tansiq.envelope import utcnow
from tansiq.errors import NotFound, load_request
from tansiq.identity import ActorIdentity
from tansiq.messaging import inbox
from tansiq.messaging.consumer import handles, handles_batch
from tansiq.readmodel import DirectoryView

ERASED = "ma.tansiq.beneficiary.erased.v1"
# How often due deliveries are sent (and failed ones retried); tests shorten it.
DELIVERY_INTERVAL_S = float(os.environ.get("TANSIQ_DELIVERY_INTERVAL_S", "15"))
# Made once: a schema's construction cost about 0.1 ms a request, and loading keeps no state in it.
inbox_item_out = schemas.InboxItemSchema()
preferences_in, webhook_in = schemas.PreferencesSchema(), schemas.WebhookSchema()


class NotificationsService:
    name = "notifications"

    db = Database()
    config = Config()
    directory = DirectoryView()  # the directory as its change feed told this process (tansiq.readmodel)
    identity = ActorIdentity()

    # --- events ---

    @handles_batch(*RULES)
    def on_events(self, events):
        """Every event someone is told about; a backlog drains in batches, one unit of work each."""
        # Who must know, from the read model of the directory (tansiq.readmodel), before the unit of work.
        plans = {event.id: domain.plan(self.directory, event) for event in events}
        with self.db.session() as session:
            now, enabled = utcnow(), self._channels()
            fresh = inbox.first_times(session, self.name, events)
            told = domain.not_about_erased(session, [plans[event.id] for event in fresh])
            domain.record_many(session, told, now, enabled_channels=enabled)
        # Over the whole batch, so that a batch delivered again after a crash here (nothing new in it) still looks.
        self._forget_erased_meanwhile(domain.women_in(plans.values()))

    @handles(ERASED, reads_directory=False)
    def on_beneficiary_erased(self, event):
        # Noted in a unit of work of its own first: a batch telling of her meanwhile sees the note
        # (on_events); the forgetting, after the note's commit, sees what any batch committed before it.
        with self.db.session() as session:
            domain.note_erased(session, event.data["beneficiary_id"], utcnow())
        with self.db.session() as session:
            if inbox.first_time(session, self.name, event):
                domain.forget_beneficiary(session, event.data["beneficiary_id"])

    def _forget_erased_meanwhile(self, women):
        """Those of `women` whose erasure was noted while a batch telling of them was written are forgotten now."""
        if not women:
            return
        with self.db.session() as session:
            erased = domain.erased_among(session, women)
        for beneficiary_id in erased:  # a unit of work each, as her own erasure's: they never deadlock
            with self.db.session() as session:
                domain.forget_beneficiary(session, beneficiary_id)

    # --- delivery ---

    @timer(interval=DELIVERY_INTERVAL_S)
    def deliver(self):
        """Send what is due; a backlog goes out batch after batch (not BATCH per tick), within one interval."""
        total, until = {"sent": 0, "failed": 0}, time.monotonic() + DELIVERY_INTERVAL_S
        outside, renderer = channels.from_config(self.config), self._renderer()
        while True:
            with self.db.session() as session:
                counts = domain.deliver_due(session, utcnow(), outside, renderer)
            for key in total:
                total[key] += counts[key]
            if counts["sent"] + counts["failed"] < domain.BATCH or time.monotonic() > until:
                return total

    def _channels(self):
        return tuple(name for name in channels.names(self.config) if name != "webhook")

    def _renderer(self):
        return renderer(self.config.get("WEB_BASE_URL", "http://127.0.0.1:8000"))

    # --- inbox: each RPC acts for the staff member of the signed actor assertion, on her own items only ---

    def _staff_id(self, actor):
        return self.identity.actor(actor).require("staff.self").id

    @rpc
    def inbox(self, actor, unread_only=False, limit=50, language=None, *, cursor=None, paged=False):
        """The staff member's items, newest first, each with subject and body in `language`
        (the page she is reading) or else in the language of her preferences.

        With `paged` (or a `cursor`): {"items", "next"}, `next` the cursor of the following page or None
        (tansiq.paging); without, the first `limit` items as a list, as before."""
        staff_id = self._staff_id(actor)
        directory_language = None if language else self._directory_language(staff_id)
        with self.db.session() as session:
            items, next_cursor = domain.inbox_page(session, staff_id, unread_only=unread_only, limit=limit,
                                                   cursor=cursor)
            language = language or domain.preferences(session, staff_id, directory_language)["language"]
            renderer = self._renderer()
            entries = [dict(inbox_item_out.dump(item),
                            **renderer.entry(item.kind, language, item.subject_params)) for item in items]
        return {"items": entries, "next": next_cursor} if paged or cursor else entries

    @rpc
    def unread_count(self, actor):
        staff_id = self._staff_id(actor)
        with self.db.session() as session:
            return domain.unread_count(session, staff_id)

    @rpc
    def mark_read(self, actor, item_id):
        staff_id = self._staff_id(actor)
        with self.db.session() as session:
            item = domain.mark_read(session, staff_id, item_id, utcnow())
            return inbox_item_out.dump(item)

    # --- preferences ---

    @rpc
    def get_preferences(self, actor):
        staff_id = self._staff_id(actor)
        directory_language = self._directory_language(staff_id)
        with self.db.session() as session:
            return domain.preferences(session, staff_id, directory_language)

    @rpc
    def set_preferences(self, actor, changes):
        staff_id = self._staff_id(actor)
        changes = load_request(preferences_in, changes)
        directory_language = self._directory_language(staff_id)
        with self.db.session() as session:
            domain.set_preferences(session, staff_id, changes, utcnow())
            return domain.preferences(session, staff_id, directory_language)

    def _directory_language(self, staff_id):
        try:
            staff = self.directory.get_staff(staff_id) or {}
        except NotFound:
            return None
        return staff.get("language")

    # --- webhooks of partner systems ---

    @rpc
    def add_webhook(self, association, url, kinds=()):
        """Subscribe a partner system; returns its id and the HMAC secret (shown once)."""
        data = load_request(webhook_in, {"url": url, "kinds": list(kinds)})
        secret = secrets.token_hex(32)
        with self.db.session() as session:
            subscription = domain.add_webhook(session, association, data["url"], secret, data["kinds"], utcnow())
            return {"id": subscription.id, "secret": secret}

    @rpc
    def remove_webhook(self, association, subscription_id):
        with self.db.session() as session:
            domain.remove_webhook(session, association, subscription_id)

    @rpc
    def health(self):
        return "ok"
