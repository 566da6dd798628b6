"""Field shapes reused across contracts."""

from marshmallow import ValidationError, fields, validate

SLUG = validate.Regexp(r"^[a-z0-9][a-z0-9-]{1,62}$", error="must be an association slug")
URGENCIES = ("urgent", "high", "normal", "low")
# The network's shared vocabulary, one place for every service and the partner contract.
CATEGORIES = (  # services associations offer; also the needs of a listening session and consent purposes
    "listening_orientation", "legal_orientation", "psychological_support", "medical_care", "shelter",
    "vocational_training", "literacy", "project_support", "marketing", "citizenship_training",
)
ROLES = ("case_worker", "coordinator", "events_manager", "admin")
LANGUAGES = ("ar", "fr", "en")


FIRST_YEAR, LAST_YEAR = 1900, 2200  # dates outside are typing errors or attacks on date arithmetic
MAX_LIST = 100


class StrictBoolean(fields.Boolean):
    """true or false, nothing else: marshmallow's Boolean would take "yes", 1 or "0"."""

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, bool):
            raise self.make_error("invalid", input=value)
        return value


class Moment(fields.AwareDateTime):
    """An ISO 8601 date-time with its offset, in the years a calendar or a referral can mean."""

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, str) or len(value) > 40:
            raise self.make_error("invalid", input=value, obj_type=self.OBJ_TYPE)
        moment = super()._deserialize(value, attr, data, **kwargs)
        if not FIRST_YEAR <= moment.year <= LAST_YEAR:
            raise ValidationError(f"the year must be between {FIRST_YEAR} and {LAST_YEAR}")
        return moment


def integer(minimum, maximum, **kwargs):
    """A JSON integer (never a string or a float) within bounds."""
    return fields.Integer(strict=True, validate=validate.Range(minimum, maximum), **kwargs)


def boolean(**kwargs):
    return StrictBoolean(**kwargs)


def moment(**kwargs):
    return Moment(**kwargs)


def bounded_list(inner, max_length=MAX_LIST, **kwargs):
    return fields.List(inner, validate=validate.Length(max=max_length), **kwargs)


def slug(**kwargs):
    return fields.String(validate=SLUG, **kwargs)


def urgency(**kwargs):
    return fields.String(validate=validate.OneOf(URGENCIES), **kwargs)


def identifier(**kwargs):
    return fields.String(validate=validate.Length(min=1, max=64), **kwargs)


def text(max_length=2000, min_length=0, **kwargs):
    return fields.String(validate=validate.Length(min=min_length, max=max_length), **kwargs)
