"""nameko entrypoints of the referrals service: thin — validate, call the domain, commit, return.

Staff RPCs take `actor`, the gateway's signed assertion (tansiq.identity), verified before anything
else; asking intake for the data to share forwards that same assertion.
"""

import logging
import weakref
from contextlib import contextmanager

from nameko.dependency_providers import Config
from nameko.rpc import rpc
from nameko.timer import timer
from sqlalchemy.exc import IntegrityError

from services.referrals import domain
from services.referrals.schemas import (
    CreateReferralSchema,
    HolidaySchema,
    ListQuerySchema,
    ReferralSchema,
    RerouteSchema,
    TransitionSchema,
)
from tansiq.calls import TimedRpcProxy
from tansiq.commands import Command
from tansiq.crypto import MasterKey
from tansiq.db import Database
from tansiq.envelope import utcnow
from tansiq.errors import DomainError, NotFound, load_request
from tansiq.identity import ActorIdentity
from tansiq.messaging import inbox
from tansiq.messaging.consumer import handles, handles_partner
from tansiq.readmodel import DirectoryView

log = logging.getLogger(__name__)
SCAN_INTERVAL_S = 60
PARTNER_UPDATES = tuple(f"ma.tansiq.referral.{verb}.v1" for verb in domain.EVENT_TO_ACTION)
referral_out = ReferralSchema()
# Made once: a schema's construction cost about 0.1 ms a request, and loading keeps no state in it.
create_referral_in, transition_in, reroute_in = CreateReferralSchema(), TransitionSchema(), RerouteSchema()
list_query_in, holiday_io = ListQuerySchema(), HolidaySchema()
HOSTED_PUBLIC_KEYS = weakref.WeakKeyDictionary()  # engine -> {association: its hosted public key}


