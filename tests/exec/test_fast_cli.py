"""`objmount exec` reads a plain command line without click (objmount/cli.py,
_fast_exec_params): the parameters must be exactly those click gives, and everything it
does not read plainly must be left to click (help, errors, options after the command)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from exec_support import REPO

from objmount import cli

ENV = dict(os.environ, PYTHONPATH=str(REPO))


class _Parsed(Exception):
    pass


def click_params(args: list[str], monkeypatch) -> dict | str:
    """What click passes to the exec body for args (or 'error'/'exit' when it stops first)."""
    import click

    def capture(**params):
        raise _Parsed(params)

    monkeypatch.setattr(cli, "_exec", lambda *a: capture(**dict(zip(EXEC_PARAMS, a))))
    try:
        cli._click_group().main(args, prog_name="objmount", standalone_mode=False)
    except _Parsed as got:
        return got.args[0]
    except click.ClickException:
        return "error"
    return "exit"   # --help, --version


EXEC_PARAMS = ["mounts", "cache_dir", "cache_size", "metadata_ttl", "close_to_open", "endpoint_url", "profile",
               "region", "connect_timeout", "read_timeout", "retries", "dir_markers", "stats_file", "fast_path",
               "fd_base", "verbose", "command"]


@pytest.fixture
def paths(tmp_path, monkeypatch):
    (tmp_path / "afile").write_text("x")
    (tmp_path / "adir").mkdir()
    monkeypatch.chdir(tmp_path)
    return tmp_path


# Command lines the fast path reads itself (the common forms) ...
READ = [
    ["exec", "--", "true"],
    ["exec", "true"],
    ["exec", "echo", "a", "b"],
    ["exec", "-", "x"],
    ["exec", "", "x"],
    ["exec", "--", "sh", "-c", "echo hi -- -v"],
    ["exec", "-m", "/w=s3://bucket/p", "--mount", "/x=file:///tmp", "--mount=/y=s3://b2", "--", "ls", "-l"],
    ["exec", "-m/w=s3://bucket", "-vm", "/x=s3://b", "-vv", "true"],
    ["exec", "-m", "--", "true"],
    ["exec", "-m=/w=s3://b", "true"],
    ["exec", "--cache-dir", "adir", "--stats-file", "afile", "true"],
    ["exec", "--cache-dir", "missing/dir", "--stats-file=missing.json", "true"],
    ["exec", "--cache-dir=", "true"],
    ["exec", "--cache-size", "1G", "--metadata-ttl", "0.5", "--metadata-ttl=7", "true"],
    ["exec", "--metadata-ttl", "-1", "true"],
    ["exec", "--metadata-ttl", "nan", "--connect-timeout", "1e3", "--read-timeout", " 2 ", "--retries", "0", "true"],
    ["exec", "--retries", "-3", "--fd-base", "64", "true"],
    ["exec", "--no-close-to-open", "--close-to-open", "--no-dir-markers", "--no-fast-path", "true"],
    ["exec", "--fast-path", "--no-fast-path", "--fast-path", "true"],
    ["exec", "--endpoint-url", "http://127.0.0.1:9", "--profile", "p", "--region", "eu-west-1", "true"],
    ["exec", "--endpoint-url=", "--region=", "true"],
    ["exec", "--verbose", "-v", "--verbose", "true"],
]

# ... and those it leaves to click.
DECLINED = [
    [], ["--version"], ["-h"], ["flush"], ["exec"], ["exec", "--"], ["exec", "-h"], ["exec", "--help"],
    ["exec", "-vh"], ["exec", "ls", "-l"], ["exec", "echo", "--", "x"], ["exec", "ls", "-v"],
    ["exec", "--bogus", "true"], ["exec", "-x", "true"], ["exec", "-vx", "true"],
    ["exec", "--fast-path=1", "true"], ["exec", "--verbose=2", "true"],
    ["exec", "--metadata-ttl", "x", "true"], ["exec", "--retries", "1.5", "true"], ["exec", "--fd-base", "a", "true"],
    ["exec", "--cache-dir", "afile", "true"], ["exec", "--stats-file", "adir", "true"],
    ["exec", "-m"], ["exec", "--cache-size"], ["exec", "--mount"], ["exec", "--cache"], ["exec", "--=x", "true"],
    ["exec", "--cache-size", "1G"], ["exec", "-v"],
]


@pytest.mark.parametrize("args", READ, ids=lambda a: " ".join(a) or "-")
def test_the_fast_path_gives_clicks_parameters(args, paths, monkeypatch):
    fast = cli._fast_exec_params(args)
    assert fast is not None, "a plain command line is read without click"
    # repr: the same values of the same types (5 is not 5.0), nan included
    assert repr(sorted(fast.items())) == repr(sorted(click_params(args, monkeypatch).items()))


@pytest.mark.parametrize("args", DECLINED, ids=lambda a: " ".join(a) or "-")
def test_what_it_cannot_read_plainly_is_clicks(args, paths):
    assert cli._fast_exec_params(args) is None


def test_shell_completion_is_clicks(monkeypatch):
    monkeypatch.setenv("_OBJMOUNT_COMPLETE", "bash_source")
    assert cli._fast_exec_params(["exec", "true"]) is None


def test_an_unreadable_existing_cache_dir_is_clicks(paths, monkeypatch):
    monkeypatch.setattr(os, "access", lambda *a, **k: False)
    assert cli._fast_exec_params(["exec", "--cache-dir", "adir", "true"]) is None
    assert cli._fast_exec_params(["exec", "--cache-dir", "missing", "true"]) is not None


def test_a_plain_exec_does_not_import_click():
    probe = ("import sys, runpy; sys.argv = ['objmount', 'exec', '--', '/bin/true'];"
             "import objmount.cli as c; c._leave = lambda code: (print('click' in sys.modules), sys.exit(code));"
             "c.main()")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=ENV)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


def test_a_usage_error_found_after_the_fast_parse_is_clicks_message(tmp_path):
    # The mount table is checked after parsing: the message and status are click's,
    # usage line included, and the program never runs.
    marker = tmp_path / "ran"
    out = subprocess.run([sys.executable, "-m", "objmount", "exec", "-m", "nodelimiter", "--", "touch", str(marker)],
                         capture_output=True, text=True, env=ENV)
    assert out.returncode == 2
    assert out.stderr.startswith("Usage: python -m objmount exec [OPTIONS] COMMAND...\n")
    assert "Error: --mount 'nodelimiter': expected TARGET=URL" in out.stderr
    assert not marker.exists()
