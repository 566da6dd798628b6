"""`tansiq`: run, operate and try the network. `tansiq --help` lists the commands."""

import argparse
import json
import os
import sys
import warnings

# nameko 2.x runs on eventlet, which warns at import that it is in maintenance mode; we know.
warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")

from tansiq import config as tansiq_config


def cmd_run(args):
    from tansiq.runner import run

    run(args.service, args.service_class)


def cmd_up(args):
    from tansiq.supervisor import up

    services = args.services.split(",") if args.services else list(tansiq_config.SERVICES)
    return up(services)


def cmd_migrate(args):
    from tansiq import migrations

    for service in ([args.service] if args.service else migrations.DATA_SERVICES):
        print(f"migrating {service} …", flush=True)
        migrations.upgrade(service)
    print("databases are up to date")


def cmd_demo(args):
    from tansiq import demo

    if args.if_empty and demo.is_seeded():
        print("demo network already present; nothing to do")
        return 0
    demo.seed()
    return 0


def cmd_status(args):
    from tansiq import ops

    return ops.status(check_services=not args.broker_only)


def cmd_health(args):
    from tansiq import ops

    amqp_uri = tansiq_config.load(args.service)["AMQP_URI"]  # the service's own broker user
    try:
        if args.service == "gateway":
            import requests

            address = tansiq_config.load("gateway")["WEB_SERVER_ADDRESS"].replace("0.0.0.0", "127.0.0.1")
            requests.get(f"http://{address}/healthz", timeout=5).raise_for_status()
        else:
            ops.ping_service(amqp_uri, args.service, timeout=5)
    except Exception as exc:  # noqa: BLE001
        print(f"{args.service}: not healthy ({exc.__class__.__name__}: {exc})", file=sys.stderr)
        return 1
    print(f"{args.service}: ok")
    return 0


def cmd_dlq(args):
    from amqp.exceptions import NotFound as QueueNotFound

    try:
        return _dlq(args)
    except QueueNotFound:
        from tansiq import ops

        print(f"no dead-letter queue for {args.service!r}; one of: "
              f"{', '.join(name[:-4] for name in ops.known_queues() if name.endswith('.dlq'))}", file=sys.stderr)
        return 2


def _dlq(args):
    from tansiq import ops

    amqp_uri = tansiq_config.amqp_uri()
    if args.action == "replay":
        moved = ops.replay(amqp_uri, args.service, args.id)
        print(f"replayed {moved} message(s) to {args.service}")
        return 0
    letters = ops.dead_letters(amqp_uri, args.service)
    if args.id:
        letters = [letter for letter in letters if letter["message_id"] == args.id]
    if args.action == "show" or args.json:
        print(json.dumps(letters, indent=2, ensure_ascii=False, default=str))
    else:
        print(f"{len(letters)} dead letter(s) in {args.service}")
        for letter in letters:
            print(f"  {letter['message_id']}  {letter['reason']:<16} attempts={letter['attempts']}  "
                  f"{(letter['error'] or '')[:80]}")
    return 0


def cmd_topology(args):
    from tansiq import ops

    definitions = ops.export_definitions(args.output)
    print(f"wrote {args.output}: {len(definitions['exchanges'])} exchanges, {len(definitions['queues'])} queues")


