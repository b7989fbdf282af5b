"""The one exception a learner can cause.

Every mistake a learner can make -- a typo in an IP address, a port out of
range, a pod outside its node's subnet, an unknown interface, a malformed
pcap, a filter libpcap rejects, missing privileges for the live lab --
raises :class:`CourseError`.  Its message names the field and says what is
allowed, so a notebook, a widget or the CLI can show it in one line without a
traceback.
"""

from __future__ import annotations

__all__ = ["CourseError"]


class CourseError(ValueError):
    """A learner-facing error: ``field: problem (allowed: ...)``.

    >>> str(CourseError("nodes.xiaomi.nic.ip", "'10.0.0.300' is not an IPv4 address"))
    "nodes.xiaomi.nic.ip: '10.0.0.300' is not an IPv4 address"

    Taught in: every chapter (explorers show this message inline).
    """

    def __init__(self, field: str, problem: str, allowed: str | None = None):
        self.field = field
        self.problem = problem
        self.allowed = allowed
        message = f"{field}: {problem}"
        if allowed:
            message += f" (allowed: {allowed})"
        super().__init__(message)
