"""Messages about messages: rejections sent back to the sender's own queue."""

from marshmallow import fields, validate

from tansiq.contracts import ContractSchema, contract
from tansiq.errors import REASON_CODES


@contract(
    "ma.tansiq.message.rejected.v1",
    summary="A message you sent was refused; it was kept for inspection and had no effect.",
    partners="receive",
    example={"rejected_id": "4f1c…", "rejected_type": "ma.tansiq.referral.sent.v1",
             "reason": "schema_invalid", "detail": "{'urgency': ['Must be one of: …']}"},
)
class MessageRejected(ContractSchema):
    rejected_id = fields.String(required=True, allow_none=True)
    rejected_type = fields.String(required=True, allow_none=True)
    reason = fields.String(required=True, validate=validate.OneOf(sorted(REASON_CODES)))
    detail = fields.String(load_default="")
