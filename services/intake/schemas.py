"""Shapes of intake requests (RPC and HTTP). Loading raises marshmallow.ValidationError."""

from marshmallow import RAISE, Schema, ValidationError, fields, validate, validates_schema

from tansiq import paging
from tansiq.contracts.fields import LANGUAGES, URGENCIES, slug, text
from tansiq.contracts.intake import NEEDS
from tansiq.contracts.referrals import SHAREABLE_FIELDS

KINDS = ("survivor", "woman_in_difficulty", "project_holder", "trainee", "artisan")
NAME_FIELDS = ("first_name", "last_name", "first_name_ar", "last_name_ar")


class Strict(Schema):
    class Meta:
        unknown = RAISE  # a misspelt field must not be silently dropped from a woman's record


def need(**kwargs):
    return fields.String(validate=validate.OneOf(NEEDS), **kwargs)


class BeneficiaryListQuerySchema(paging.PageQuery):
    """GET /api/beneficiaries: one page of her association's records, optionally those with this phone or name."""

    phone = text(40, load_default=None, allow_none=True)
    name = text(200, load_default=None, allow_none=True)
    kind = fields.String(validate=validate.OneOf(KINDS), load_default=None, allow_none=True)
    registered_since = fields.Date(load_default=None, allow_none=True)


class SessionSchema(Strict):
    """A listening session: needs identified, urgency, orientation given, notes."""

    needs = fields.List(need(), load_default=list)
    urgency = fields.String(validate=validate.OneOf(URGENCIES), load_default="normal")
    orientation = text(2000, load_default=None, allow_none=True)
    notes = text(10000, load_default=None, allow_none=True)
    held_at = fields.AwareDateTime(load_default=None, allow_none=True)


# Refusals of a whole record that mean a value is missing (the gateway's field code: "required").
NAME_REQUIRED = "a first or last name (Arabic or Latin script) is required"
ONE_RECIPIENT = "give either recipient_association or recipient_category"


class BeneficiarySchema(SessionSchema):
    """Registration: identity and contact, plus the first listening session."""

    kind = fields.String(validate=validate.OneOf(KINDS), load_default="woman_in_difficulty")
    schooled = fields.Boolean(load_default=None, allow_none=True)
    first_name = text(100, load_default=None, allow_none=True)
    last_name = text(100, load_default=None, allow_none=True)
    first_name_ar = text(100, load_default=None, allow_none=True)
    last_name_ar = text(100, load_default=None, allow_none=True)
    phone = text(40, load_default=None, allow_none=True)
    birth_date = fields.Date(load_default=None, allow_none=True)
    birth_year = fields.Integer(validate=validate.Range(1900, 2100), load_default=None, allow_none=True)
    city = text(100, load_default="")
    language = fields.String(validate=validate.OneOf(LANGUAGES), load_default=None, allow_none=True)

    @validates_schema
    def _a_name(self, data, **kwargs):
        if not any((data.get(name) or "").strip() for name in NAME_FIELDS):
            raise ValidationError(NAME_REQUIRED, "first_name")
        if data.get("birth_date") and data.get("birth_year") and data["birth_date"].year != data["birth_year"]:
            raise ValidationError("birth year does not match birth date", "birth_year")


class ConsentSchema(Strict):
    purpose = need(required=True)
    fields_ = fields.List(fields.String(validate=validate.OneOf(SHAREABLE_FIELDS)), required=True,
                          validate=validate.Length(min=1), data_key="fields", attribute="fields")
    recipient_association = slug(load_default=None, allow_none=True)
    recipient_category = need(load_default=None, allow_none=True)  # "any partner offering <category>"
    expires_at = fields.AwareDateTime(load_default=None, allow_none=True)

    @validates_schema
    def _one_recipient(self, data, **kwargs):
        if bool(data.get("recipient_association")) == bool(data.get("recipient_category")):
            raise ValidationError(ONE_RECIPIENT, "recipient_association")
        if data.get("recipient_category") not in (None, data.get("purpose")):
            # A consent "for legal orientation, to any partner offering shelter" could never be used.
            raise ValidationError("must be the same category as the purpose", "recipient_category")


class ShareSchema(Strict):
    recipient_association = slug(required=True)
    category = need(required=True)
    fields_ = fields.List(fields.String(validate=validate.OneOf(SHAREABLE_FIELDS)), required=True,
                          validate=validate.Length(min=1), data_key="fields", attribute="fields")


class DuplicateDecisionSchema(Strict):
    decision = fields.String(required=True, validate=validate.OneOf(("distinct", "same")))
