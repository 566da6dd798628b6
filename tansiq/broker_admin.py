"""Per-partner broker identity, provisioned through the RabbitMQ management HTTP API.

A partner's broker user is named after its slug (so the AMQP `user_id` property,
which RabbitMQ checks against the connection's user, names the association) and may:
  - configure nothing: its queue is declared here, so it cannot declare, bind or delete anything;
  - write only the exchange `partners.inbound`, and there (topic permission) only
    routing keys `<slug>.…`;
  - read only its queue `partner.<slug>` (binding needs read on an exchange, which it has on none).
"""

import os
import re
import secrets
from urllib.parse import quote, urlsplit, urlunsplit

import requests

from tansiq.messaging import topology

DEFAULT_ADMIN_URL = "http://guest:guest@127.0.0.1:15672"
SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{1,62}$")


class BrokerAdminError(Exception):
    pass


def _q(value):
    return quote(value, safe="")


def partner_permissions(slug):
    """The vhost permissions and topic permissions of partner `slug` (also written to deploy/ docs)."""
    return {
        "configure": "^$",
        "write": f"^{re.escape(topology.PARTNERS_INBOUND)}$",
        "read": f"^{re.escape(topology.partner_queue(slug))}$",
    }, [
        {"exchange": topology.PARTNERS_INBOUND, "write": f"^{re.escape(slug)}\\.", "read": "^$"},
        {"exchange": topology.PARTNERS_OUTBOUND, "write": "^$", "read": f"^{re.escape(slug)}\\."},
    ]


