"""The object filesystem under objmount: mounts, metadata, stores, the sparse-file cache
and ranged fetch. Knows objects and byte ranges, nothing of ptrace."""

from .errors import VfsError
from .meta import Kind, Meta
from .mounts import MountTable
from .ranges import RangeSet
from .vfs import OpenFile, Vfs, VfsConfig

__all__ = ["Kind", "Meta", "MountTable", "OpenFile", "RangeSet", "Vfs", "VfsConfig", "VfsError"]
