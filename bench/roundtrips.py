"""MongoDB round trips and commits per referral, by service and command: what each referral costs the
one shared database server, counted rather than timed.

    uv run --extra embedded python bench/roundtrips.py                 # 200 referrals at 50/s
    uv run --extra embedded python bench/roundtrips.py -n 500 --rate 100
    uv run --extra embedded python bench/roundtrips.py --profile intake   # also where intake's CPU went
    uv run --extra embedded python bench/roundtrips.py --profile secantusdb   # or the database server's

It starts the whole platform the way bench/e2e.py does (embedded Tansu and SecantusDB, intake,
routing and analytics as separate processes), warms it up, reads every service's
`signpost_mongodb_commands_total` from /metrics, submits N referrals over HTTP, waits until each
is decided, counted and every consumer group and outbox has caught up, and reads the counters
again. The difference divided by N is printed per service and command; `commitTransaction` is
one commit (one fsync on SecantusDB with --sync-on-commit).

Background polling is slowed for the run (`SIGNPOST_OUTBOX_POLL_INTERVAL_S=60`,
`SIGNPOST_RECONCILE_INTERVAL_S=3600`) so the counts are what referrals cost; relays are still
woken by their own commits. Where work is batched (intake's group commit, batch consumers), the
counts depend on how many referrals arrive together, so they follow --rate; at a fixed rate and N
they barely move between runs.

`--profile SERVICE` samples that service with py-spy (a dev dependency) while the referrals go in
and prints the functions its CPU time went to, by own time and including what they call.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import urllib.request
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families
from pymongo import AsyncMongoClient
from signpost.shared.settings import SERVICE_NAMES

from signpost.platform.benchkit import (
    GroupLag,
    bench_cluster,
    cluster_cpu_seconds,
    cluster_topics,
    practitioner_tokens,
    run_fast,
    wait_caught_up,
)
from signpost.platform.cluster import LocalCluster
from signpost.platform.embedded import EmbeddedUnavailable
from signpost.platform.loadgen import ReferralLoad

COMMANDS_METRIC = "signpost_mongodb_commands"
COMMIT = "commitTransaction"
DATABASE = "secantusdb"  # the embedded MongoDB server, pure Python: py-spy can sample it too
QUIET = {"outbox_poll_interval_s": "60", "reconcile_interval_s": "3600"}
WARM_UP = 20
CATCH_UP_S = 300.0

PROFILE_TOP = 20
Counts = dict[tuple[str, str], float]


def read_counts(cluster: LocalCluster) -> Counts:
    """Every service's MongoDB command counters, by (service, command)."""
    counts: Counts = {}
    for service in SERVICE_NAMES:
        with urllib.request.urlopen(cluster.url(service, "/metrics"), timeout=10) as response:
            text = response.read().decode()
        for family in text_string_to_metric_families(text):
            if family.name == COMMANDS_METRIC:
                for sample in family.samples:
                    if sample.name.endswith("_total"):
                        counts[(service, sample.labels["command"])] = sample.value
    return counts


async def submit(cluster: LocalCluster, *, count: int, rate: float, seed: int) -> list[str]:
    """Submit `count` referrals at `rate`/s and wait until the whole pipeline has caught up with them."""
    assert cluster.kafka is not None and cluster.mongodb is not None
    load = ReferralLoad(intake_url=cluster.url("intake"), tokens=practitioner_tokens(cluster), seed=seed)
    mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(cluster.mongodb.url, tz_aware=True)
    lag = GroupLag(cluster.kafka.url, cluster_topics(cluster))
    await lag.start()
    try:
        result = await load.run(rate=rate, duration_s=count / rate)
        failures = result.failures()
        if failures:
            raise RuntimeError(f"not every referral was accepted: statuses {failures}")
        ids = [a.referral_id for a in result.accepted if a.referral_id]
        if not await wait_caught_up(mongo, cluster, lag, timeout_s=CATCH_UP_S):
            raise RuntimeError(f"the platform had not caught up {CATCH_UP_S:.0f} s after the submissions")
        # Analytics commits its group's offsets after the transaction: caught up means counted.
        return ids
    finally:
        await lag.stop()
        await mongo.close()
        await load.close()


class Profiler:
    """py-spy sampling one process until stopped, then the hottest functions."""

    def __init__(self, pid: int, output: Path) -> None:
        py_spy = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")
        if py_spy is None:
            raise RuntimeError("py-spy is not installed (it is a dev dependency: uv sync)")
        self._output = output
        argv = [py_spy, "record", "--pid", str(pid), "--format", "raw", "--output", str(output),
                "--rate", "250", "--subprocesses", "--nonblocking"]  # fmt: skip
        self._process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def stop(self) -> list[str]:
        self._process.send_signal(signal.SIGINT)  # py-spy writes what it sampled, then exits
        _, errors = self._process.communicate(timeout=60)
        if not self._output.exists():
            raise RuntimeError(f"py-spy wrote no profile: {errors.decode(errors='replace')[-500:]}")
        own: Counter[str] = Counter()
        within: Counter[str] = Counter()
        total = 0
        for line in self._output.read_text().splitlines():
            stack, _, count = line.rpartition(" ")
            frames = [re.sub(r":\d+\)$", ")", frame) for frame in stack.split(";") if frame]
            if not frames or not count.isdigit():
                continue
            total += int(count)
            own[frames[-1]] += int(count)
            for frame in set(frames):
                within[frame] += int(count)
        lines = [f"{total} samples; own time (the function itself):"]
        lines += [f"  {n / total:6.1%}  {frame}" for frame, n in own.most_common(PROFILE_TOP)]
        lines += ["including what they call:"]
        lines += [f"  {n / total:6.1%}  {frame}" for frame, n in within.most_common(PROFILE_TOP * 2)]
        return lines


