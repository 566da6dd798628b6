"""What sealing internal RPC costs (tansiq.transport): seal + open per body, and sealed RPC round trips.

    .venv/bin/python scripts/bench_transport.py [--runs 2000] [--calls 300]

1. Seals and opens bodies of 200 B, 4 KB and 64 KB (`--runs` times each, in this process): the CPU an
   RPC adds is two of each (request and reply).
2. Starts a directory service in a throwaway vhost (tests/harness.py: the real broker at 127.0.0.1) and
   times `--calls` sealed round trips of `directory.health` and `directory.list_associations` (the demo's
   associations, ~3 KB of JSON) from a standalone client. Everything is dropped at the end.
Prints a Markdown table (p50/p95/max).
"""

import argparse
import json
import logging
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from tansiq import transport  # noqa: E402


def percentiles(samples_ms):
    ordered = sorted(samples_ms)
    return (statistics.median(ordered), ordered[int(len(ordered) * 0.95) - 1], ordered[-1])


def row(what, samples_ms, unit="ms"):
    p50, p95, top = percentiles(samples_ms)
    digits = 3 if unit == "ms" and p50 < 0.1 else 1
    return f"| {what} | {p50:.{digits}f} | {p95:.{digits}f} | {top:.{digits}f} |"


def bench_sealing(runs):
    keys = transport.TransportKeys.load(Path(tempfile.mkdtemp()) / "transport.keys")
    where = transport.binding("nameko-rpc", "intake.register_beneficiary", "reply", "correlation")
    rows = []
    for size in (200, 4096, 65536):
        body = json.dumps({"args": ["x" * (size - 30)], "kwargs": {}}).encode()
        samples = []
        for _ in range(runs):
            start = time.perf_counter()
            keys.open(keys.seal(body, where), where)
            samples.append((time.perf_counter() - start) * 1000)
        rows.append(row(f"seal + open, {size:,} B body", samples))
    return rows


def bench_rpc(calls):
    from harness import Network

    network = Network()
    try:
        network.migrate()
        network.seed()
        network.start("directory")
        rows = []
        with network.rpc(timeout=30) as cluster:
            for name, call in (("directory.health", cluster.directory.health),
                               ("directory.list_associations", cluster.directory.list_associations)):
                call()  # warm: connections, reply queue
                samples = []
                for _ in range(calls):
                    start = time.perf_counter()
                    call()
                    samples.append((time.perf_counter() - start) * 1000)
                rows.append(row(f"sealed RPC round trip, `{name}`", samples))
        return rows
    finally:
        network.close()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2000)
    parser.add_argument("--calls", type=int, default=300)
    args = parser.parse_args()
    logging.getLogger("amqp").setLevel(logging.ERROR)  # "method during closing channel": harmless noise
    print(f"load average before: {os.getloadavg()[0]:.1f}")
    print("| what | p50 ms | p95 ms | max ms |\n|---|---:|---:|---:|")
    for line in bench_sealing(args.runs) + bench_rpc(args.calls):
        print(line, flush=True)


if __name__ == "__main__":
    main()
