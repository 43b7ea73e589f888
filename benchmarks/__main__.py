"""python -m benchmarks [--size-scale S] [--only NAME,...] [--json FILE] [--markdown]"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import sys
from contextlib import ExitStack

from . import servers
from .harness import Harness
from .report import markdown, print_table
from .scenarios import SCENARIOS


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--size-scale", type=float, default=1.0,
                        help="scale object sizes and counts (1.0: 1 GiB objects, 10,000 listed objects)")
    parser.add_argument("--only", default="", help="comma-separated scenarios: " + ",".join(SCENARIOS))
    parser.add_argument("--latency-ms", type=float, default=20.0,
                        help="the latency scenario's delay per request, in ms (a proxy in front of the server)")
    parser.add_argument("--json", help="write every figure to this file")
    parser.add_argument("--markdown", action="store_true", help="print a table for the README")
    args = parser.parse_args()
    chosen = [s for s in (args.only.split(",") if args.only else SCENARIOS) if s]
    unknown = [s for s in chosen if s not in SCENARIOS]
    if unknown:
        parser.error(f"unknown scenario(s): {', '.join(unknown)}")
    rows, used = [], []
    with ExitStack() as stack:
        endpoints = {}
        for name in chosen:
            fn, kind = SCENARIOS[name]
            if kind not in endpoints:
                cm = servers.rclone_s3() if kind == "rclone" else servers.moto_s3()
                endpoints[kind] = stack.enter_context(cm)
                used.append(endpoints[kind][1])
            endpoint, _ = endpoints[kind]
            harness = Harness(endpoint, servers.env_for(endpoint), latency_ms=args.latency_ms)
            try:
                print(f"running {name} ...", file=sys.stderr, flush=True)
                rows += fn(harness, args.size_scale)
            except Exception as exc:  # one broken scenario must not hide the others
                print(f"{name}: failed: {exc}", file=sys.stderr)
            finally:
                shutil.rmtree(harness.tmp, ignore_errors=True)
    print_table(rows, used)
    if args.markdown:
        print(markdown(rows, used))
    if args.json:
        with open(args.json, "w") as f:
            json.dump([dict(dataclasses.asdict(r), ratio=r.ratio) for r in rows], f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
