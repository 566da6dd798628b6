"""Intake service: thin RPC entrypoints over services.intake.domain."""

from contextlib import contextmanager

from nameko.rpc import RpcProxy, rpc

from services.intake import domain
from services.intake.schemas import BeneficiarySchema, ConsentSchema, SessionSchema, ShareSchema, StaffSchema
from tansiq.crypto import MasterKey
from tansiq.db import Database
from tansiq.envelope import utcnow
from tansiq.errors import Forbidden, load_request



class IntakeService:
    name = "intake"
    db = Database()
    keyring = MasterKey()
    directory = RpcProxy("directory")

    @rpc
    def health(self):
        return "ok"

    @contextmanager
    def guarded(self, beneficiary_id, staff, action):
        """A unit of work on one beneficiary; a refused attempt is still written to her audit trail."""
        try:
            with self.db.session() as session:
                yield session
        except Forbidden as exc:
            with self.db.session() as session:
                domain.record_refusal(session, beneficiary_id, staff, action, exc, utcnow())
            raise

    @rpc
    def register_beneficiary(self, payload, staff):
        data, staff = load_request(BeneficiarySchema(), payload), load_request(StaffSchema(), staff)
        with self.db.session() as session:
            return domain.register_beneficiary(session, self.keyring, data, staff, utcnow())

    @rpc
    def get_beneficiary(self, beneficiary_id, staff):
        staff = load_request(StaffSchema(), staff)
        with self.guarded(beneficiary_id, staff, "read") as session:
            return domain.get_beneficiary(session, self.keyring, beneficiary_id, staff, utcnow())

    @rpc
    def add_session(self, beneficiary_id, payload, staff):
        data, staff = load_request(SessionSchema(), payload), load_request(StaffSchema(), staff)
        with self.guarded(beneficiary_id, staff, "add_session") as session:
            return domain.add_session(session, self.keyring, beneficiary_id, data, staff, utcnow())

    @rpc
    def record_consent(self, beneficiary_id, payload, staff):
        data, staff = load_request(ConsentSchema(), payload), load_request(StaffSchema(), staff)
        with self.guarded(beneficiary_id, staff, "record_consent") as session:
            return domain.record_consent(session, beneficiary_id, data, staff, utcnow())

    @rpc
    def revoke_consent(self, consent_id, staff):
        with self.db.session() as session:
            return domain.revoke_consent(session, consent_id, load_request(StaffSchema(), staff), utcnow())

    @rpc
    def prepare_referral_share(self, beneficiary_id, recipient_association, category, fields, staff_id,
                               override_reason=None, staff_roles=(), staff_association=None, seal_for=None):
        """Called by referrals. Without `staff_association` the directory says whose staff she is (fail closed)."""
        load_request(ShareSchema(), {"recipient_association": recipient_association, "category": category, "fields": fields})
        if staff_association is None:
            staff_association = self.directory.get_staff(staff_id)["association"]
        staff = {"id": staff_id, "association": staff_association, "roles": list(staff_roles or ())}
        # For consents to "any partner offering <category>"; asked before the unit of work opens.
        offering = {s["association"] for s in self.directory.find_services(category)
                    if s.get("status", "active") == "active"}
        with self.guarded(beneficiary_id, staff, "share") as session:
            return domain.prepare_referral_share(
                session, self.keyring, beneficiary_id, recipient_association, category, fields, staff_id, utcnow(),
                override_reason=override_reason, staff_roles=tuple(staff["roles"]),
                staff_association=staff_association,
                recipient_offers=lambda association, _category: association in offering, seal_for=seal_for,
            )

    @rpc
    def erase_beneficiary(self, beneficiary_id, staff):
        staff = load_request(StaffSchema(), staff)
        with self.guarded(beneficiary_id, staff, "erase") as session:
            return domain.erase_beneficiary(session, beneficiary_id, staff, utcnow())

    @rpc
    def export_beneficiary(self, beneficiary_id, staff):
        """Her right of access (law 09-08): everything intake holds about her; admins only."""
        staff = load_request(StaffSchema(), staff)
        with self.guarded(beneficiary_id, staff, "export") as session:
            return domain.export_beneficiary(session, self.keyring, beneficiary_id, staff, utcnow())

    @rpc
    def list_duplicate_flags(self, beneficiary_id, staff):
        with self.db.session() as session:
            return domain.list_duplicate_flags(session, beneficiary_id, load_request(StaffSchema(), staff), utcnow())

    @rpc
    def resolve_duplicate_flag(self, flag_id, decision, staff):
        with self.db.session() as session:
            return domain.resolve_duplicate_flag(session, flag_id, decision, load_request(StaffSchema(), staff), utcnow())

    @rpc
    def list_disclosures(self, beneficiary_id, staff):
        staff = load_request(StaffSchema(), staff)
        with self.guarded(beneficiary_id, staff, "read_disclosures") as session:
            return domain.list_disclosures(session, self.keyring, beneficiary_id, staff, utcnow())

    @rpc
    def audit_trail(self, beneficiary_id, staff):
        with self.db.session() as session:
            return domain.audit_trail(session, beneficiary_id, load_request(StaffSchema(), staff), utcnow())
