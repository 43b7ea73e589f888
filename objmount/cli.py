"""The objmount command line."""

from __future__ import annotations

import contextlib
import gc
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


def default_lib_dir() -> Path:
    """Where the fast-path library is kept: beside the cache, not in it (the cache is
    private; the library must stay readable by programs running as other users)."""
    return default_cache_dir().with_name("objmount-lib")


def default_fd_base() -> int:
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return min(512, max(soft // 2, 16))


class _Redacting(logging.Formatter):
    """No URL userinfo or secret key reaches stderr, whoever logs it."""

    def format(self, record: logging.LogRecord) -> str:
        from vfs.errors import redact
        return redact(super().format(record))


@contextlib.contextmanager
def _long_lived():
    """Around the imports of a run: they make ~100k objects that live until exit (modules,
    classes, functions). No garbage collection while they are made, and none ever walks
    them again (gc.freeze): neither the run's collections nor the one at interpreter exit,
    which took ~12 ms of every run."""
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        gc.enable()


def _setup_logging(verbose: int) -> None:
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Redacting("objmount: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("botocore", "boto3", "urllib3", "s3transfer"):
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))


# botocore's own rule for a region name (it becomes part of a host name).
_REGION = re.compile(r"^[a-zA-Z0-9](?:[a-zA-Z0-9\-]{0,61}[a-zA-Z0-9])?$")


def check_s3_settings(endpoint_url: str | None, profile: str | None, region: str | None) -> None:
    """Settings that can be judged without a request; a bad one is a UsageError (exit 2)
    naming where it came from. The profile costs a botocore import, so only when one is set."""
    from urllib.parse import urlsplit

    from vfs.errors import without_userinfo

    endpoints = [("--endpoint-url", endpoint_url)] if endpoint_url is not None else [
        (var, os.environ[var]) for var in ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL") if os.environ.get(var)][:1]
    for source, url in endpoints:
        shown = without_userinfo(url)
        try:
            parts = urlsplit(url)
            parts.port  # noqa: B018 - raises on a port that is not a number in range
        except ValueError as exc:
            raise click.UsageError(f"{source} {shown!r} is not a valid URL ({exc})") from None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise click.UsageError(f"{source} {shown!r} is not an endpoint URL "
                                   "(expected http[s]://HOST[:PORT], e.g. https://s3.example.com)")
    regions = [("--region", region)] if region is not None else [
        (var, os.environ[var]) for var in ("AWS_REGION", "AWS_DEFAULT_REGION") if os.environ.get(var)][:1]
    for source, name in regions:
        if not _REGION.match(name):
            raise click.UsageError(f"{source} {name!r} is not a valid region name (e.g. us-east-1)")
    if profile or os.environ.get("AWS_PROFILE"):
        import botocore.session
        from botocore.exceptions import BotoCoreError
        name = profile or os.environ["AWS_PROFILE"]
        try:
            botocore.session.Session(profile=name).get_scoped_config()
        except BotoCoreError as exc:
            source = "--profile" if profile else "AWS_PROFILE"
            raise click.UsageError(f"{source} {name!r}: {exc}") from None


def network_options(connect_timeout: float, read_timeout: float, retries: int):
    from vfs.stores.s3 import Network
    for name, value in (("--connect-timeout", connect_timeout), ("--read-timeout", read_timeout)):
        if not value > 0:
            raise click.BadParameter("must be > 0", param_hint=name)
    if retries < 0:
        raise click.BadParameter("must be >= 0", param_hint="--retries")
    return Network(connect_timeout=connect_timeout, read_timeout=read_timeout, retries=retries)


def _s3_options(f):
    """The S3 options `exec` and `flush` share."""
    for option in reversed([
        click.option("--endpoint-url", default=None, metavar="URL",
                     help="S3 endpoint (default: AWS_ENDPOINT_URL or the AWS configuration)."),
        click.option("--profile", default=None, help="AWS shared-config profile to use."),
        click.option("--region", default=None, help="AWS region (default: from the AWS configuration)."),
        click.option("--connect-timeout", default=10.0, show_default=True, type=float, metavar="SECONDS",
                     help="Longest wait for a connection to the endpoint, per attempt."),
        click.option("--read-timeout", default=30.0, show_default=True, type=float, metavar="SECONDS",
                     help="Longest wait for any bytes of an answer, per attempt (a stalled server or "
                          "body ends there)."),
        click.option("--retries", default=4, show_default=True, type=int, metavar="N",
                     help="Attempts after the first for resets, short bodies, timeouts, 5xx and "
                          "throttling, with exponential backoff from 0.25 s; a GET resumes where its "
                          "body broke. Then the call fails with EIO."),
    ]):
        f = option(f)
    return f


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
                   "open() always revalidates, unless --no-close-to-open.")
@click.option("--close-to-open/--no-close-to-open", default=True, show_default=True,
              help="Every open asks the bucket whether the object changed (as NFS's cto). "
                   "--no-close-to-open (as NFS's nocto): an open for reading may use an answer about the "
                   "object less than --metadata-ttl old (a prefetch's, a stat's, an earlier open's), so "
                   "another client's change may go unseen that long. For read-mostly data nobody else "
                   "changes during the run. Writes still reach the bucket at close.")
@_s3_options
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
def exec_command(mounts, cache_dir, cache_size, metadata_ttl, close_to_open, endpoint_url, profile, region,
                 connect_timeout, read_timeout, retries, dir_markers, stats_file, fast_path, fd_base, verbose, command) -> None:
    """Run COMMAND with virtual paths available; exits with COMMAND's status (128+N if it
    died of signal N).

    \b
    Examples:
      objmount exec -- cat s3://bucket/notes.txt
      objmount exec -m /data=s3://bucket/prefix -- make -C /data/project
      objmount exec -m /data=file:///srv/store -- ls -l /data
    """
    _setup_logging(verbose)
    with _long_lived():
        from tracer import TraceError
        from vfs import MountTable, VfsError

        from .run import BadConfiguration, VfsSettings, run

    try:
        table = MountTable.parse(list(mounts))
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    seen = set()
    for target in table.targets:
        if target in seen:
            raise click.UsageError(f"--mount: {target} is given twice")
        seen.add(target)
    if metadata_ttl < 0:
        raise click.BadParameter("must be >= 0", param_hint="--metadata-ttl")
    network = network_options(connect_timeout, read_timeout, retries)
    check_s3_settings(endpoint_url, profile, region)
    config = VfsSettings(
        cache_dir=(cache_dir or default_cache_dir()).absolute(),  # tracees resolve it from their own cwd
        cache_size=parse_size(cache_size),
        metadata_ttl=metadata_ttl,
        close_to_open=close_to_open,
        endpoint_url=endpoint_url,
        profile=profile,
        region=region,
        dir_markers=dir_markers,
        network=network,
    )
    targets = [spec.split("=", 1)[0] for spec in mounts]
    try:
        status, stats = run(list(command), table, targets, config, fd_base or default_fd_base(),
                            lib_dir=default_lib_dir() if fast_path else None, quick_dir=default_lib_dir())
    except TraceError as exc:
        log.error("%s", exc)
        sys.exit(125)
    except BadConfiguration as exc:
        log.error("%s", exc)
        sys.exit(2)
    except VfsError as exc:  # the cache cannot be used (its disk is full, its index broken)
        log.error("%s", exc.message)
        sys.exit(125)
    if stats_file is not None:
        import json
        stats_file.write_text(json.dumps(stats, indent=2, sort_keys=True))
    if verbose:
        from .summary import print_summary
        print_summary(stats)
    if os.WIFSIGNALED(status):
        _leave(128 + os.WTERMSIG(status))
    _leave(os.WEXITSTATUS(status) if os.WIFEXITED(status) else 1)


def _leave(code: int) -> None:
    """End a run whose work is all done (the program's tree gone, uploads finished, the
    cache closed) without the interpreter's teardown: with botocore loaded that took
    ~0.14 s of every run touching a bucket, after the program had ended (finalizing
    modules and the objects a client builds). What registered for exit still runs."""
    import atexit
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)


@main.command("flush")
@click.option("--cache-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="The cache to look in. [default: $XDG_CACHE_HOME/objmount]")
@click.option("--list", "list_only", is_flag=True, help="Only list the files held; upload nothing.")
@click.option("--force", is_flag=True,
              help="Upload even where the bucket's object changed since the file was opened.")
@click.option("--discard", is_flag=True, help="Delete the held files (all, or the URLs named) instead of uploading.")
@_s3_options
@click.option("-v", "--verbose", count=True, help="Log each upload.")
@click.argument("urls", nargs=-1, metavar="[URL]...")
def flush_command(cache_dir, list_only, force, discard, endpoint_url, profile, region, connect_timeout,
                  read_timeout, retries, verbose, urls) -> None:
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

    network = network_options(connect_timeout, read_timeout, retries)
    check_s3_settings(endpoint_url, profile, region)
    try:
        vfs = Vfs(MountTable.parse([]), VfsConfig(cache_dir=(cache_dir or default_cache_dir()).absolute(),
                                                  endpoint_url=endpoint_url, profile=profile, region=region,
                                                  network=network))
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
