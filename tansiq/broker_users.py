"""Per-service broker users with least privilege (`tansiq broker users`), instead of one shared account.

Each service connects as its own RabbitMQ user, which may:
  - configure only its own queues (`<service>.events…`, `<service>.partners…`, `rpc-<service>`, its RPC reply
    queues) and the shared exchanges it declares at start (idempotent declarations of the same arguments);
  - write the exchanges it publishes to, and on the RPC exchange (topic permission, checked by RabbitMQ on
    every publish) only the routing keys of the services it calls (`<service>.<method>`) and RPC replies;
  - read only its own queues and the exchanges it binds them to.
So a client holding, say, the notifications user cannot call `intake.get_beneficiary` at all, and a client
without a user of the network cannot connect. Who calls whom is read from the services' RpcProxy
declarations, so this stays true as code changes.

Services declare the whole topology at start when they may (tansiq.messaging.broker.declare_network); with
these users each declares its own queues and skips the others', so the operator loads the topology first
(`tansiq topology export` → definitions import, or scripts/ensure-broker.sh), as deploy/README.md says.

Limits worth knowing: declaring an exchange with an alternate exchange needs read on it, so a service user
could bind one of its own queues to partners.outbound (what goes there is meant for partners, sealed by the
sender); the default exchange (RPC replies go through the RPC exchange, but delayed retries and
dead letters are republished by queue name) is one resource for RabbitMQ, so write on it cannot be narrowed
to one's own queues; and identity on RPC does not rest on the broker alone: every RPC acting for a staff
member carries the gateway's signed actor assertion (tansiq.identity).
"""

import base64
import hashlib
import os
import re
import secrets
from urllib.parse import quote, unquote, urlsplit, urlunsplit

from tansiq.messaging import topology

RPC_EXCHANGE = "nameko-rpc"
STANDALONE = "standalone_rpc_proxy"  # nameko's name for a client outside a service (`tansiq health`)
DEFAULT_EXCHANGE = "amq.default"
SERVICES = ("directory", "intake", "referrals", "events", "notifications", "gateway")
UUID = "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"  # the routing key of an RPC reply


def rpc_targets(service):
    """The services `service` calls over RPC, from its class's RpcProxy (and DirectoryView) dependencies."""
    from tansiq.runner import called_services, service_class

    return called_services(service_class(f"services.{service}.service", service))


def _any(names):
    return "|".join(re.escape(name) for name in names)


def service_permissions(service, targets=None):
    """(vhost permissions, topic permissions) of `service`'s broker user."""
    targets = rpc_targets(service) if targets is None else targets
    own_queues = [rf"{re.escape(service)}\.(events|partners|readmodel)(\..*)?", re.escape(f"rpc-{service}"),
                  rf"rpc\.reply-({re.escape(service)}|{STANDALONE})-{UUID}", re.escape(topology.UNROUTABLE_QUEUE)]
    exchanges = [exchange.name for exchange in topology.exchanges()] + [RPC_EXCHANGE]
    declared = "|".join(own_queues + [_any(exchanges)])
    writes = "|".join(own_queues + [_any([topology.EVENTS_EXCHANGE, topology.PARTNERS_OUTBOUND, RPC_EXCHANGE,
                                          DEFAULT_EXCHANGE])])
    # Declaring an exchange that has an alternate exchange needs read on it: every shared exchange, then.
    reads = "|".join(own_queues + [_any(exchanges)])
    # Calls to the services it uses, its own health (its container's healthcheck), and replies.
    rpc_keys = "|".join([rf"({_any(targets) or '(?!)'})\.[A-Za-z_][A-Za-z0-9_]*", rf"{re.escape(service)}\.health",
                         UUID])
    return (
        {"configure": f"^({declared})$", "write": f"^({writes})$", "read": f"^({reads})$"},
        [{"exchange": RPC_EXCHANGE, "write": f"^({rpc_keys})$", "read": ".*"},
         # Partner systems' messages arrive on partners.inbound; no service publishes there.
         {"exchange": topology.PARTNERS_INBOUND, "write": "^$", "read": ".*"}],
    )


def user_name(service, prefix=""):
    return f"{prefix}{service}"


def password_hash(password, salt=None):
    """RabbitMQ's rabbit_password_hashing_sha256: base64(salt + sha256(salt + password)), for definitions."""
    salt = salt if salt is not None else os.urandom(4)
    return base64.b64encode(salt + hashlib.sha256(salt + password.encode()).digest()).decode()


def generate(passwords=None, prefix="", vhost="/"):
    """{service: password} (new ones where missing) and the RabbitMQ definitions of the users."""
    passwords = dict(passwords or {})
    for service in SERVICES:
        passwords.setdefault(service, secrets.token_urlsafe(24))
    users, permissions, topic_permissions = [], [], []
    for service in SERVICES:
        name = user_name(service, prefix)
        users.append({"name": name, "password_hash": password_hash(passwords[service]),
                      "hashing_algorithm": "rabbit_password_hashing_sha256", "tags": []})
        vhost_permissions, topics = service_permissions(service)
        permissions.append({"user": name, "vhost": vhost, **vhost_permissions})
        topic_permissions += [{"user": name, "vhost": vhost, **topic} for topic in topics]
    return passwords, {"users": users, "permissions": permissions, "topic_permissions": topic_permissions}


def permissions_only(prefix="", vhost="/"):
    """The definitions without users or passwords (deploy/rabbitmq/service-users.json, committed): the
    rabbitmq container creates each user from its URI in deploy/.env, then imports these."""
    _, definitions = generate({service: "unused" for service in SERVICES}, prefix, vhost)
    return {key: definitions[key] for key in ("permissions", "topic_permissions")}


def amqp_uri(base_uri, user, password):
    """`base_uri` (host, port, vhost, amqp or amqps) with this user's credentials."""
    parts = urlsplit(base_uri)
    host = parts.hostname + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, f"{quote(user, safe='')}:{quote(password, safe='')}@{host}", parts.path,
                       parts.query, ""))


def env_lines(passwords, base_uri, prefix=""):
    """TANSIQ_<SERVICE>_AMQP_URI=… lines (deploy/.env, the tansiq-env Secret)."""
    return [f"TANSIQ_{service.upper()}_AMQP_URI={amqp_uri(base_uri, user_name(service, prefix), passwords[service])}"
            for service in SERVICES]


def apply(admin, passwords, prefix=""):
    """Create or update the users and their permissions in `admin`'s vhost (management API)."""
    for service in SERVICES:
        name = user_name(service, prefix)
        admin.put_user(name, passwords[service])
        vhost_permissions, topics = service_permissions(service)
        admin.set_permissions(name, vhost_permissions, topics)


def read_env(path):
    """{service: password} already in an env file's TANSIQ_<SERVICE>_AMQP_URI lines (kept when regenerating)."""
    found = {}
    if os.path.exists(path):
        for line in open(path, encoding="utf-8"):
            match = re.match(r"^TANSIQ_([A-Z]+)_AMQP_URI=(.+)$", line.strip())
            if match and match[1].lower() in SERVICES:
                found[match[1].lower()] = unquote(urlsplit(match[2]).password or "")
    return {service: password for service, password in found.items() if password}
