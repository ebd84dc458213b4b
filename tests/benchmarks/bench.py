"""Benchmark: the classification flow against a plain Keras script, side by side.

    python tests/benchmarks/bench.py [--reps 3] [--epochs 10] [--no-server]

Runs each measurement ``--reps`` times, each in a fresh process (and a fresh artifact
folder, so every flow goes from the raw files to test metrics), and prints one markdown
table with medians, spreads (min..max) and the targets. Needs DATA_MIRROR (or data/).
Not collected by the default test run.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]


def tree_rss_mib(pid: int) -> float:
    """Resident memory of a process and all its descendants right now, MiB (Linux /proc)."""
    total, pending = 0, [pid]
    while pending:
        proc = pending.pop()
        try:
            with open(f"/proc/{proc}/status") as status:
                total += sum(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))
            for task in os.listdir(f"/proc/{proc}/task"):
                with open(f"/proc/{proc}/task/{task}/children") as children:
                    pending += [int(c) for c in children.read().split()]
        except (FileNotFoundError, ProcessLookupError):
            pass
    return total / 1024


def run(args: list[str], env: dict[str, str] | None = None) -> tuple[float, float, dict, float]:
    """Wall seconds, peak RSS (MiB) of the child itself, the last stdout line (JSON), and the
    peak RSS summed over the child and its own children (sampled every 50 ms)."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        start = time.perf_counter()
        child = subprocess.Popen(args, cwd=ROOT, stdout=out, stderr=err,
                                 env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})})
        peak, done = [0.0], threading.Event()

        def sample() -> None:
            while not done.wait(0.05):
                peak[0] = max(peak[0], tree_rss_mib(child.pid))
        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        _, status, usage = os.wait4(child.pid, 0)  # its own rusage: peak RSS of this child
        seconds = time.perf_counter() - start
        done.set()
        sampler.join()
        child.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        if child.returncode != 0:
            raise RuntimeError(f"{' '.join(args)} failed:\n{err.read()[-3000:]}")
        return seconds, usage.ru_maxrss / 1024, json.loads(out.read().strip().splitlines()[-1]), peak[0]


def median(values: list[float], digits: int = 2) -> str:
    return f"{statistics.median(values):.{digits}f} ({min(values):.{digits}f}..{max(values):.{digits}f})"


