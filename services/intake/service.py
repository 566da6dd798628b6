"""Intake service: thin RPC entrypoints over services.intake.domain.

Every RPC acting for someone takes `actor`: the signed assertion the gateway made (tansiq.identity),
verified here before anything is read; what the actor's role allows is checked by the domain.
"""

from contextlib import contextmanager
from datetime import date

from nameko.rpc import rpc

from services.intake import domain
from services.intake.schemas import BeneficiarySchema, ConsentSchema, SessionSchema, ShareSchema
from tansiq.commands import Command
from tansiq.crypto import MasterKey
from tansiq.db import Database
from tansiq.envelope import utcnow
from tansiq.errors import Forbidden, load_request
from tansiq.identity import ActorIdentity
from tansiq.readmodel import DirectoryView

# Made once: a schema's construction cost about 0.1 ms a request, and loading keeps no state in it.
beneficiary_in, session_in, consent_in, share_in = BeneficiarySchema(), SessionSchema(), ConsentSchema(), ShareSchema()


class IntakeService:
    name = "intake"
    db = Database()
    keyring = MasterKey()
    identity = ActorIdentity()
    directory = DirectoryView()  # the directory as its change feed told this process (tansiq.readmodel)

    @rpc
    def health(self):
        return "ok"

    @contextmanager
    def guarded(self, beneficiary_id, actor, action):
        """A unit of work on one beneficiary; a refused attempt is still written to her audit trail."""
        try:
            with self.db.session() as session:
                yield session
        except Forbidden as exc:
            with self.db.session() as session:
                domain.record_refusal(session, beneficiary_id, actor, action, exc, utcnow())
            raise

    @rpc
    def register_beneficiary(self, payload, actor, idempotency_key=None):
        data, actor = load_request(beneficiary_in, payload), self.identity.actor(actor)
        command = Command("intake.register_beneficiary", actor, idempotency_key, payload)
        with self.db.session() as session:
            return command.run(session, lambda: domain.register_beneficiary(session, self.keyring, data, actor,
                                                                            utcnow()), subject=lambda r: r["id"])

    @rpc
    def get_beneficiary(self, beneficiary_id, actor):
        actor = self.identity.actor(actor)
        with self.guarded(beneficiary_id, actor, "read") as session:
            return domain.get_beneficiary(session, self.keyring, beneficiary_id, actor, utcnow())

    @rpc
    def list_beneficiaries(self, actor, *, phone=None, name=None, kind=None, registered_since=None, limit=None,
                           cursor=None):
        """One page of her association's records (no personal data): {"items", "next"} (tansiq.paging)."""
        actor = self.identity.actor(actor)
        since = date.fromisoformat(registered_since) if isinstance(registered_since, str) else registered_since
        with self.db.session() as session:
            return domain.list_beneficiaries(session, self.keyring, actor, phone=phone, name=name, kind=kind,
                                             registered_since=since, limit=limit, cursor=cursor)

    @rpc
    def add_session(self, beneficiary_id, payload, actor, idempotency_key=None):
        data, actor = load_request(session_in, payload), self.identity.actor(actor)
        command = Command("intake.add_session", actor, idempotency_key, beneficiary_id, payload)
        with self.guarded(beneficiary_id, actor, "add_session") as session:
            return command.run(session, lambda: domain.add_session(session, self.keyring, beneficiary_id, data, actor,
                                                                   utcnow()), subject=beneficiary_id)

    @rpc
    def record_consent(self, beneficiary_id, payload, actor, idempotency_key=None):
        data, actor = load_request(consent_in, payload), self.identity.actor(actor)
        command = Command("intake.record_consent", actor, idempotency_key, beneficiary_id, payload)
        with self.guarded(beneficiary_id, actor, "record_consent") as session:
            return command.run(session, lambda: domain.record_consent(session, beneficiary_id, data, actor, utcnow()),
                               subject=beneficiary_id)

    @rpc
    def revoke_consent(self, consent_id, actor, idempotency_key=None):
        actor = self.identity.actor(actor)
        command = Command("intake.revoke_consent", actor, idempotency_key, consent_id)
        with self.db.session() as session:
            return command.run(session, lambda: domain.revoke_consent(session, consent_id, actor, utcnow()),
                               subject=lambda r: r["beneficiary_id"])

    @rpc
    def prepare_referral_share(self, beneficiary_id, recipient_association, category, fields, actor,
                               override_reason=None, seal_for=None, idempotency_key=None):
        """Called by referrals, which forwards the case worker's own assertion (it cannot make one up).
        With `seal_for` the shared values leave intake sealed to the recipient (domain.prepare_referral_share).
        With a key (referrals derives it from the referral's), a repeat gets the first share: one disclosure."""
        actor = self.identity.actor(actor)
        load_request(share_in, {"recipient_association": recipient_association, "category": category,
                                     "fields": fields})
        command = Command("intake.prepare_referral_share", actor, idempotency_key, beneficiary_id,
                          recipient_association, category, fields, override_reason, seal_for)
        # For consents to "any partner offering <category>": the read model of the directory (no RPC).
        offering = {s["association"] for s in self.directory.find_services(category)
                    if s.get("status", "active") == "active"}
        with self.guarded(beneficiary_id, actor, "share") as session:
            now = utcnow()
            return command.run(session, lambda: domain.prepare_referral_share(
                session, self.keyring, beneficiary_id, recipient_association, category, fields, actor, now,
                override_reason=override_reason,
                recipient_offers=lambda association, _category: association in offering,
                seal_for=seal_for,
            ), subject=beneficiary_id,
                recheck=lambda first: domain.recheck_repeated_share(session, beneficiary_id, first, actor, now))

    @rpc
    def record_route_refusal(self, method, route, reason, actor):
        """The gateway tells who was refused which route (signed for her: no one else can be named)."""
        actor = self.identity.actor(actor)
        with self.db.session() as session:
            domain.record_route_refusal(session, actor, str(method)[:10], str(route)[:200], str(reason)[:60], utcnow())
        return "recorded"

    @rpc
    def erase_beneficiary(self, beneficiary_id, actor):
        actor = self.identity.actor(actor)
        with self.guarded(beneficiary_id, actor, "erase") as session:
            return domain.erase_beneficiary(session, beneficiary_id, actor, utcnow())

    @rpc
    def export_beneficiary(self, beneficiary_id, actor):
        """Her right of access (law 09-08): everything intake holds about her; `cases.export` (admins) only."""
        actor = self.identity.actor(actor)
        with self.guarded(beneficiary_id, actor, "export") as session:
            return domain.export_beneficiary(session, self.keyring, beneficiary_id, actor, utcnow())

    @rpc
    def list_duplicate_flags(self, beneficiary_id, actor):
        with self.db.session() as session:
            return domain.list_duplicate_flags(session, beneficiary_id, self.identity.actor(actor), utcnow())

    @rpc
    def resolve_duplicate_flag(self, flag_id, decision, actor):
        with self.db.session() as session:
            return domain.resolve_duplicate_flag(session, flag_id, decision, self.identity.actor(actor), utcnow())

    @rpc
    def list_disclosures(self, beneficiary_id, actor, *, limit=None, cursor=None, paged=False):
        """All of them as a list; with `paged` (or a `cursor`), one page newest first: {"items", "next"}."""
        actor = self.identity.actor(actor)
        with self.guarded(beneficiary_id, actor, "read_disclosures") as session:
            if paged or cursor:
                return domain.disclosures_page(session, self.keyring, beneficiary_id, actor, utcnow(), limit=limit,
                                               cursor=cursor)
            return domain.list_disclosures(session, self.keyring, beneficiary_id, actor, utcnow())

    @rpc
    def audit_trail(self, beneficiary_id, actor, *, limit=None, cursor=None, paged=False):
        """All of it, oldest first; with `paged` (or a `cursor`), one page newest first: {"items", "next"}."""
        actor = self.identity.actor(actor)
        with self.guarded(beneficiary_id, actor, "read_audit") as session:
            if paged or cursor:
                return domain.audit_page(session, beneficiary_id, actor, utcnow(), limit=limit, cursor=cursor)
            return domain.audit_trail(session, beneficiary_id, actor, utcnow())
