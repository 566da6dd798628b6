"""The Python partner SDK: talk to Tansiq over AMQP with pika (see docs/partners.md)."""

from tansiq.partner.client import PartnerClient, PartnerError, PartnerRefused
from tansiq.partner.verify import check_inbound, rejection

__all__ = ["PartnerClient", "PartnerError", "PartnerRefused", "check_inbound", "rejection"]
