"""Operator commands behind `tansiq audit verify`, `tansiq export` and `tansiq keys rotate`.

They work on the services' databases directly (config from deploy/config, like `tansiq migrate`),
so they also work when the services are stopped, which key rotation requires.
"""

import os
from contextlib import contextmanager
from datetime import datetime, timezone

from tansiq import config
from tansiq.crypto import KeyRing, master_key_path, new_master_key_file
from tansiq.db import make_engine, session_scope

# The services holding data keys under a master key, and how each rewraps them.
KEYED_SERVICES = ("intake", "referrals")


@contextmanager
def unit_of_work(service):
    engine = make_engine(config.load(service)["DB_URI"])
    try:
        with session_scope(engine) as session:
            yield session
    finally:
        engine.dispose()


def keyring(service):
    return KeyRing.from_file(master_key_path(service, config.load(service)))


def verify_audit():
    """[problems] in intake's audit chain; [] when it is intact. Also returns how many entries were checked."""
    from sqlalchemy import func, select

    from services.intake import audit
    from services.intake.models import AuditEntry

    with unit_of_work("intake") as session:
        return audit.verify(session), session.scalar(select(func.count()).select_from(AuditEntry))


def anchor_audit(now=None):
    """The audit chain's anchor: its head hash, how many entries it closes, and when (UTC)."""
    from services.intake import audit

    with unit_of_work("intake") as session:
        kept = audit.anchor(session)
    return {**kept, "at": (now or datetime.now(timezone.utc)).isoformat(timespec="seconds")}


def check_audit_anchor(kept):
    """[problems] if the chain does not begin with the anchored one (rewritten or cut)."""
    from services.intake import audit

    with unit_of_work("intake") as session:
        return audit.check_anchor(session, kept)


def inside_data_folder(path):
    """True if `path` is in the data folder (var/), which a backup or an intruder of the data copies with it."""
    from pathlib import Path

    resolved, data = Path(path).resolve(), config.var_dir().resolve()
    keys = config.keys_dir().resolve()
    return (resolved == data or data in resolved.parents) and not (keys == resolved or keys in resolved.parents)


BURST_PER_HOUR = 10  # refusals of one staff member within an hour that `tansiq audit refusals` flags


def refusal_bursts(hours=24, burst=BURST_PER_HOUR, now=None):
    """The gateway's route refusals of the last `hours`, by staff member: [{staff, association, total,
    worst_hour, in_worst_hour, burst, routes}], the most refused first."""
    from datetime import timedelta

    from services.intake import domain as intake

    now = now or datetime.now(timezone.utc)
    with unit_of_work("intake") as session:
        rows = intake.route_refusals(session, now - timedelta(hours=hours))
    by_staff = {}
    for staff_id, association, at, detail in rows:
        entry = by_staff.setdefault(staff_id, {"staff": staff_id, "association": association, "total": 0,
                                               "hours": {}, "routes": {}})
        entry["total"] += 1
        hour = at.replace(minute=0, second=0, microsecond=0)
        entry["hours"][hour] = entry["hours"].get(hour, 0) + 1
        route = detail.removeprefix("refused: ")
        entry["routes"][route] = entry["routes"].get(route, 0) + 1
    report = []
    for entry in by_staff.values():
        worst_hour, in_worst = max(entry.pop("hours").items(), key=lambda item: item[1])
        report.append({**entry, "worst_hour": worst_hour, "in_worst_hour": in_worst, "burst": in_worst >= burst})
    return sorted(report, key=lambda entry: (-entry["in_worst_hour"], -entry["total"], entry["staff"]))


def export_person(beneficiary_id, by, now=None):
    """Everything held about one beneficiary (her right of access, law 09-08): her intake record,
    consents, disclosures, audit trail, and the referrals made about her as her association sees them.
    `by` names who asked (written to her audit trail)."""
    from services.intake import domain as intake
    from services.intake.models import Beneficiary
    from services.referrals import domain as referrals
    from tansiq.contracts.actor import ADMIN, Actor
    from tansiq.errors import NotFound

    now = now or datetime.now(timezone.utc)
    with unit_of_work("intake") as session:
        beneficiary = session.get(Beneficiary, beneficiary_id)
        if beneficiary is None:
            raise NotFound(f"beneficiary {beneficiary_id} not found")
        association = beneficiary.association
        # The operator acts as an admin of her association (the role matrix's `cases.export`).
        operator = Actor(association=association, id=by, roles=frozenset({ADMIN}))
        record = intake.export_beneficiary(session, keyring("intake"), beneficiary_id, operator, now)
    with unit_of_work("referrals") as session:
        record["referrals"] = referrals.about_beneficiary(session, now, keyring("referrals"), beneficiary_id,
                                                          association)
    return record


def hosted_public_key(association, now=None):
    """The public encryption key of an association hosted here (made on first use), for partners that
    seal what they send it: an operator hands it to them with their credentials."""
    from services.referrals import domain as referrals

    with unit_of_work("referrals") as session:
        return referrals.hosted_public_key(session, keyring("referrals"), association,
                                           now or datetime.now(timezone.utc))


def rotate_master_keys(services=KEYED_SERVICES, now=None):
    """Rewrap every data key of each service under a new master key; the old key file is retired.

    Stop the services first: they hold the master key in memory. Returns {service: (records, retired path)}.
    """
    from services.intake import domain as intake
    from services.referrals import domain as referrals

    rekey = {"intake": intake.rekey, "referrals": referrals.rekey}
    stamp = (now or datetime.now(timezone.utc)).strftime("%Y%m%dT%H%M%SZ")
    done = {}
    for service in services:
        path = master_key_path(service, config.load(service))
        old = KeyRing.from_file(path)
        pending = path.with_name(path.name + ".new")
        if pending.exists():
            raise RuntimeError(f"{pending} exists: an earlier rotation was interrupted; check which key "
                               f"the database uses before removing it")
        new = KeyRing(new_master_key_file(pending))
        try:
            with unit_of_work(service) as session:
                count = rekey[service](session, old, new)
        except BaseException:
            pending.unlink()  # nothing was committed: the old key stays the one in use
            raise
        retired = path.with_name(f"{path.name}.retired-{stamp}")
        os.replace(path, retired)
        os.replace(pending, path)
        done[service] = (count, retired)
    return done
