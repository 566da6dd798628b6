"""`tansiq partners add|revoke|list` (operators) and `tansiq partner send|listen|flush` (a partner).

tansiq/cli.py calls `register(subparsers)`; every command sets `func(args) -> exit code`.
A partner's settings come from options or the environment:
TANSIQ_PARTNER_URI, TANSIQ_PARTNER_SLUG, TANSIQ_PARTNER_KEY (PEM file), TANSIQ_PARTNER_OUTBOX,
TANSIQ_PARTNER_ENC_KEY (the X25519 private key file that opens sealed referral data).
"""

import base64
import json
import os
import sys
import threading
from pathlib import Path

from tansiq import config, sealing, signing
from tansiq.broker_admin import BrokerAdmin, BrokerAdminError
from tansiq.errors import BadMessage
from tansiq.partner.client import PartnerClient, PartnerError

RPC_TIMEOUT_S = 10


def register(subparsers):
    partners = subparsers.add_parser("partners", help="provision partner associations on the broker")
    actions = partners.add_subparsers(dest="partners_command", required=True)
    add = actions.add_parser("add", help="create a broker user, a queue and a signing key for a partner")
    add.add_argument("slug")
    add.add_argument("--vhost", default="/")
    add.add_argument("--key-dir", type=Path, default=None, help="where to write <slug>.key (default var/partners)")
    add.add_argument("--amqp-uri", default=None, help="to reach the directory service (default AMQP_URI)")
    add.set_defaults(func=partners_add)
    revoke = actions.add_parser("revoke", help="delete a partner's broker user and close its connections")
    revoke.add_argument("slug")
    revoke.add_argument("--vhost", default="/")
    revoke.set_defaults(func=partners_revoke)
    listing = actions.add_parser("list", help="partners with a queue on the broker")
    listing.add_argument("--vhost", default="/")
    listing.set_defaults(func=partners_list)

    partner = subparsers.add_parser("partner", help="act as a partner association (the Python SDK)")
    partner.add_argument("--uri", default=os.environ.get("TANSIQ_PARTNER_URI"))
    partner.add_argument("--slug", default=os.environ.get("TANSIQ_PARTNER_SLUG"))
    partner.add_argument("--key", default=os.environ.get("TANSIQ_PARTNER_KEY"), help="private key PEM file")
    partner.add_argument("--outbox", default=os.environ.get("TANSIQ_PARTNER_OUTBOX"), help="SQLite file")
    partner.add_argument("--enc-key", default=os.environ.get("TANSIQ_PARTNER_ENC_KEY"),
                         help="encryption private key file: `listen` adds what was sealed to us, opened")
    commands = partner.add_subparsers(dest="partner_command", required=True)
    send = commands.add_parser("send", help="validate, sign, store and publish one message")
    send.add_argument("type")
    send.add_argument("--data", required=True, help="the message data as JSON")
    send.add_argument("--correlationid")
    send.set_defaults(func=partner_send)
    flush = commands.add_parser("flush", help="publish what waits in the outbox")
    flush.set_defaults(func=partner_flush)
    listen = commands.add_parser("listen", help="print each message for this partner as a JSON line")
    listen.add_argument("--count", type=int, default=None, help="stop after this many messages")
    listen.set_defaults(func=partner_listen)


# operators -----------------------------------------------------------------------------
def partners_add(args):
    admin = BrokerAdmin(vhost=args.vhost)
    key_dir = args.key_dir or config.var_dir() / "partners"
    key_path = key_dir / f"{args.slug}.key"
    try:
        credentials = admin.add_partner(args.slug)
    except (BrokerAdminError, OSError) as exc:
        print(f"error: could not provision {args.slug} on the broker: {exc}", file=sys.stderr)
        return 1
    if key_path.exists():
        key = signing.load_private_key(key_path.read_bytes())  # re-adding keeps the partner's key
    else:
        key = signing.generate_key()
        _write_private(key_path, signing.private_key_pem(key))
    enc_path = key_dir / f"{args.slug}.enc.key"
    if enc_path.exists():
        enc_key = sealing.load_private_key(enc_path.read_bytes())
    else:
        enc_key = sealing.generate_private_key()
        _write_private(enc_path, base64.b64encode(sealing.private_key_bytes(enc_key)) + b"\n")
    public_key, encryption_key = signing.public_key_b64(key), sealing.public_key_b64(enc_key)
    print(f"broker user:  {credentials['username']}\npassword:     {credentials['password']}\n"
          f"vhost:        {credentials['vhost']}\nqueue:        {credentials['queue']}\n"
          f"publish to:   {credentials['exchange']} with routing key {args.slug}.<type>\n"
          f"private key:  {key_path}  (give it to the partner over a safe channel, then delete it here)\n"
          f"public key:   {public_key}\n"
          f"encryption:   {enc_path}  (private: opens referral data sealed to the partner; give it with the other)\n"
          f"encryption public key: {encryption_key}")
    try:
        register_public_key(args.amqp_uri or config.amqp_uri(), args.slug, public_key, encryption_key)
    except Exception as exc:  # noqa: BLE001 - any failure here leaves the broker user usable; say what to do
        print(f"error: the public key is NOT registered in the directory: {_rpc_problem(exc)}.\n"
              f"Start the directory service, then run this command again (the key is kept).", file=sys.stderr)
        return 2
    print("public key registered in the directory, with the encryption key")
    return 0