def start_server(port: int) -> subprocess.Popen:
    server = subprocess.Popen([sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1",
                               "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              env={**os.environ, "PREFECT_SERVER_ANALYTICS_ENABLED": "false"})
    for _ in range(120):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health", timeout=1)
            return server
        except OSError:
            time.sleep(0.5)
    server.terminate()
    raise RuntimeError("prefect server did not answer /api/health within 60 s")


def set_mirror() -> None:
    """DATA_MIRROR, unless set, is the checkout's neighbour ``shared/datasets`` (as in CI)."""
    if not os.environ.get("DATA_MIRROR"):
        shared = ROOT.parent / "shared" / "datasets"
        if shared.is_dir():
            os.environ["DATA_MIRROR"] = str(shared)
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--no-server", action="store_true", help="skip the runs against a running server")
    parser.add_argument("--no-jax", action="store_true",
                        help="skip the flow under KERAS_BACKEND=jax (skipped anyway without the jax extra)")
    parser.add_argument("--search-trials", type=int, default=16,
                        help="row f: trials of the search on 2 workers against 1 (0 skips it)")
    args = parser.parse_args()
    set_mirror()
    py, work = sys.executable, Path(tempfile.mkdtemp(prefix="keras-flows-bench-"))
    flow_cmd = lambda tag: [py, "-m", "flows", "classification", "--epochs", str(args.epochs),  # noqa: E731
                            "--seed", "42", "--json", "--artifacts", str(work / tag)]
    script, flow, served, jaxed = [], [], [], []
    with_jax = not args.no_jax and importlib.util.find_spec("jax") is not None
    server = None if args.no_server else start_server(4299)
    try:
        for rep in range(args.reps):  # interleaved, so drift in the machine hits both alike
            script.append(run([py, str(HERE / "plain_keras.py"), str(args.epochs)]))
            flow.append(run(flow_cmd(f"embedded-{rep}")))
            if server:
                served.append(run(flow_cmd(f"served-{rep}"),
                                  {"PREFECT_API_URL": "http://127.0.0.1:4299/api"}))
            if with_jax:
                jaxed.append(run(flow_cmd(f"jax-{rep}"), {"KERAS_BACKEND": "jax"}))
        twice = [run([py, str(HERE / "run_flow.py"), str(args.epochs), str(work / f"twice-{rep}")])[2]
                 for rep in range(args.reps)]
    finally:
        if server:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=30)
    # d measures the data stages, not what the runs above left: their server is stopped and the
    # gigabytes they wrote are on disk first. What still moves d on this VM is the first touch of
    # memory the guest has not used lately: a fresh 220 MB numpy array filled in 2.17 s, the next
    # one in 0.05 s (the data stages write 220 MB of scaled pixels, and its page cache as much)
    os.sync()
    data = [run([py, str(HERE / "data_stages.py"), str(work / f"data-{rep}")])[2] for rep in range(args.reps)]

    s_wall = [r[0] for r in script]
    rows = [
        ("plain Keras script, wall s", median(s_wall), "", ""),
        ("  its test accuracy", median([r[2]["test"]["accuracy"] for r in script], 4), "", ""),
        ("  its fit alone, s", median([r[2]["fit_seconds"] for r in script]), "", ""),
        ("flow, embedded server, wall s", median([r[0] for r in flow]), "", ""),
        ("  its test accuracy", median([r[2]["test"]["accuracy"] for r in flow], 4), "", ""),
        _ratio("a. flow / script (embedded server, incl. start-up)", [r[0] for r in flow], s_wall, 0.85),
    ]
    if served:
        rows.append(_ratio("a. flow / script (running server)", [r[0] for r in served], s_wall, 0.80))
    gap = max(abs(f[2]["test"]["accuracy"] - s[2]["test"]["accuracy"]) for f, s in zip(flow + served, script * 2))
    rows.append(("  test accuracy, flow - script, largest gap", f"{gap:.5f}", "<= 0.0001", _met(gap <= 1e-4)))
    train_stage = statistics.median(t["stages"]["train"] for t in twice)
    fit = statistics.median(r[2]["fit_seconds"] for r in script)
    rows.append(("  training stage / the script's fit (median s)", f"{train_stage / fit:.2f} "
                 f"({train_stage:.1f} / {fit:.1f} s)", "", ""))
    if jaxed:
        rows.append(("flow under KERAS_BACKEND=jax, wall s", median([r[0] for r in jaxed]), "", ""))
        rows.append(("  its test accuracy", median([r[2]["test"]["accuracy"] for r in jaxed], 4), "", ""))
        rows.append(("  jax flow / tensorflow flow (embedded server)",
                     median([j[0] / t[0] for j, t in zip(jaxed, flow)]), "", ""))
    second = [t["second_seconds"] / t["first_seconds"] for t in twice]
    rows.append(("b. unchanged re-run / first run (in-process)", median(second), "<= 0.05",
                 _met(statistics.median(second) <= 0.05)))
    rows.append(("  re-run reused every artifact", str(all(t["same_artifacts"] for t in twice)), "True", ""))
    share = [sum(v for k, v in t["stages"].items() if k.startswith("validate")) / t["first_seconds"]
             for t in twice]
    rows.append(("c. validation share of the flow", median([100 * s for s in share]) + " %", "<= 5 %",
                 _met(statistics.median(share) <= 0.05)))
    d = [r["seconds"] for r in data]
    rows.append(("d. data stages, 70,000 images, s", median(d), "<= 3", _met(statistics.median(d) <= 3)))
    rows.append(_ratio("e. peak RSS flow / script (all their processes)", [r[3] for r in flow],
                       [r[3] for r in script], 1.5))
    rows.append(("  peak RSS script / flow, MiB: all processes", f"{statistics.median([r[3] for r in script]):.0f} / "
                 f"{statistics.median([r[3] for r in flow]):.0f}", "", ""))
    rows.append(("  peak RSS script / flow, MiB: main process", f"{statistics.median([r[1] for r in script]):.0f} / "
                 f"{statistics.median([r[1] for r in flow]):.0f}", "", ""))
    if args.search_trials:
        from search_workers import measure

        f = measure(args.search_trials, 30, work / "search")
        rows.append((f"f. {args.search_trials} search trials (30 epochs), 2 workers vs 1, incl. start-up",
                     f"{f['speedup']:.2f} ({f[1]['seconds']:.0f} / {f[2]['seconds']:.0f} s)", ">= 1.6",
                     _met(f["speedup"] >= 1.6)))
    print(f"\nMachine: {platform.node()} — {os.cpu_count()} cores, Python {platform.python_version()}; "
          f"{args.reps} reps, {args.epochs} epochs; median (min..max)\n")
    print("| measure | value | target | met |\n|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    stages = {k: statistics.median([t["stages"].get(k, 0) for t in twice]) for k in twice[0]["stages"]}
    print("\nFlow stages (first in-process run, median s): " +
          ", ".join(f"{k} {v:.2f}" for k, v in stages.items()) +
          f"; Prefect + imports before the flow: {statistics.median([t['import_seconds'] for t in twice]):.2f}")
    print("Data stages (median s): " + ", ".join(
        f"{k} {statistics.median([r['stages'][k] for r in data]):.2f}" for k in data[0]["stages"]))
    return 0


def _met(ok: bool) -> str:
    return "yes" if ok else "**no**"


def _ratio(name: str, ours: list[float], base: list[float], target: float) -> tuple[str, str, str, str]:
    ratios = [a / b for a, b in zip(ours, base)]
    return name, median(ratios), f"<= {target}", _met(statistics.median(ratios) <= target)


if __name__ == "__main__":
    sys.exit(main())
