"""The C library's functions that Python's standard library lacks
(getpwnam_r, inotify, prctl, the raw syscall), for every module that
needs one: the library is opened once, and each caller gets a function
object of its own, typed as it says (two callers of one function may
declare different arguments, as prctl's two uses do).
"""

import ctypes
import ctypes.util


def _open():
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    except OSError:                  # no C library to be had (or no descriptor to open it)
        return None


_LIBC = _open()


def libc_function(name: str, argtypes, restype=ctypes.c_int):
    """The C library's function name, typed; None if there is none."""
    if _LIBC is None:
        return None
    try:
        f = _LIBC[name]              # a new object each time, unlike _LIBC.name
    except AttributeError:
        return None
    f.argtypes, f.restype = argtypes, restype
    return f