def _write_private(path, content):
    path.parent.mkdir(parents=True, exist_ok=True)
    # Created 0600 from the start: a private key is never world-readable, not even briefly.
    with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as out:
        out.write(content)


def register_public_key(amqp_uri, slug, public_key, encryption_key=None):
    from tansiq.transport import cluster_rpc

    with cluster_rpc({"AMQP_URI": amqp_uri}, timeout=RPC_TIMEOUT_S) as rpc:
        rpc.directory.set_public_key(slug, public_key)
        if encryption_key:
            rpc.directory.set_encryption_key(slug, encryption_key)


def _rpc_problem(exc):
    name = type(exc).__name__
    if name == "RpcTimeout":
        return f"the directory service did not answer within {RPC_TIMEOUT_S}s (is it running?)"
    if name == "UnknownService":
        return "no directory service is running on this broker"
    return f"{name}: {exc}"


def partners_revoke(args):
    try:
        BrokerAdmin(vhost=args.vhost).revoke_partner(args.slug)
    except (BrokerAdminError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"{args.slug}: broker user deleted, connections closed; its queue is kept")
    return 0


def partners_list(args):
    try:
        partners = BrokerAdmin(vhost=args.vhost).list_partners()
    except (BrokerAdminError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for partner in partners:
        state = "active" if partner["active"] else "revoked"
        print(f"{partner['slug']:<32} {state:<8} {partner['messages']} waiting")
    return 0


# a partner -------------------------------------------------------------------------------
def _client(args):
    missing = [name for name in ("uri", "slug", "key") if not getattr(args, name)]
    if missing:
        raise SystemExit(f"error: set --{' --'.join(missing)} (or TANSIQ_PARTNER_URI/SLUG/KEY)")
    outbox = args.outbox or config.var_dir() / f"partner-{args.slug}.sqlite3"
    Path(outbox).parent.mkdir(parents=True, exist_ok=True)
    return PartnerClient(args.uri, args.slug, args.key, outbox, encryption_key=args.enc_key)


def partner_send(args):
    client = _client(args)
    try:
        data = json.loads(args.data)
        envelope = client.send(args.type, data, args.correlationid)
    except (ValueError, BadMessage) as exc:  # bad JSON, unknown type, a type partners may not send, bad data
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except PartnerError as exc:  # the broker refused it: revoked, or wrong permissions
        print(f"error: the broker refused: {exc} (the message stays in the outbox)", file=sys.stderr)
        return 1
    waiting = client.store.pending_count()
    print(json.dumps({"id": envelope.id, "type": envelope.type, "waiting_in_outbox": waiting}))
    return 0


def partner_flush(args):
    client = _client(args)
    print(json.dumps({"confirmed": client.flush(), "waiting_in_outbox": client.store.pending_count()}))
    return 0


def partner_listen(args):
    client = _client(args)
    stop, seen = threading.Event(), []

    def show(envelope):
        # The message as it came over the wire (validated data holds datetimes, not their ISO text).
        wire = envelope.raw if envelope.raw is not None else envelope.to_dict()
        if client.encryption_key is not None and envelope.data.get("sealed"):
            wire = {**wire, "opened": client.open_sealed(envelope)}  # only with --enc-key: ours alone
        print(json.dumps(wire, ensure_ascii=False, sort_keys=True), flush=True)
        seen.append(envelope.id)
        if args.count and len(seen) >= args.count:
            stop.set()

    try:
        client.listen(show, stop)
    except KeyboardInterrupt:
        pass
    return 0