def profiled_pid(cluster: LocalCluster, name: str) -> int:
    if name == DATABASE:
        assert cluster.mongodb is not None
        return cluster.mongodb.process.pid
    return cluster.services[name].pid  # type: ignore[index]


def table(before: Counts, after: Counts, referrals: int) -> list[str]:
    per_service: dict[str, dict[str, float]] = defaultdict(dict)
    for key in sorted(set(after)):
        service, command = key
        delta = after[key] - before.get(key, 0.0)
        if delta:
            per_service[service][command] = delta / referrals
    lines = ["| service | command | per referral |", "| --- | --- | --- |"]
    total = commits = 0.0
    for service in SERVICE_NAMES:
        commands = per_service.get(service, {})
        for command, value in sorted(commands.items(), key=lambda item: -item[1]):
            lines.append(f"| {service} | {command} | {value:.2f} |")
        service_total = sum(commands.values())
        lines.append(f"| {service} | **all commands** | **{service_total:.2f}** |")
        total += service_total
        commits += commands.get(COMMIT, 0.0)
    lines.append(f"| every service | **all commands** | **{total:.2f}** |")
    lines.append(f"| every service | **commits ({COMMIT})** | **{commits:.2f}** |")
    return lines


def cpu_table(before: dict[str, float], after: dict[str, float], referrals: int) -> list[str]:
    """CPU milliseconds per referral by process: with every process on one machine, their sum is
    what bounds the sustainable rate (cores x 1000 / sum referrals/s)."""
    lines = ["| process | CPU ms per referral |", "| --- | --- |"]
    per_referral = {label: (after[label] - before.get(label, 0.0)) * 1000 / referrals for label in after}
    lines += [
        f"| {label} | {ms:.1f} |" for label, ms in sorted(per_referral.items(), key=lambda item: -item[1])
    ]
    total = sum(per_referral.values())
    lines.append(f"| **all** | **{total:.1f}** (at most {(os.cpu_count() or 1) * 1000 / total:,.0f} referrals/s "
                 "on this machine's cores) |")  # fmt: skip
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("-n", "--referrals", type=int, default=200, help="referrals to submit (default 200)")
    parser.add_argument("--rate", type=float, default=50.0, help="submissions per second (default 50)")
    parser.add_argument(
        "--profile", choices=[*SERVICE_NAMES, DATABASE], help="sample this process with py-spy meanwhile"
    )
    args = parser.parse_args()
    if args.referrals <= 0 or args.rate <= 0:
        parser.error("--referrals and --rate must be positive")

    workdir = Path(tempfile.mkdtemp(prefix="signpost-roundtrips-"))
    cluster = bench_cluster(workdir, settings=QUIET)
    profile: list[str] = []
    try:
        print(f"starting the platform (logs in {cluster.logs})", flush=True)
        try:
            cluster.start()
        except EmbeddedUnavailable as exc:
            print(f"bench/roundtrips.py: {exc}", file=sys.stderr)
            return 2
        run_fast(submit(cluster, count=WARM_UP, rate=min(args.rate, 20.0), seed=1))
        before = read_counts(cluster)
        cpu_before = cluster_cpu_seconds(cluster)
        print(f"submitting {args.referrals} referrals at {args.rate:g}/s", flush=True)
        profiler = (
            Profiler(profiled_pid(cluster, args.profile), workdir / f"{args.profile}.profile.txt")
            if args.profile
            else None
        )
        run_fast(submit(cluster, count=args.referrals, rate=args.rate, seed=2))
        after = read_counts(cluster)
        cpu_after = cluster_cpu_seconds(cluster)
        if profiler is not None:
            profile = profiler.stop()
    except RuntimeError as exc:
        print(f"bench/roundtrips.py: {exc}; logs in {cluster.logs}", file=sys.stderr)
        return 1
    finally:
        cluster.stop()
    print()
    print(f"MongoDB commands per referral ({args.referrals} referrals at {args.rate:g}/s, after warm-up):")
    print()
    print("\n".join(table(before, after, args.referrals)))
    print()
    print("CPU per referral, by process (the load generator and this script not included):")
    print()
    print("\n".join(cpu_table(cpu_before, cpu_after, args.referrals)))
    if profile:
        print(f"\nWhere {args.profile}'s CPU went (py-spy):")
        print("\n".join(profile))
    return 0


if __name__ == "__main__":
    sys.exit(main())
