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

from . import __version__

log = logging.getLogger("objmount")

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?\s*$", re.I)


def parse_size(text: str) -> int:
    m = _SIZE.match(text)
    if not m:
        import click
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
    naming where it came from."""
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
            import click
            raise click.UsageError(f"{source} {shown!r} is not a valid URL ({exc})") from None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            import click
            raise click.UsageError(f"{source} {shown!r} is not an endpoint URL "
                                   "(expected http[s]://HOST[:PORT], e.g. https://s3.example.com)")
    regions = [("--region", region)] if region is not None else [
        (var, os.environ[var]) for var in ("AWS_REGION", "AWS_DEFAULT_REGION") if os.environ.get(var)][:1]
    for source, name in regions:
        if not _REGION.match(name):
            import click
            raise click.UsageError(f"{source} {name!r} is not a valid region name (e.g. us-east-1)")
    # botocore's order: the option, then AWS_DEFAULT_PROFILE, then AWS_PROFILE
    sources = [("--profile", profile)] if profile else [
        (var, os.environ[var]) for var in ("AWS_DEFAULT_PROFILE", "AWS_PROFILE") if os.environ.get(var)][:1]
    for source, name in sources:
        from vfs.stores.http import profile_problem   # botocore's answer, without its import
        problem = profile_problem(name)
        if problem:
            import click
            raise click.UsageError(f"{source} {name!r}: {problem}") from None


def check_network_options(connect_timeout: float, read_timeout: float, retries: int) -> dict:
    """The arguments of vfs.stores.s3.Network, checked (BadParameter); the class itself is
    imported only by a run that makes its Vfs (run.VfsSettings.make)."""
    for name, value in (("--connect-timeout", connect_timeout), ("--read-timeout", read_timeout)):
        if not value > 0:
            import click
            raise click.BadParameter("must be > 0", param_hint=name)
    if retries < 0:
        import click
        raise click.BadParameter("must be >= 0", param_hint="--retries")
    return {"connect_timeout": connect_timeout, "read_timeout": read_timeout, "retries": retries}


def network_options(connect_timeout: float, read_timeout: float, retries: int):
    from vfs.stores.s3 import Network
    return Network(**check_network_options(connect_timeout, read_timeout, retries))


def _exec(mounts, cache_dir, cache_size, metadata_ttl, close_to_open, endpoint_url, profile, region,
          connect_timeout, read_timeout, retries, dir_markers, stats_file, fast_path, fd_base, verbose, command) -> None:
    """`objmount exec` once its command line is parsed (by click, or by _fast_exec_params)."""
    _setup_logging(verbose)
    with _long_lived():
        from tracer import TraceError
        from vfs import MountTable, VfsError

        from .run import BadConfiguration, VfsSettings, run

    try:
        table = MountTable.parse(list(mounts))
    except ValueError as exc:
        import click
        raise click.UsageError(str(exc)) from None
    seen = set()
    for target in table.targets:
        if target in seen:
            import click
            raise click.UsageError(f"--mount: {target} is given twice")
        seen.add(target)
    if metadata_ttl < 0:
        import click
        raise click.BadParameter("must be >= 0", param_hint="--metadata-ttl")
    network = check_network_options(connect_timeout, read_timeout, retries)
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
        network_args=network,
    )
    try:
        status, stats = run(list(command), table, config, fd_base or default_fd_base(),
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


def _click_group():
    """The command line as click declares it (help, version, errors, `flush`): built on
    demand, as importing click and declaring the options takes ~12 ms, more than a run of
    `objmount exec -- true` spends on anything else of its own. main() only builds it when
    _fast_exec_params cannot tell what click would make of the command line."""
    global _GROUP
    if _GROUP is not None:
        return _GROUP
    import click

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
        _exec(mounts, cache_dir, cache_size, metadata_ttl, close_to_open, endpoint_url, profile, region,
              connect_timeout, read_timeout, retries, dir_markers, stats_file, fast_path, fd_base, verbose, command)

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

    _GROUP = main
    return main


_GROUP = None


# --- `objmount exec` without click ------------------------------------------------------
# What click makes of `exec`'s options (parser and types of click 8), for the command lines
# it reads unambiguously; anything else (help, an unknown or malformed option, a value its
# type refuses, an option after the command without `--`, shell completion) goes to click.
# tests/exec/test_fast_cli.py compares the two on a table of command lines.
_EXEC_VALUE = {   # option -> (parameter, conversion); "path-dir"/"path-file": click.Path checks
    "-m": ("mounts", None), "--mount": ("mounts", None),
    "--cache-dir": ("cache_dir", "path-dir"), "--cache-size": ("cache_size", str),
    "--metadata-ttl": ("metadata_ttl", float), "--endpoint-url": ("endpoint_url", str),
    "--profile": ("profile", str), "--region": ("region", str),
    "--connect-timeout": ("connect_timeout", float), "--read-timeout": ("read_timeout", float),
    "--retries": ("retries", int), "--stats-file": ("stats_file", "path-file"), "--fd-base": ("fd_base", int),
}
_EXEC_FLAG = {
    "--close-to-open": ("close_to_open", True), "--no-close-to-open": ("close_to_open", False),
    "--dir-markers": ("dir_markers", True), "--no-dir-markers": ("dir_markers", False),
    "--fast-path": ("fast_path", True), "--no-fast-path": ("fast_path", False),
}
_EXEC_DEFAULTS = {"mounts": (), "cache_dir": None, "cache_size": "10G", "metadata_ttl": 5.0, "close_to_open": True,
                  "endpoint_url": None, "profile": None, "region": None, "connect_timeout": 10.0,
                  "read_timeout": 30.0, "retries": 4, "dir_markers": True, "stats_file": None, "fast_path": True,
                  "fd_base": None, "verbose": 0}


class _Declined(Exception):
    """Not a command line _fast_exec_params reads: click decides."""


def _convert(kind, value: str):
    if kind is None or kind is str:
        return value
    if kind in (float, int):
        try:
            return kind(value)
        except ValueError:
            raise _Declined from None   # click's message
    # click.Path(exists=False, readable=True): a missing path is fine; an existing one is
    # checked for its kind and readability.
    import stat
    try:
        st = os.stat(value)
    except OSError:
        return Path(value)
    if (kind == "path-dir" and stat.S_ISREG(st.st_mode)) or (kind == "path-file" and stat.S_ISDIR(st.st_mode)) \
            or not os.access(value, os.R_OK):
        raise _Declined
    return Path(value)


def _fast_exec_params(args: list[str]) -> dict | None:
    """The parameters click would pass to `exec` for this command line, or None when that
    is not plain (then click parses it)."""
    if not args or args[0] != "exec":
        return None
    if any(name.startswith("_") and name.endswith("_COMPLETE") and value for name, value in os.environ.items()):
        return None   # shell completion: click's
    params = dict(_EXEC_DEFAULTS)
    mounts: list[str] = []
    rest = args[1:]
    i = 0
    try:
        while i < len(rest):
            arg = rest[i]
            i += 1
            if arg == "--":
                command = rest[i:]
                break
            if not arg.startswith("-") or len(arg) == 1:
                command = rest[i - 1:]
                # click parses options anywhere before `--`: the command's own (`ls -l`,
                # or a `--` after it, which click drops) are click's to sort out.
                if any(a.startswith("-") and len(a) > 1 for a in command):
                    return None
                break
            if arg.startswith("--"):
                name, eq, value = arg.partition("=")
                if name in _EXEC_FLAG and not eq:
                    key, flag = _EXEC_FLAG[name]
                    params[key] = flag
                elif name == "--verbose" and not eq:
                    params["verbose"] += 1
                elif name in _EXEC_VALUE:
                    if not eq:
                        if i >= len(rest):
                            return None
                        value = rest[i]
                        i += 1
                    key, kind = _EXEC_VALUE[name]
                    if key == "mounts":
                        mounts.append(value)
                    else:
                        params[key] = _convert(kind, value)
                else:
                    return None   # --help, unknown (click passes those to the command), ...
                continue
            # short options, possibly grouped: -vv, -m VALUE, -mVALUE, -vm VALUE
            for at in range(1, len(arg)):
                ch = arg[at]
                if ch == "v":
                    params["verbose"] += 1
                elif ch == "m":
                    value = arg[at + 1:]
                    if not value:
                        if i >= len(rest):
                            return None
                        value = rest[i]
                        i += 1
                    mounts.append(value)
                    break
                else:
                    return None   # -h, unknown
        else:
            return None   # no command: click's error
    except _Declined:
        return None
    if not command:
        return None
    params["mounts"] = tuple(mounts)
    params["command"] = tuple(command)
    return params


def main() -> None:
    """The `objmount` command. `objmount exec ...` with a plain command line runs without
    importing click (~12 ms of a run's start); the rest, and every error or help text, is
    click's (_click_group)."""
    params = _fast_exec_params(sys.argv[1:])
    if params is None:
        return _click_group()()
    try:
        _exec(**params)
    except (EOFError, KeyboardInterrupt):
        # What click's standalone mode does with them.
        from gettext import gettext

        import click
        click.echo(file=sys.stderr)
        click.echo(gettext("Aborted!"), file=sys.stderr)
        sys.exit(1)
    except OSError as exc:
        import errno
        if exc.errno != errno.EPIPE:
            raise
        from click.utils import PacifyFlushWrapper
        sys.stdout = PacifyFlushWrapper(sys.stdout)
        sys.stderr = PacifyFlushWrapper(sys.stderr)
        sys.exit(1)
    except Exception as exc:
        click = sys.modules.get("click")
        if click is None or not isinstance(exc, click.ClickException):
            raise
        # A usage error found before anything ran (a malformed mount, a bad setting):
        # click says it, with its usage line, as it would have from the start.
        return _click_group()()


if __name__ == "__main__":
    main()
