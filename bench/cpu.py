"""Where the CPU goes during a mention burst: this app beside the bare floor, per process group.

`bench/run.py` says how fast; this says who spent the CPU for it. Both servers run as in
`bench/run.py` (same gunicorn settings, same stand-in, 200 installed workspaces, warmed up); each
round sends the same signed mentions to the floor and to the app, in alternating order, and reads
user and system CPU from /proc (Linux) around each burst for:

- workers:  the gunicorn workers (the floor's or the app's);
- lazy:     processes the workers started themselves (none since issue 16 removed the lazy
            processes; lazy functions now run on the workers' threads and count as workers);
- stand-in: this process (the Slack stand-in's threads answering chat.postMessage, and the driver);
- loadgen:  the load generator's processes (the same requests for both targets).

For the app, the CPU spent after its last answer until its last reply is shown apart ("after").
Figures are microseconds of CPU per event; the last lines give the medians over the rounds and
the app's worker CPU per event as a ratio to the floor's, from the same run.

    python bench/cpu.py                 # 4 rounds of 3000 mentions at concurrency 32
    python bench/cpu.py --events 5000 --rounds 6
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.loadgen import run_load  # noqa: E402
from bench.run import (  # noqa: E402
    bench_standin,
    fresh_database,
    mention_requests,
    replies_done,
    start_target,
    warm_up,
    workload_installs,
)
from slack_standin import SlackStandIn  # noqa: E402

TICKS = os.sysconf("SC_CLK_TCK")
GROUPS = ("workers", "lazy", "stand-in", "loadgen")
LOADGEN_PROCESSES = 2  # run_load's default, as in bench/run.py


def process_cpu() -> dict[int, tuple[int, float, float]]:
    """pid -> (parent pid, user seconds, system seconds) for every process now alive."""
    found = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            found[int(stat.parent.name)] = (int(fields[1]), int(fields[11]) / TICKS, int(fields[12]) / TICKS)
        except (OSError, ValueError, IndexError):
            continue
    return found


def group_cpu(master_pid: int, before: dict, after: dict) -> dict[str, tuple[float, float]]:
    """(user, system) seconds spent between two snapshots by the server's workers and by their
    own children (multiprocessing's helpers, if any), and by this process. The
    gunicorn master, which only watches its workers, is left out."""
    def spent(pid: int) -> tuple[float, float]:
        _, user, system = after[pid]
        _, user0, system0 = before.get(pid, (0, 0.0, 0.0))
        return user - user0, system - system0

    totals = {name: [0.0, 0.0] for name in GROUPS}
    workers = {pid for pid, (parent, _, _) in after.items() if parent == master_pid}
    for pid, (parent, _, _) in after.items():
        name = "workers" if pid in workers else "lazy" if parent in workers else "stand-in" if pid == os.getpid() else None
        if name:
            user, system = spent(pid)
            totals[name][0] += user
            totals[name][1] += system
    return {name: (user, system) for name, (user, system) in totals.items()}


def measured_burst(target: str, process, standin: SlackStandIn, requests: list, concurrency: int) -> dict:  # type: ignore[no-untyped-def]
    standin.clear_calls()
    master = process.process.pid
    children_before = os.times()
    first = process_cpu()
    load = run_load(process.url, requests, concurrency)
    answered = process_cpu()
    children_after = os.times()
    during = group_cpu(master, first, answered)
    loadgen = (children_after.children_user - children_before.children_user,
               children_after.children_system - children_before.children_system)
    during["loadgen"] = loadgen
    result = {"target": target, "events_per_second": load.per_second, "p99_ms": load.percentile(99) * 1000,
              "during": during}
    if target == "app":
        replies_done(standin, load.statuses.get(200, 0), 120)
        result["after"] = group_cpu(master, answered, process_cpu())
    return result


def per_event(seconds: tuple[float, float], events: int) -> str:
    user, system = seconds
    return f"{(user + system) / events * 1e6:5.0f} ({user / events * 1e6:.0f}+{system / events * 1e6:.0f})"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--workspaces", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--latency", type=float, default=0.05, help="simulated Slack Web API latency (s)")
    args = parser.parse_args()
    if not Path("/proc/self/stat").exists():
        raise SystemExit("bench/cpu.py reads process CPU from /proc (Linux)")

    rounds: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="bench-cpu-") as tmp, bench_standin() as standin:
        workdir = Path(tmp)
        teams = [standin.create_workspace(name=f"Bench {n}") for n in range(args.workspaces)]
        floor = start_target("floor", standin, f"sqlite:///{workdir / 'floor.db'}", workdir, args)
        url, _ = fresh_database("sqlite", workdir, "app")
        app = start_target("app", standin, url, workdir, args)
        try:
            standin.latency_seconds = args.latency
            workload_installs("app", app, standin, teams, 8)
            # One mention per workspace and worker: every worker meets most workspaces once.
            warm_up(standin, teams, app, floor, args.concurrency, LOADGEN_PROCESSES, per_workspace=args.workers)
            print(f"{args.rounds} rounds of {args.events} mentions at concurrency {args.concurrency}, "
                  f"{args.workers} gthread workers x {args.threads} threads, Slack latency {args.latency * 1000:.0f} ms")
            print("CPU µs per event, total (user+system)")
            print(f"{'round':6} {'target':6} {'events/s':>8} {'p99 ms':>7}  " + "  ".join(f"{g:>16}" for g in GROUPS)
                  + f"  {'app after: lazy':>16} {'stand-in':>16}")
            for n in range(args.rounds):
                requests = mention_requests(standin, teams, args.events, f"cpu {n}")
                order = [("floor", floor), ("app", app)] if n % 2 == 0 else [("app", app), ("floor", floor)]
                for target, process in order:
                    result = measured_burst(target, process, standin, requests, args.concurrency)
                    result["round"] = n
                    rounds.append(result)
                    after = result.get("after")
                    print(f"{n:<6} {target:6} {result['events_per_second']:8.0f} {result['p99_ms']:7.1f}  "
                          + "  ".join(f"{per_event(result['during'][g], args.events):>16}" for g in GROUPS)
                          + (f"  {per_event(after['lazy'], args.events):>16} {per_event(after['stand-in'], args.events):>16}"
                             if after else ""))
        finally:
            app.stop()
            floor.stop()

    def median(target: str, group: str) -> float:
        return statistics.median(sum(r["during"][group]) / args.events * 1e6 for r in rounds if r["target"] == target)

    print("\nmedians over the rounds, CPU µs per event during the burst:")
    for group in GROUPS:
        print(f"  {group:9} floor {median('floor', group):5.0f}   app {median('app', group):5.0f}")
    print(f"  app workers / floor workers: {median('app', 'workers') / median('floor', 'workers'):.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
