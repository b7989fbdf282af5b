"""errors.public checks arguments without inspect's bind on its fast path: it must accept and refuse exactly
what ``inspect.Signature.bind`` does (every public function goes through it)."""

import inspect

import pytest

from coursekit.errors import CourseError, public


def _kw_only(a, b=1, *, c, d=2):
    return (a, b, c, d)


def _pos_only(a, /, b, c=3):
    return (a, b, c)


def _optional(x=None):
    return x


def _varargs(a, *rest, **kw):
    return (a, rest, kw)


ARGS = [(), (1,), (1, 2), (1, 2, 3), (1, 2, 3, 4)]
KWARGS = [{}, {"a": 1}, {"b": 1}, {"c": 1}, {"d": 1}, {"e": 1}, {"c": 1, "d": 2}, {"a": 1, "c": 1}, {"x": 1},
          {"b": 1, "c": 1}]


@pytest.mark.parametrize("fn", [_kw_only, _pos_only, _optional, _varargs])
def test_public_accepts_and_refuses_what_bind_does(fn):
    sig, wrapped = inspect.signature(fn), public(fn)
    for args in ARGS:
        for kwargs in KWARGS:
            try:
                sig.bind(*args, **kwargs)
                bindable = True
            except TypeError:
                bindable = False
            if bindable:
                assert wrapped(*args, **kwargs) == fn(*args, **kwargs)
            else:
                with pytest.raises(CourseError) as e:
                    wrapped(*args, **kwargs)
                assert e.value.field == fn.__name__ and fn.__name__ + "(" in e.value.allowed
