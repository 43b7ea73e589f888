"""The -v summary printed at exit."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table


def print_summary(stats: dict) -> None:
    table = Table(title="objmount", show_header=True, header_style="bold")
    table.add_column("what")
    table.add_column("count", justify="right")
    vfs = stats.get("vfs", {})
    for op, n in sorted(vfs.get("requests", {}).items()):
        table.add_row(f"S3 {op}", str(n))
    table.add_row("bytes received", f"{vfs.get('bytes_received', 0):,}")
    table.add_row("bytes sent", f"{vfs.get('bytes_sent', 0):,}")
    table.add_row("syscall stops", f"{stats.get('stops', 0):,}")
    for name, n in sorted(stats.get("syscalls", {}).items(), key=lambda kv: -kv[1])[:10]:
        table.add_row(f"  {name}", f"{n:,}")
    Console(stderr=True).print(table)
