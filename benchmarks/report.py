"""Tables for the terminal (rich) and for the README (markdown)."""

from __future__ import annotations

import datetime
import os
import platform

from rich.console import Console
from rich.table import Table

from .scenarios import Row


def _fmt(v: float | None, unit: str = "") -> str:
    if v is None:
        return "-"
    return f"{v:.3f}" if abs(v) < 100 else f"{v:,.0f}"


def machine() -> str:
    return f"{os.cpu_count()} CPUs, Linux {platform.release()}, Python {platform.python_version()}"


def print_table(rows: list[Row], servers: list[str]) -> None:
    table = Table(title=f"objmount benchmarks — {datetime.date.today()} — {machine()} — {', '.join(servers)}")
    for col in ("scenario", "metric", "objmount", "baseline", "ratio", "target", "result", "requests", "sent", "notes"):
        table.add_column(col)
    for r in rows:
        table.add_row(r.scenario, r.metric, f"{_fmt(r.objmount)} {r.unit}", _fmt(r.baseline), _fmt(r.ratio), r.target,
                      "PASS" if r.ok else "MISS" if r.ok is False else "", str(sum(r.requests.values())),
                      f"{r.bytes_sent / 2**20:.1f} MiB", r.note)
    Console(width=220).print(table)


def markdown(rows: list[Row], servers: list[str]) -> str:
    out = [f"Measured {datetime.date.today()} on {machine()}; servers: {', '.join(servers)}.", "",
           "| scenario | metric | objmount | baseline | ratio | target | result | notes |",
           "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        out.append(f"| {r.scenario} | {r.metric} | {_fmt(r.objmount)} {r.unit} | {_fmt(r.baseline)} | {_fmt(r.ratio)} "
                   f"| {r.target} | {'PASS' if r.ok else 'MISS' if r.ok is False else ''} | {r.note} |")
    return "\n".join(out)
