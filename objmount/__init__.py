"""objmount: run unmodified programs on S3 objects at virtual paths (ptrace + seccomp)."""

__version__ = "0.1.0"
