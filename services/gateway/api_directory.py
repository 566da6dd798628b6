"""JSON API of the directory the staff pages need: which associations offer a service."""

from nameko.rpc import RpcProxy

from services.gateway.schemas import ServicesQuerySchema
from services.gateway.web import api, current_staff, json_response


class DirectoryApi:
    directory_rpc = RpcProxy("directory")  # the same proxy GatewayService declares; listed so the mixin stands alone

    @api("GET", "/api/directory/services")
    def directory_services(self, request):
        """Active services of a category (optionally in one city): the recipients a referral or consent may name."""
        current_staff(request)
        query = ServicesQuerySchema().load(request.args.to_dict())
        services = self.directory_rpc.find_services(query["category"], city=query["city"])
        return json_response([s for s in services if s.get("status", "active") == "active"])