class BrokerAdmin:
    def __init__(self, url=None, vhost="/", timeout=10):
        url = url or os.environ.get("TANSIQ_RABBIT_ADMIN_URL", DEFAULT_ADMIN_URL)
        parts = urlsplit(url)
        self.auth = (parts.username or "guest", parts.password or "guest")
        netloc = parts.hostname + (f":{parts.port}" if parts.port else "")
        self.base = urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", "")) + "/api"
        self.vhost = vhost
        self.timeout = timeout
        self.http = requests.Session()
        self.http.auth = self.auth

    def _call(self, method, path, json=None, ok_missing=False):
        response = self.http.request(method, self.base + path, json=json, timeout=self.timeout)
        if ok_missing and response.status_code == 404:
            return None
        if response.status_code >= 400:
            raise BrokerAdminError(f"{method} {path}: {response.status_code} {response.text[:300]}")
        return response.json() if response.content else None

    def overview(self):
        return self._call("GET", "/overview")

    def queue_stats(self):
        """{queue name: (ready, consumers)} for every queue of the vhost."""
        return {queue["name"]: (queue.get("messages", 0), queue.get("consumers", 0))
                for queue in self._call("GET", f"/queues/{_q(self.vhost)}")}

    def amqp_uri(self, host="127.0.0.1", port=5672):
        """An AMQP URI for this vhost with the admin's own credentials (tests and benchmarks)."""
        user, password = (_q(part) for part in self.auth)
        return f"amqp://{user}:{password}@{host}:{port}/{_q(self.vhost)}"

    # vhost and topology -------------------------------------------------------------
    def add_vhost(self):
        self._call("PUT", f"/vhosts/{_q(self.vhost)}", {})
        self._call("PUT", f"/permissions/{_q(self.vhost)}/{_q(self.auth[0])}",
                   {"configure": ".*", "write": ".*", "read": ".*"})

    def delete_vhost(self):
        self._call("DELETE", f"/vhosts/{_q(self.vhost)}", ok_missing=True)

    def declare_exchange(self, exchange):
        self._call("PUT", f"/exchanges/{_q(self.vhost)}/{_q(exchange.name)}", {
            "type": exchange.type, "durable": True, "auto_delete": False, "arguments": exchange.arguments})

    def declare_queue(self, queue):
        self._call("PUT", f"/queues/{_q(self.vhost)}/{_q(queue.name)}", {
            "durable": True, "auto_delete": False, "arguments": queue.arguments})
        for exchange, routing_key in queue.bindings:
            self._call("POST", f"/bindings/{_q(self.vhost)}/e/{_q(exchange)}/q/{_q(queue.name)}",
                       {"routing_key": routing_key, "arguments": {}})

    def declare_topology(self):
        """The exchanges of tansiq.messaging.topology and the unroutable queue (idempotent)."""
        for exchange in topology.exchanges():
            self.declare_exchange(exchange)
        self.declare_queue(topology.unroutable_queue())

    # users (services: tansiq.broker_users) -------------------------------------------
    def put_user(self, name, password, tags=""):
        self._call("PUT", f"/users/{_q(name)}", {"password": password, "tags": tags})

    def set_permissions(self, name, permissions, topic_permissions=()):
        self._call("PUT", f"/permissions/{_q(self.vhost)}/{_q(name)}", permissions)
        for topic in topic_permissions:
            self._call("PUT", f"/topic-permissions/{_q(self.vhost)}/{_q(name)}", topic)

    def delete_user(self, name):
        self._call("DELETE", f"/users/{_q(name)}", ok_missing=True)

    # partners -----------------------------------------------------------------------
    def add_partner(self, slug, password=None):
        """Create (or reset) partner `slug`'s user, permissions and queue -> credentials dict."""
        if not SLUG.match(slug):
            raise ValueError(f"{slug!r} is not an association slug")
        password = password or secrets.token_urlsafe(24)
        self._call("PUT", f"/users/{_q(slug)}", {"password": password, "tags": ""})
        permissions, topic_permissions = partner_permissions(slug)
        self._call("PUT", f"/permissions/{_q(self.vhost)}/{_q(slug)}", permissions)
        for topic in topic_permissions:
            self._call("PUT", f"/topic-permissions/{_q(self.vhost)}/{_q(slug)}", topic)
        self.declare_queue(topology.Queue(
            topology.partner_queue(slug), dict(topology.QUORUM),
            [(topology.PARTNERS_OUTBOUND, f"{slug}.#")]))
        return {"slug": slug, "username": slug, "password": password, "vhost": self.vhost,
                "queue": topology.partner_queue(slug), "exchange": topology.PARTNERS_INBOUND}

    def revoke_partner(self, slug, delete_queue=False):
        """Delete the user and close its open connections; the queue is kept unless asked."""
        self._call("DELETE", f"/users/{_q(slug)}", ok_missing=True)
        # Deleting a user does not always close live connections: close them explicitly.
        for connection in self._call("GET", "/connections?columns=name,user,vhost") or []:
            if connection.get("user") == slug:
                self.http.delete(self.base + f"/connections/{_q(connection['name'])}",
                                 headers={"X-Reason": "partner revoked"}, timeout=self.timeout)
        if delete_queue:
            self._call("DELETE", f"/queues/{_q(self.vhost)}/{_q(topology.partner_queue(slug))}",
                       ok_missing=True)

    def list_partners(self):
        """Partners known in this vhost: a `partner.<slug>` queue, and whether its user still exists."""
        users = {user["name"] for user in self._call("GET", "/users") or []}
        prefix = topology.partner_queue("")
        partners = []
        for queue in self._call("GET", f"/queues/{_q(self.vhost)}?columns=name,messages") or []:
            if queue["name"].startswith(prefix):
                slug = queue["name"][len(prefix):]
                partners.append({"slug": slug, "active": slug in users, "queue": queue["name"],
                                 "messages": queue.get("messages", 0)})
        return sorted(partners, key=lambda partner: partner["slug"])


def add_partner(slug, password=None, vhost="/"):
    return BrokerAdmin(vhost=vhost).add_partner(slug, password)


def revoke_partner(slug, vhost="/"):
    return BrokerAdmin(vhost=vhost).revoke_partner(slug)


def list_partners(vhost="/"):
    return BrokerAdmin(vhost=vhost).list_partners()
