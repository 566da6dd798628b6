"""The page strings whose keys are built at run time (`_("need." ~ need)`): prefix -> the values it takes.

Extraction cannot read such keys (tansiq.i18n explains the whole system); babel.cfg reads this
VOCABULARY instead, so every value of the contracts' vocabularies is a msgid the catalogue test checks.
"""

from services.events.validation import STATUSES as EVENT_STATUSES
from services.events.validation import VISIBILITIES
from services.gateway.api_cases import REFERRAL_REFUSALS
from services.gateway.event_forms import FIELD_OF_CODE, FREQUENCIES, WEEKDAYS
from services.gateway.web import FIELD_ERROR_CODES
from services.intake.schemas import KINDS
from services.referrals.domain import ACTIONS
from services.referrals.schemas import STATES
from tansiq.contracts.events import EVENT_KINDS
from tansiq.contracts.fields import LANGUAGES, ROLES, URGENCIES
from tansiq.contracts.intake import NEEDS
from tansiq.contracts.referrals import SHAREABLE_FIELDS

# What a record, a session or a referral shows, labelled "field.<name>" (beneficiary.html, referrals.html).
RECORD_FIELDS = ("first_name", "last_name", "first_name_ar", "last_name_ar", "phone", "birth_date", "birth_year",
                 "city", "language", "kind", "schooled", "needs", "urgency", "notes", "orientation")
DUPLICATE_REASONS = ("same_phone", "same_name", "similar_name", "same_birth_date", "same_birth_year")
# error.html says error.other for the rest; unknown_event: an event's page (a notification's link) it is not.
ERROR_PAGES = ("forbidden", "not_found", "service_unavailable", "unknown_event")
CONSENT_STATUSES = ("valid", "expired", "revoked")
LOGIN_REFUSALS = ("unauthorized", "too_many_attempts")
# The calendar's forms (event_forms.py, api_calendar_pages.py): their own error keys, the events service's
# refusals shown at a field, and the recurrence said in words.
FORM_ERRORS = ("required", "whole_number", "invalid_date", "invalid_time", "invalid_choice", "too_many")
EVENT_ERRORS = sorted({*FIELD_OF_CODE, "weekdays_daily", "invalid_window", "city_or_venue"})
# What her audit trail records (services/intake: each audited read or change, and refusals of them).
AUDIT_ACTIONS = ("register", "add_session", "read", "record_consent", "revoke_consent", "share", "override_share",
                 "read_disclosures", "read_audit", "erase", "export", "resolve_duplicate")
# A referral's history (services/referrals/domain.py): sent, each step, expiry, the recipient's copy erased.
HISTORY_ACTIONS = ("send", *ACTIONS, "expire", "erase_shared")
FORM_INPUTS = ("reason", "outcome")  # confirm.html asks again for what a refused form had
CONFIRMATIONS = ("irreversible", "revoke_consent", "duplicate")  # the ticked box before an irreversible step
ERASURE = ("title", "intro", "done")  # the erasure's confirmation page (confirm.html)

ROLE_NAMES = tuple(ROLES)  # the staff list names each role (staff.html)

VOCABULARY = {
    "role.": ROLE_NAMES,
    "need.": NEEDS,
    "state.": STATES,
    "urgency.": URGENCIES,
    "action.": ACTIONS,
    "kind.": KINDS,
    "language.": LANGUAGES,
    "field.": sorted({*RECORD_FIELDS, *SHAREABLE_FIELDS}),
    "dup.": DUPLICATE_REASONS,
    "error.": ERROR_PAGES,
    "field_error.": (*FIELD_ERROR_CODES, *REFERRAL_REFUSALS),  # the referral form shows those refusals at a field
    "consent.status_": CONSENT_STATUSES,
    "referrals.": ("received", "sent"),
    "login.refused_": LOGIN_REFUSALS,
    "form.": FORM_ERRORS,
    "event.error.": EVENT_ERRORS,
    "event.kind.": EVENT_KINDS,
    "event.status.": EVENT_STATUSES,
    "event.visibility.": VISIBILITIES,
    "event.registration_kind.": ("participant", "stand"),
    "rule.": (*FREQUENCIES, "interval", "until"),  # rule.count is a plural message (translate_plural)
    "weekday.": WEEKDAYS,
    "audit.": AUDIT_ACTIONS,
    "history.": HISTORY_ACTIONS,
    "input.": FORM_INPUTS,
    "confirm.": CONFIRMATIONS,
    "erase.": ERASURE,
}
