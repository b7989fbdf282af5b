"""The one exception a learner can cause.

Every mistake a learner can make -- a typo in an IP address, a port out of
range, a pod outside its node's subnet, an unknown interface, a malformed
pcap, a filter libpcap rejects, missing privileges for the live lab --
raises :class:`CourseError`.  Its message names the field and says what is
allowed, so a notebook, a widget or the CLI can show it in one line without a
traceback.
"""

from __future__ import annotations

import functools
import inspect

__all__ = ["CourseError", "public"]


def _one_line(text: str, limit: int) -> str:
    if any(ord(c) < 32 or ord(c) == 127 for c in text):
        text = "".join(c if ord(c) >= 32 and ord(c) != 127 else repr(c)[1:-1] for c in text)
    if len(text) > limit:
        text = text[:limit - 20] + f"... ({len(text)} characters)"
    return text


class CourseError(ValueError):
    """A learner-facing error: ``field: problem (allowed: ...)``.

    >>> str(CourseError("nodes.xiaomi.nic.ip", "'10.0.0.300' is not an IPv4 address"))
    "nodes.xiaomi.nic.ip: '10.0.0.300' is not an IPv4 address"

    Taught in: every chapter (explorers show this message inline).
    """

    def __init__(self, field: str, problem: str, allowed: str | None = None):
        # one short line whatever the learner typed: control characters escaped, long echoes cut
        field, problem = _one_line(str(field), 200), _one_line(str(problem), 600)
        allowed = _one_line(str(allowed), 600) if allowed is not None else None
        self.field = field
        self.problem = problem
        self.allowed = allowed
        message = f"{field}: {problem}"
        if allowed:
            message += f" (allowed: {allowed})"
        from .i18n import safe_language
        if safe_language() != "en":           # the prose in the learner's language; paths and values verbatim
            from .i18n import tr, tr_text
            message = tr("{field}: {problem}", field=tr_text(field), problem=tr_text(problem))
            if allowed:
                message += tr(" (allowed: {allowed})", allowed=tr_text(allowed))
        super().__init__(message)


def public(fn):
    """Decorate a public function: wrong or unknown arguments raise :class:`CourseError`.

    Python's own ``TypeError`` for ``ck.walk(sc, colour="red")`` or a missing
    argument becomes ``walk: unexpected keyword argument 'colour' (allowed:
    scenario)``, so a notebook shows one line like every other mistake.
    """
    sig = inspect.signature(fn)
    names = ", ".join(n for n, p in sig.parameters.items() if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD))
    params = list(sig.parameters.values())
    simple = not any(p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) for p in params)
    positional = [p.name for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    by_keyword = {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    required = [(positional.index(p.name) if p.name in positional else None, p.name)
                for p in params if p.default is p.empty]

    def binds(args, kwargs) -> bool:
        """What ``sig.bind`` would accept, checked without building a BoundArguments (a hot path)."""
        if not simple or len(args) > len(positional):
            return False
        for k in kwargs:
            if k not in by_keyword or k in positional[:len(args)]:
                return False
        return all((i is not None and i < len(args)) or n in kwargs for i, n in required)

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            if not binds(args, kwargs):
                sig.bind(*args, **kwargs)
        except TypeError as e:
            problem = str(e).replace("got an ", "")
            raise CourseError(fn.__name__, problem, f"{fn.__name__}({names})") from None
        return fn(*args, **kwargs)
    return wrapper
