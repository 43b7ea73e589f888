"""Paths give the kernel's errors: the same probe on a local directory and under objmount."""

from __future__ import annotations

LONG_NAME = "n" * 256
LONG_PATH = "/".join(["d" * 200] * 21)   # over PATH_MAX


def test_dot_as_the_last_component_of_rmdir_and_rename_is_einval(differential):
    differential(
        [["mkdir", "d"], ["rmdir", "d/."], ["exists", "d"], ["rename", "d/.", "e"], ["mkdir", "d/sub"],
         ["rename", "d/sub", "d/sub/.."], ["rmdir", "d/.."], ["listdir"]],
    )


def test_a_file_used_as_a_directory_is_enotdir(differential):
    differential(
        [["put", "f", "x"], ["stat", "f/x"], ["open", "f/x", "RDONLY"], ["mkdir", "f/d"], ["unlink", "f/x"],
         ["open", "f/new", "WRONLY|CREAT"], ["rename", "f/x", "g"], ["listdir", "f"]],
    )


def test_names_and_paths_over_the_limits_are_enametoolong(differential):
    differential(
        [["put", LONG_NAME, "x"], ["stat", LONG_NAME], ["mkdir", LONG_NAME], ["stat", LONG_PATH],
         ["open", LONG_PATH, "WRONLY|CREAT"], ["listdir"]],
    )


def test_creating_through_a_symlink_to_a_directory(differential):
    differential(
        [["mkdir", "d"], ["symlink", "d", "l"], ["put", "l/new", "via link"], ["cat", "d/new"],
         ["listdir", "d"], ["mkdir", "l/sub"], ["listdir", "d"]],
    )


def test_an_o_path_descriptor_only_names_the_file(differential):
    differential(
        [["put", "f", "x"], ["open", "f", "PATH"], ["fstat", "a", False], ["fchmod", "a", 0o600],
         ["read", "a", 1], ["close", "a"], ["stat", "f", False]],
    )


def test_an_o_path_descriptor_of_a_directory_changes_nothing_through_itself(differential):
    differential(
        [["mkdir", "d"], ["open", "d", "PATH|DIRECTORY"], ["fstat", "a", False], ["fchmod", "a", 0o700],
         ["close", "a"], ["stat", "d", False]],
    )