class ReferralsService:
    name = "referrals"
    db = Database()
    keyring = MasterKey()
    identity = ActorIdentity()
    config = Config()
    intake = TimedRpcProxy("intake")  # RPC_TIMEOUT_S of referrals.yaml: under the gateway's, so it hears why
    directory = DirectoryView()  # the directory as its change feed told this process (tansiq.readmodel)

    @rpc
    def health(self):
        return "ok"

    # --- staff, through the gateway ---

    @rpc(expected_exceptions=DomainError)
    def create_referral(self, payload, actor, idempotency_key=None):
        assertion, actor = actor, self.identity.actor(actor)
        data = load_request(create_referral_in, payload)
        command = Command("referrals.create_referral", actor, idempotency_key, payload)
        referral_id = command.created_id()
        if command.key is not None:  # a repeat? before intake is asked to hand out data again
            with self.db.session() as session:
                done, first = command.first_result(session)
                if not done:
                    domain.check_id_unused(session, referral_id)
            if done:
                return first
        recipient = self._recipient(data["to_association"], data["service_category"])
        domain.check_can_create(actor, data["to_association"], data["service_category"], recipient["recipient_offers"])
        sender = self.directory.get_association(actor.association)
        seal_for = self._seal_for(referral_id, data["to_association"], recipient)
        share = self._share(assertion, data["beneficiary_id"], data["to_association"], data["service_category"],
                            data["fields"], data["override_reason"], seal_for, command)
        now = utcnow()
        with self.creating(command, referral_id, share, data["beneficiary_id"]) as session:
            def create():
                referral = domain.create_referral(
                    session, now, actor, self.keyring, beneficiary_id=data["beneficiary_id"],
                    to_association=data["to_association"], service_category=data["service_category"],
                    service_id=data["service_id"], reason=data["reason"], urgency=data["urgency"], share=share,
                    note=data["note"], from_integration=sender.get("integration", "tansiq"), referral_id=referral_id,
                    **recipient)
                return referral_out.dump(domain.view(referral, actor, now, self.keyring))
            return command.run(session, create, subject=referral_id)

    @rpc(expected_exceptions=DomainError)
    def transition(self, referral_id, action, payload, actor, idempotency_key=None):
        if action == "reroute":
            return self.reroute(referral_id, payload, actor, idempotency_key=idempotency_key)
        actor = self.identity.actor(actor)
        data = load_request(transition_in, payload)
        command = Command("referrals.transition", actor, idempotency_key, referral_id, action, payload)
        now = utcnow()
        with self.db.session() as session:
            def act():
                referral = domain.transition(session, now, actor, referral_id, action, reason=data["reason"],
                                             outcome=data["outcome"], note=data["note"],
                                             retention_days=self._retention_days())
                return referral_out.dump(domain.view(referral, actor, now, self.keyring))
            return command.run(session, act, subject=referral_id)

    @rpc(expected_exceptions=DomainError)
    def reroute(self, referral_id, payload, actor, idempotency_key=None):
        assertion, actor = actor, self.identity.actor(actor)
        data = load_request(reroute_in, payload)
        command = Command("referrals.reroute", actor, idempotency_key, referral_id, payload)
        new_id = command.created_id()
        with self.db.session() as session:  # refuse before intake hands out any data
            done, first = command.first_result(session)
            if not done:
                old = domain.check_can_reroute(session, referral_id, actor, data["to_association"])
                beneficiary_id, fields = old.beneficiary_id, data["fields"] or list(old.shared_fields)
                category = data["service_category"] or old.service_category
                domain.check_id_unused(session, new_id)
        if done:
            return first
        recipient = self._recipient(data["to_association"], category)
        domain.check_can_create(actor, data["to_association"], category, recipient["recipient_offers"])
        share = self._share(assertion, beneficiary_id, data["to_association"], category, fields,
                            data["override_reason"], self._seal_for(new_id, data["to_association"], recipient), command)
        now = utcnow()
        with self.creating(command, new_id, share, beneficiary_id) as session:
            def reroute():
                new = domain.reroute(
                    session, now, actor, self.keyring, referral_id, to_association=data["to_association"], share=share,
                    service_category=category, service_id=data["service_id"], reason=data["reason"],
                    urgency=data["urgency"], note=data["note"], new_referral_id=new_id, **recipient)
                return referral_out.dump(domain.view(new, actor, now, self.keyring))
            return command.run(session, reroute, subject=new_id)

    @rpc(expected_exceptions=DomainError)
    def get_referral(self, referral_id, actor):
        actor = self.identity.actor(actor)
        with self.db.session() as session:
            referral = domain.get_for(session, referral_id, actor)
            return referral_out.dump(domain.view(referral, actor, utcnow(), self.keyring))

    @rpc(expected_exceptions=DomainError)
    def list_referrals(self, actor, direction="sent", status=None, *, limit=None, cursor=None, paged=False):
        """The actor's own association's referrals (no actor, no list: nothing is read on trust).

        With `paged` (or a `cursor`): one page newest first, {"items", "next"} (tansiq.paging); without,
        the whole list, overdue first, as before."""
        actor = self.identity.actor(actor).require("referrals.read")
        query = load_request(list_query_in, {"direction": direction, "status": status})
        now = utcnow()
        with self.db.session() as session:
            if not (paged or cursor):
                referrals = domain.list_referrals(session, now, actor.association, query["direction"],
                                                  query["status"])
                return referral_out.dump([domain.view(r, actor, now, self.keyring) for r in referrals], many=True)
            referrals, next_cursor = domain.referrals_page(session, actor.association, query["direction"],
                                                           query["status"], limit, cursor)
            items = referral_out.dump([domain.view(r, actor, now, self.keyring) for r in referrals], many=True)
            return {"items": items, "next": next_cursor}

    @rpc(expected_exceptions=DomainError)
    def referrals_about(self, beneficiary_id, actor):
        """Her association's referrals of one beneficiary (her record's list), newest first, with their history.
        A case worker's view: referrals.read, and intake's cases.read, since it ties a referral to her."""
        actor = self.identity.actor(actor).require("referrals.read").require("cases.read")
        now = utcnow()
        with self.db.session() as session:
            referrals = domain.referrals_about(session, actor.association, beneficiary_id)
            return referral_out.dump([domain.view(r, actor, now, self.keyring) for r in referrals], many=True)

    @rpc(expected_exceptions=DomainError)
    def set_holiday(self, payload, actor):
        actor, data = self.identity.actor(actor), load_request(holiday_io, payload)
        with self.db.session() as session:
            domain.set_holiday(session, utcnow(), actor, data["day"], data["is_holiday"], data["name"])
            return holiday_io.dump(data)

    # --- the clock ---

    @timer(interval=SCAN_INTERVAL_S)
    def scan_deadlines(self):
        with self.db.session() as session:
            fired = domain.scan_deadlines(session, utcnow())
        if fired:
            log.info("referrals: %d deadline steps fired", len(fired))
        return len(fired)

    # --- messages: partner systems and consent revocation ---

    @timer(interval=SCAN_INTERVAL_S)
    def expire_copies(self):
        """Closed and completed referrals past their retention: the recipient's copy ends."""
        with self.db.session() as session:
            expired = domain.expire_copies(session, utcnow())
        if expired:
            log.info("referrals: %d recipient copies ended after their retention", len(expired))
        return len(expired)

    # A partner message the domain refuses raises DomainError: the kernel (handles_partner) rolls the
    # unit of work back, keeps the message in the dead-letter queue and answers the sender with the reason.

    @handles_partner("ma.tansiq.referral.sent.v1")
    def on_referral_sent(self, event):
        # From the read model of the directory: who receives, and the sender's published encryption key.
        recipient = self._association_or_none(event.data["to_association"])
        sender = self._association_or_none(event.source) or {}
        with self.db.session() as session:
            if inbox.first_time(session, self.name, event):
                self._receive(session, event, recipient, sender.get("encryption_key"))

    def _association_or_none(self, slug):
        try:
            return self.directory.get_association(slug)
        except NotFound:
            return None

    def _receive(self, session, event, recipient, sender_key):
        if recipient is None:
            raise DomainError(f"unknown association {event.data['to_association']}", code="unknown_association")
        return domain.receive_partner_referral(session, utcnow(), self.keyring, event.source, event.data,
                                               to_integration=recipient.get("integration", "tansiq"),
                                               from_encryption_key=sender_key)

    @handles_partner(*PARTNER_UPDATES)
    def on_referral_update(self, event):
        with self.db.session() as session:
            if inbox.first_time(session, self.name, event):
                domain.apply_partner_update(session, utcnow(), event.source, event.type, event.data,
                                            retention_days=self._retention_days())

    @handles("ma.tansiq.consent.revoked.v1", reads_directory=False)
    def on_consent_revoked(self, event):
        # Noted in a unit of work of its own first: a referral under this consent being made meanwhile is refused
        # (creating); the ending of the copies, after the note's commit, sees any referral committed before it.
        with self.db.session() as session:
            domain.note_revoked_consent(session, event.data["consent_id"], event.data["beneficiary_id"], utcnow())
        with self.db.session() as session:
            if inbox.first_time(session, self.name, event):
                domain.erase_shared_for_consent(session, utcnow(), event.data["consent_id"])

    @handles("ma.tansiq.beneficiary.erased.v1", reads_directory=False)
    def on_beneficiary_erased(self, event):
        # With or without a consent (an override), every referral about her loses what it held. Noted first, in
        # a unit of work of its own, as a revoked consent is: a referral about her being made meanwhile is refused.
        with self.db.session() as session:
            domain.note_erased_beneficiary(session, event.data["beneficiary_id"], utcnow())
        with self.db.session() as session:
            if inbox.first_time(session, self.name, event):
                domain.erase_for_beneficiary(session, utcnow(), event.data["beneficiary_id"])

    # --- helpers ---

    @contextmanager
    def creating(self, command, referral_id, share, beneficiary_id):
        """The unit of work making referral `referral_id` about `beneficiary_id` from intake's `share`.

        Refused before anything is written if her erasure or the revocation of the share's consent was heard
        since intake shared (domain.check_still_shareable, which holds her until the commit). Its id comes from
        the command's key, so an attempt racing another with the same key fails on the id before the key's row
        can say so: it hears 409 `idempotency_key_in_progress` (its retry gets the first answer), not a failure."""
        try:
            with self.db.session() as session:
                domain.check_still_shareable(session, beneficiary_id, share.get("consent_id"))
                yield session
        except IntegrityError:
            if command.key is None:
                raise
            with self.db.session() as session:
                made_by_another_attempt = domain.referral_exists(session, referral_id)
            if not made_by_another_attempt:
                raise
            raise command.lost_race() from None

    def _recipient(self, association, category):
        """What the domain needs to know about the recipient, from the read model of the directory."""
        details = self.directory.get_association(association)
        offers = any(s["association"] == association and s.get("status", "active") == "active"
                     for s in self.directory.find_services(category))
        return {"to_integration": details.get("integration", "tansiq"), "recipient_offers": offers,
                "to_encryption_key": details.get("encryption_key")}

    def _seal_for(self, referral_id, association, recipient):
        """What intake seals the shared values to, so they leave it readable by the recipient alone.
        A hosted recipient's key pair is made here on first use (its own small unit of work)."""
        return {"reader": association, "key": self._recipient_public_key(association, recipient),
                "context": domain.sealing_context(referral_id, "shared")}

    def _recipient_public_key(self, association, recipient):
        # A hosted association's pair is made once and never replaced (a master-key rotation rewraps its
        # private half only): its public key is kept per database, sparing a unit of work per referral.
        hosted = HOSTED_PUBLIC_KEYS.setdefault(self.db.engine, {})
        if recipient["to_integration"] != domain.QUEUE and association in hosted:
            return hosted[association]
        with self.db.session() as session:
            key = domain.recipient_public_key(session, self.keyring, association, recipient["to_integration"],
                                              recipient["to_encryption_key"], utcnow())
        if recipient["to_integration"] != domain.QUEUE:
            hosted[association] = key
        return key

    def _retention_days(self):
        return int(self.config.get("COPY_RETENTION_DAYS") or domain.COPY_RETENTION_DAYS)

    def _share(self, assertion, beneficiary_id, recipient, category, fields, override_reason, seal_for, command):
        """Intake decides what may be shared (consent, or a recorded override); Forbidden crosses back as is.
        It learns who asks from the case worker's own assertion, forwarded as received. The values come
        back sealed to the recipient: this service never sees them. With the command's key, a retry (after
        this service died, or gave up on intake, once intake had shared) gets the first share: one disclosure."""
        return self.intake.prepare_referral_share(
            beneficiary_id, recipient, category, list(fields), assertion, override_reason=override_reason,
            seal_for=seal_for, idempotency_key=command.key_for("intake.prepare_referral_share"))
