"""`tansiq bench` runs end to end with a few messages and writes its report (numbers are not checked)."""

import re
import subprocess
import sys

import requests
from harness import ROOT, admin

TABLE_ROWS = ("pika, confirm per message", "pika, pipelined confirms", "pika consumer, manual acks",
              "ConfirmedPublisher", "outbox relay, SQLite", "raw pika consumer, ack only", "kernel: probe service")


def test_bench_writes_every_table_and_cleans_up(broker_admin, tmp_path):
    output = tmp_path / "benchmarks.md"
    result = subprocess.run([sys.executable, "-m", "tansiq.cli", "bench", "--messages", "50", "--output", str(output)],
                            cwd=ROOT, capture_output=True, text=True, timeout=240, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    report = output.read_text(encoding="utf-8")
    for heading in ("## Machine", "## 1. Raw broker baseline", "## 2. The kernel's publishing path",
                    "## 3. The kernel's consuming path", "## 4. Memory and CPU", "## What this means"):
        assert heading in report
    lines = report.splitlines()
    for label in TABLE_ROWS:
        assert any(line.startswith(f"| {label}") and "| 50 |" in line for line in lines), f"no row for {label}"
    assert any(line.startswith("| probe service (nameko + kernel) |") for line in lines)  # memory table

    vhost = re.search(r"vhost (bench-\w+) created", result.stdout).group(1)
    management = admin()
    assert requests.get(f"{management.base}/vhosts/{vhost}", auth=management.auth, timeout=10).status_code == 404
