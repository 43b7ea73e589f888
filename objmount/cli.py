"""The objmount command line."""

from __future__ import annotations

import json
import logging
import os
import re
import resource
import sys
from pathlib import Path

import click

from . import __version__

log = logging.getLogger("objmount")

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?\s*$", re.I)


def parse_size(text: str) -> int:
    m = _SIZE.match(text)
    if not m:
        raise click.BadParameter(f"{text!r} is not a size (examples: 512M, 10G, 1073741824)")
    return int(float(m.group(1)) * 1024 ** " kmgt".index(m.group(2).lower() or " "))


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "objmount"


def default_fd_base() -> int:
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return min(512, max(soft // 2, 16))


def _setup_logging(verbose: int) -> None:
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("objmount: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("botocore", "boto3", "urllib3", "s3transfer"):
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="objmount")
def main() -> None:
    """Use S3 object storage from any unmodified program, without root, FUSE or kernel
    modules.

    Objects appear at /objmount/s3/BUCKET/KEY, as s3://BUCKET/KEY strings, and under any
    directory you mount with -m. Object key = path, object body = file bytes.
    """


@main.command("exec", context_settings={"ignore_unknown_options": True})
@click.option("-m", "--mount", "mounts", multiple=True, metavar="TARGET=URL",
              help="Show URL (s3://bucket[/prefix] or file:///dir) at directory TARGET. Repeatable.")
@click.option("--cache-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Where fetched ranges are kept between runs. [default: $XDG_CACHE_HOME/objmount]")
@click.option("--cache-size", default="10G", show_default=True, metavar="SIZE",
              help="Cached data above this is evicted, least recently used first (K/M/G/T suffixes).")
@click.option("--metadata-ttl", default=5.0, show_default=True, type=float, metavar="SECONDS",
              help="How long attributes and listings are trusted before asking the bucket again. "
                   "open() always revalidates.")
@click.option("--endpoint-url", default=None, metavar="URL",
              help="S3 endpoint (default: AWS_ENDPOINT_URL or the AWS configuration).")
@click.option("--profile", default=None, help="AWS shared-config profile to use.")
@click.option("--region", default=None, help="AWS region (default: from the AWS configuration).")
@click.option("--dir-markers/--no-dir-markers", default=True, show_default=True,
              help="mkdir writes an empty 'dir/' marker object so empty directories persist. Turn off for "
                   "servers that mishandle markers (rclone serve s3 over a local directory); empty "
                   "directories then last for the run only.")
@click.option("--stats-file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write request, byte and syscall-stop counts as JSON here at exit.")
@click.option("--fast-path/--no-fast-path", default=True, show_default=True,
              help="Preload a small library into dynamically linked programs so that their calls on "
                   "local paths run without stopping in the supervisor (built with cc on first use). "
                   "Static binaries and raw syscalls are traced either way.")
@click.option("--fd-base", type=int, default=None, hidden=True,
              help="Lowest descriptor number used for virtual files.")
@click.option("-v", "--verbose", count=True, help="-v: a summary at exit; -vv: debug log.")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
def exec_command(mounts, cache_dir, cache_size, metadata_ttl, endpoint_url, profile, region,
                 dir_markers, stats_file, fast_path, fd_base, verbose, command) -> None:
    """Run COMMAND with virtual paths available; exits with COMMAND's status (128+N if it
    died of signal N).

    \b
    Examples:
      objmount exec -- cat s3://bucket/notes.txt
      objmount exec -m /data=s3://bucket/prefix -- make -C /data/project
      objmount exec -m /data=file:///srv/store -- ls -l /data
    """
    _setup_logging(verbose)
    from vfs import MountTable, VfsConfig

    try:
        table = MountTable.parse(list(mounts))
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    if metadata_ttl < 0:
        raise click.BadParameter("must be >= 0", param_hint="--metadata-ttl")
    config = VfsConfig(
        cache_dir=(cache_dir or default_cache_dir()).absolute(),  # tracees resolve it from their own cwd
        cache_size=parse_size(cache_size),
        metadata_ttl=metadata_ttl,
        endpoint_url=endpoint_url,
        profile=profile,
        region=region,
        dir_markers=dir_markers,
    )
    targets = [spec.split("=", 1)[0] for spec in mounts]
    from tracer import TraceError
    from vfs import VfsError

    from .run import run

    try:
        status, stats = run(list(command), table, targets, config, fd_base or default_fd_base(),
                            lib_dir=default_cache_dir() / "lib" if fast_path else None)
    except TraceError as exc:
        log.error("%s", exc)
        sys.exit(125)
    except VfsError as exc:  # the cache cannot be used (its disk is full, its index broken)
        log.error("%s", exc.message)
        sys.exit(125)
    if stats_file is not None:
        stats_file.write_text(json.dumps(stats, indent=2, sort_keys=True))
    if verbose:
        from .summary import print_summary
        print_summary(stats)
    if os.WIFSIGNALED(status):
        sys.exit(128 + os.WTERMSIG(status))
    sys.exit(os.WEXITSTATUS(status) if os.WIFEXITED(status) else 1)


@main.command("flush")
@click.option("--cache-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="The cache to look in. [default: $XDG_CACHE_HOME/objmount]")
@click.option("--list", "list_only", is_flag=True, help="Only list the files held; upload nothing.")
@click.option("--force", is_flag=True,
              help="Upload even where the bucket's object changed since the file was opened.")
@click.option("--discard", is_flag=True, help="Delete the held files (all, or the URLs named) instead of uploading.")
@click.option("--endpoint-url", default=None, metavar="URL", help="S3 endpoint (default: AWS configuration).")
@click.option("--profile", default=None, help="AWS shared-config profile to use.")
@click.option("--region", default=None, help="AWS region.")
@click.option("-v", "--verbose", count=True, help="Log each upload.")
@click.argument("urls", nargs=-1, metavar="[URL]...")
def flush_command(cache_dir, list_only, force, discard, endpoint_url, profile, region, verbose, urls) -> None:
    """Upload files that an objmount run left in the cache without publishing them.

    A file whose writer never reached close() (the supervisor or the machine died), or
    whose upload failed at close, is kept in the cache and never uploaded on its own: it
    may be half of what was meant, and would replace the bucket's intact object. Every
    `objmount exec` says at start when there are such files. This command uploads them
    all, or only the URLs named (s3://bucket/key as --list shows them). Files that another
    running objmount is writing are left alone. A file whose object changed in the
    bucket since it was opened is not uploaded over the newer version without --force.
    Exits 1 if anything asked for was not done.
    """
    _setup_logging(verbose)
    from vfs import MountTable, Vfs, VfsConfig, VfsError, recovery

    try:
        vfs = Vfs(MountTable.parse([]), VfsConfig(cache_dir=(cache_dir or default_cache_dir()).absolute(),
                                                  endpoint_url=endpoint_url, profile=profile, region=region))
    except VfsError as exc:
        log.error("%s", exc.message)
        sys.exit(1)
    ok = True
    try:
        if list_only:
            files = recovery.held(vfs.cache)
            for held in files:
                if not urls or held.url in urls:
                    click.echo(held.describe())
        else:
            if discard:
                lines, ok = recovery.discard(vfs, list(urls) or None)
            else:
                lines, ok = recovery.publish(vfs, list(urls) or None, force=force)
            for line in lines:
                click.echo(line)
    except VfsError as exc:
        log.error("%s", exc.message)
        ok = False
    finally:
        try:
            vfs.close()
        except VfsError as exc:
            log.error("%s", exc.message)
    if not ok:
        sys.exit(1)


if __name__ == "__main__":
    main()