def cmd_broker_users(args):
    """Per-service broker users: keep the passwords already in the env file, add the missing ones."""
    import json
    import os

    from tansiq import broker_users
    from tansiq.broker_admin import BrokerAdmin

    passwords, definitions = broker_users.generate(broker_users.read_env(args.env_file), args.prefix, args.vhost)
    lines = broker_users.env_lines(passwords, args.amqp_base, args.prefix)
    kept = [line for line in (open(args.env_file, encoding="utf-8").read().splitlines()
                              if os.path.exists(args.env_file) else [])
            if not any(line.startswith(new.split("=", 1)[0] + "=") for new in lines)]
    fd = os.open(args.env_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write("\n".join(kept + lines) + "\n")
    print(f"wrote {len(lines)} TANSIQ_<SERVICE>_AMQP_URI lines to {args.env_file} (mode 600)")
    if args.definitions:
        fd = os.open(args.definitions, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(definitions, handle, indent=2)
        print(f"wrote {args.definitions}: users (password hashes), permissions, topic permissions")
    if args.permissions:
        with open(args.permissions, "w", encoding="utf-8") as handle:
            json.dump(broker_users.permissions_only(args.prefix, args.vhost), handle, indent=2)
            handle.write("\n")
        print(f"wrote {args.permissions}: permissions and topic permissions (no secret)")
    if args.apply:
        broker_users.apply(BrokerAdmin(args.admin_url, vhost=args.vhost), passwords, args.prefix)
        print(f"applied {len(passwords)} users and their permissions to vhost {args.vhost}")
    return 0


def cmd_bench(args):
    from tansiq.bench import main as bench_main

    return bench_main(args)


def cmd_events_import(args):
    from tansiq import calendar_import

    return calendar_import.main(args.source, args.association, city=args.city)


def cmd_audit(args):
    from tansiq import accountability

    if args.action == "refusals":
        return _refusals(accountability, args)
    if args.action == "anchor":
        return _anchor(accountability, args)
    problems, checked = accountability.verify_audit()
    checked_anchors = ""
    if args.anchor:  # every anchor kept: the chain must still begin with each of them
        with open(args.anchor, encoding="utf-8") as kept:
            anchors = [json.loads(line) for line in kept if line.strip()]
        for anchored in anchors:
            problems += [f"anchor of {anchored.get('at')}: {problem}"
                         for problem in accountability.check_audit_anchor(anchored)]
        checked_anchors = f", {len(anchors)} anchor(s) hold"
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems:
        print(f"audit chain BROKEN: {len(problems)} problem(s) in {checked} entries", file=sys.stderr)
        return 1
    print(f"audit chain intact: {checked} entries{checked_anchors}")
    return 0


def _anchor(accountability, args):
    kept = accountability.anchor_audit()
    text = json.dumps(kept, sort_keys=True)
    if args.output:
        if accountability.inside_data_folder(args.output):
            print(f"error: {args.output} is inside the data folder ({tansiq_config.var_dir()}): whoever can rewrite "
                  f"the chain can rewrite it too. Keep anchors elsewhere (another machine, paper, an email to the "
                  f"coordinator).", file=sys.stderr)
            return 2
        with open(args.output, "a", encoding="utf-8") as out:  # appended: older anchors stay checkable
            out.write(text + "\n")
        print(f"anchored in {args.output}: ", end="")
    print(text)
    return 0


def _refusals(accountability, args):
    report = accountability.refusal_bursts(hours=args.hours, burst=args.burst)
    if not report:
        print(f"no route refused in the last {args.hours:g} h")
        return 0
    for entry in report:
        flag = "  BURST" if entry["burst"] else ""
        print(f"{entry['staff']} ({entry['association']}): {entry['total']} refused, {entry['in_worst_hour']} in the "
              f"hour from {entry['worst_hour']:%Y-%m-%d %H:00} UTC{flag}")
        for route, count in sorted(entry["routes"].items(), key=lambda item: -item[1]):
            print(f"    {count:>5}  {route}")
    bursts = [entry["staff"] for entry in report if entry["burst"]]
    if bursts:
        print(f"WARNING {len(bursts)} staff member(s) refused {args.burst}+ times within an hour: an account may be "
              f"misused or probing (see docs/security.md)", file=sys.stderr)
    return 0


def cmd_export(args):
    from tansiq import accountability
    from tansiq.errors import NotFound

    try:
        record = accountability.export_person(args.beneficiary_id, args.by)
    except NotFound as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    text = json.dumps(record, indent=2, ensure_ascii=False, default=str)
    if args.output:
        # Her whole record: readable by the operator alone.
        with os.fdopen(os.open(args.output, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w",
                       encoding="utf-8") as out:
            out.write(text + "\n")
        print(f"wrote {args.output}")
    else:
        print(text)
    return 0


def cmd_keys(args):
    from tansiq import accountability

    if args.action == "public":
        if not args.association:
            print("error: name the association: tansiq keys public <slug>", file=sys.stderr)
            return 2
        print(accountability.hosted_public_key(args.association))
        return 0
    done = accountability.rotate_master_keys(args.services.split(",") if args.services else
                                             accountability.KEYED_SERVICES)
    for service, (count, retired) in done.items():
        print(f"{service}: {count} key(s) rewrapped under a new master key; old key retired to {retired}")
    print("Destroy the retired keys once no backup made with them is still needed.")
    return 0


def cmd_transport(args):
    from tansiq import transport

    path = transport.key_file_path()
    if args.action == "rotate":
        kid = transport.rotate(path)
        print(f"{path}: new transport key {kid}. Each process seals with it once restarted, or once it has read a "
              f"message sealed with it; the older keys still open. Restart every service, then "
              f"`tansiq transport retire`.")
    elif args.action == "retire":
        dropped = transport.retire(path)
        print(f"{path}: retired {', '.join(dropped) if dropped else 'nothing'}; "
              f"{transport.TransportKeys.load(path).current} seals and opens")
    else:
        keys = transport.TransportKeys.load(path, create=False)
        for kid in keys.keys:
            print(f"{kid}{'  (seals)' if kid == keys.current else ''}")
    return 0


def build_parser():
    parser = argparse.ArgumentParser(prog="tansiq", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run one service in the foreground")
    run.add_argument("service", choices=tansiq_config.SERVICES)
    run.add_argument("--service-class", help="module:Class to run instead (tests, extensions)")
    run.set_defaults(func=cmd_run)

    up = sub.add_parser("up", help="run every service and the web app; Ctrl-C stops them all")
    up.add_argument("--services", help="comma-separated subset")
    up.set_defaults(func=cmd_up)

    migrate = sub.add_parser("migrate", help="bring every service's database to the latest schema")
    migrate.add_argument("--service")
    migrate.set_defaults(func=cmd_migrate)

    demo = sub.add_parser("demo", help="seed a realistic, fictional network (safe to run twice)")
    demo.add_argument("--if-empty", action="store_true", help="do nothing when the directory already has data")
    demo.set_defaults(func=cmd_demo)

    status = sub.add_parser("status", help="broker, queue depths, dead letters, services")
    status.add_argument("--broker-only", action="store_true")
    status.set_defaults(func=cmd_status)

    health = sub.add_parser("health", help="exit 0 iff the service answers (for healthchecks)")
    health.add_argument("service", choices=tansiq_config.SERVICES)
    health.set_defaults(func=cmd_health)

    dlq = sub.add_parser("dlq", help="inspect and replay dead letters")
    dlq.add_argument("action", choices=("list", "show", "replay"))
    dlq.add_argument("service")
    dlq.add_argument("--id", help="one message id")
    dlq.add_argument("--json", action="store_true")
    dlq.set_defaults(func=cmd_dlq)

    topology = sub.add_parser("topology", help="export the broker topology as RabbitMQ definitions")
    topology.add_argument("action", choices=("export",))
    topology.add_argument("--output", default=str(tansiq_config.ROOT / "deploy" / "rabbitmq" / "definitions.json"))
    topology.set_defaults(func=cmd_topology)

    broker = sub.add_parser("broker", help="per-service broker users with least privilege")
    broker.add_argument("action", choices=("users",))
    broker.add_argument("--env-file", default=str(tansiq_config.ROOT / "deploy" / ".env"),
                        help="where the TANSIQ_<SERVICE>_AMQP_URI lines go (passwords already there are kept)")
    broker.add_argument("--amqp-base", default="amqp://rabbitmq:5672/",
                        help="host, port and vhost of the URIs (amqps://host:5671/ for TLS)")
    broker.add_argument("--definitions", help="also write RabbitMQ definitions (users, permissions) to this file")
    broker.add_argument("--permissions", help="write only the permissions (deploy/rabbitmq/service-users.json)")
    broker.add_argument("--apply", action="store_true", help="create the users through the management API")
    broker.add_argument("--admin-url", default=None, help="management API (default TANSIQ_RABBIT_ADMIN_URL)")
    broker.add_argument("--vhost", default="/")
    broker.add_argument("--prefix", default="", help="prefix of the user names (several networks, tests)")
    broker.set_defaults(func=cmd_broker_users)

    bench = sub.add_parser("bench", help="measure the kernel against the raw broker; writes docs/benchmarks.md")
    bench.add_argument("--messages", type=int, default=2000)
    bench.add_argument("--calendar-events", type=int, default=0,
                       help="instead: the calendar rows at N events on PostgreSQL (issue 13: 100000)")
    bench.add_argument("--calendar-creates", type=int, default=200, help="creates timed in the calendar rows")
    bench.add_argument("--no-calendar-api", dest="calendar_api", action="store_false",
                       help="calendar rows without the creates through the API (which start a network)")
    bench.add_argument("--output", default=str(tansiq_config.ROOT / "docs" / "benchmarks.md"))
    flows = bench.add_argument_group("the real flows (section 5; tansiq/bench_flows.py)")
    flows.add_argument("--no-flows", dest="flows", action="store_false", help="only the floor and the probe rows")
    flows.add_argument("--flow-backends", default="sqlite,postgres", help="networks to run the flows on")
    flows.add_argument("--flow-rates", default="2,5,10,20,50", help="offered referral loops per second")
    flows.add_argument("--flow-seconds", type=float, default=10, help="how long each rate is offered")
    flows.add_argument("--backlog", type=int, default=2000, help="notifications backlog to drain")
    flows.add_argument("--drain", choices=("all", "batched"), default="all",
                       help="every consumer variant, or only the batched one as deployed (quick)")
    flows.add_argument("--list-notifications", type=int, default=1_000_000, help="inbox items loaded (0: no lists)")
    flows.add_argument("--list-referrals", type=int, default=10_000)
    flows.add_argument("--list-runs", type=int, default=100)
    bench.set_defaults(func=cmd_bench)

    events = sub.add_parser("events", help="the shared calendar: import an association's existing calendar")
    events_sub = events.add_subparsers(dest="events_command", required=True)
    events_import = events_sub.add_parser(
        "import", help="import an .ics file or http(s) URL (Google, Outlook) into an association's calendar; "
                       "importing again updates, never duplicates")
    events_import.add_argument("source", help="an .ics file, or an http(s) URL")
    events_import.add_argument("--association", required=True, help="the association whose calendar it is (slug)")
    events_import.add_argument("--city", help="where its events are (default: the association's city)")
    events_import.set_defaults(func=cmd_events_import)

    audit = sub.add_parser("audit", help="check the hash-chained audit trail of intake; list refused routes")
    audit.add_argument("action", choices=("verify", "anchor", "refusals"))
    audit.add_argument("--anchor", help="verify: also check the chain against anchors kept (a file written by "
                                        "`tansiq audit anchor`, one JSON line each)")
    audit.add_argument("--output", help="anchor: append the anchor to this file (outside the data folder)")
    audit.add_argument("--hours", type=float, default=24, help="refusals: how far back (default 24)")
    audit.add_argument("--burst", type=int, default=10, help="refusals: per hour from which one staff member is "
                                                              "flagged (default 10)")
    audit.set_defaults(func=cmd_audit)

    export = sub.add_parser("export", help="everything held about one beneficiary (her right of access, law 09-08)")
    export.add_argument("beneficiary_id")
    export.add_argument("--by", required=True, help="who asks (an admin's staff id; written to her audit trail)")
    export.add_argument("--output", help="write to this new file (0600) instead of standard output")
    export.set_defaults(func=cmd_export)

    keys = sub.add_parser("keys", help="master-key rotation (stop the services first); hosted public keys")
    keys.add_argument("action", choices=("rotate", "public"))
    keys.add_argument("association", nargs="?", help="public: the hosted association whose encryption key to print")
    keys.add_argument("--services", help="comma-separated subset of intake,referrals")
    keys.set_defaults(func=cmd_keys)

    transport = sub.add_parser("transport", help="the transport keys sealing internal RPC on the broker "
                                                 "(TANSIQ_TRANSPORT_KEY_FILE, default var/keys/transport.keys)")
    transport.add_argument("action", choices=("list", "rotate", "retire"))
    transport.set_defaults(func=cmd_transport)

    try:
        from tansiq.partner.cli import register as register_partner_commands
    except ImportError:
        pass
    else:
        register_partner_commands(sub)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        return args.func(args) or 0
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
