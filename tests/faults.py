"""Fault injection against the shared broker and PostgreSQL, limited to one test's own vhost and databases.

The system RabbitMQ is shared, so a "broker restart" is what clients see of one: every connection
of the test's vhost closed by the management API (and, for "broker down", new connections refused
through the vhost's connection limit). Database faults terminate the backends of the test's
databases only.
"""

import time

import requests
from harness import ADMIN_URL, PG_URL, admin


def _api(vhost):
    vhost_admin = admin(vhost)
    return vhost_admin.http, vhost_admin.base


def vhost_connections(vhost):
    http, base = _api(vhost)
    response = http.get(f"{base}/vhosts/{requests.utils.quote(vhost, safe='')}/connections", timeout=10)
    response.raise_for_status()
    return [connection["name"] for connection in response.json()]


def close_connections(vhost, reason="tansiq fault injection"):
    """Close every AMQP connection of `vhost` (what a broker restart looks like); returns how many."""
    http, base = _api(vhost)
    names = vhost_connections(vhost)
    for name in names:
        http.delete(f"{base}/connections/{requests.utils.quote(name, safe='')}", headers={"X-Reason": reason},
                    timeout=10)
    return len(names)


def close_connections_until_quiet(vhost, quiet_seconds=6, timeout=30):
    """Close connections until the broker has listed none for `quiet_seconds` (its connection list
    lags a few seconds behind new connections); returns how many were closed."""
    closed, quiet_since, deadline = 0, None, time.monotonic() + timeout
    while time.monotonic() < deadline:
        count = close_connections(vhost)
        closed += count
        quiet_since = (quiet_since or time.monotonic()) if count == 0 else None
        if quiet_since and time.monotonic() - quiet_since >= quiet_seconds:
            break
        time.sleep(0.5)
    return closed


def refuse_connections(vhost, refused=True):
    """While `refused`, the broker turns away new connections to `vhost` (max-connections 0)."""
    http, base = _api(vhost)
    path = f"{base}/vhost-limits/{requests.utils.quote(vhost, safe='')}/max-connections"
    response = http.put(path, json={"value": 0}, timeout=10) if refused else http.delete(path, timeout=10)
    if response.status_code not in (200, 201, 204, 404):
        response.raise_for_status()


def kill_database_connections(databases):
    """pg_terminate_backend on every session of `databases` (other than ours); returns how many."""
    import psycopg2

    connection = psycopg2.connect(f"{PG_URL}/postgres")
    connection.autocommit = True
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                       "WHERE datname = ANY(%s) AND pid <> pg_backend_pid()", (list(databases),))
        killed = cursor.fetchone()[0]
    connection.close()
    return killed


__all__ = ["ADMIN_URL", "close_connections", "refuse_connections", "kill_database_connections", "vhost_connections"]
