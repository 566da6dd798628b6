"""Messages about messages: rejections sent back to the sender's own queue."""

from marshmallow import fields, validate

from tansiq.contracts import ContractSchema, contract
from tansiq.contracts.fields import text
from tansiq.errors import REASON_CODES


@contract(
    "ma.tansiq.message.rejected.v1",
    summary="A message you sent was refused; it was kept for inspection and had no effect.",
    partners="receive",
    example={"rejected_id": "4f1c…", "rejected_type": "ma.tansiq.referral.sent.v1",
             "reason": "schema_invalid", "detail": "{'urgency': ['Must be one of: …']}"},
)
class MessageRejected(ContractSchema):
    rejected_id = text(255, required=True, allow_none=True)
    rejected_type = text(200, required=True, allow_none=True)
    reason = fields.String(required=True, validate=validate.OneOf(sorted(REASON_CODES)))
    detail = text(1000, load_default="")
