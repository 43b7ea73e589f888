"""The object filesystem under objmount: mounts, metadata, stores, the sparse-file cache
and ranged fetch. Knows objects and byte ranges, nothing of ptrace.

The names below are imported on first use (PEP 562): `from vfs import VfsError` loads
vfs/errors.py alone, not the whole package. A run that touches no virtual path never
loads the open-file, fetch, upload and store machinery (part of objmount's start-up)."""

from importlib import import_module

_WHERE = {
    "VfsError": "errors",
    "Kind": "meta",
    "Meta": "meta",
    "MountTable": "mounts",
    "RangeSet": "ranges",
    "OpenFile": "vfs",
    "Vfs": "vfs",
    "VfsConfig": "vfs",
}

__all__ = ["Kind", "Meta", "MountTable", "OpenFile", "RangeSet", "Vfs", "VfsConfig", "VfsError"]


def __getattr__(name: str):
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'vfs' has no attribute {name!r}")
    value = getattr(import_module(f"{__name__}.{module}"), name)
    globals()[name] = value   # the next lookup is an ordinary global
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))
