"""Writing a cdb the way djb's tools do: to NAME.tmp (or a given
temporary name), fsynced, then renamed over NAME, so that readers see
the old file or the new one, never half of one."""

import os

import cdblib


def write_cdb(path: str, records, tmp: str | None = None) -> None:
    tmp = tmp or path + ".tmp"
    try:
        with open(tmp, "wb") as f:
            w = cdblib.Writer(f)
            for key, value in records:
                w.put(key, value)
            w.finalize()
            f.flush()
            os.fsync(f.fileno())
        os.rename(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
