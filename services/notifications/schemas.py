"""Shapes of the notifications RPC answers and requests."""

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from services.notifications.models import CHANNELS

HHMM = validate.Regexp(r"^([01][0-9]|2[0-3]):[0-5][0-9]$", error="must be HH:MM (24 h)")


class InboxItemSchema(Schema):
    id = fields.Integer()
    staff_id = fields.String()
    association = fields.String()
    kind = fields.String()
    urgency = fields.String()
    subject_key = fields.String()
    subject_params = fields.Dict()
    link = fields.String()
    created_at = fields.AwareDateTime()
    read_at = fields.AwareDateTime(allow_none=True)
    read = fields.Function(lambda item: item.read_at is not None)


class PreferencesSchema(Schema):
    """What a staff member may change; everything is optional (a partial update)."""

    channels = fields.List(fields.String(validate=validate.OneOf(CHANNELS[:3])), validate=validate.Length(max=3))
    language = fields.String(allow_none=True, validate=validate.OneOf(("ar", "fr", "en")))
    quiet_start = fields.String(allow_none=True, validate=HHMM)
    quiet_end = fields.String(allow_none=True, validate=HHMM)
    digest = fields.Boolean()
    digest_time = fields.String(validate=HHMM)

    @validates_schema
    def quiet_hours_in_pairs(self, data, **kwargs):
        if ("quiet_start" in data) != ("quiet_end" in data):
            raise ValidationError("set quiet_start and quiet_end together", "quiet_start")


class WebhookSchema(Schema):
    url = fields.Url(required=True, schemes={"http", "https"}, require_tld=False)
    kinds = fields.List(fields.String(), load_default=list)


