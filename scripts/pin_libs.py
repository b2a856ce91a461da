"""Keep torch's shared libraries resident in memory while the test suite or workbook runs.

On machines that proactively page out cold file pages, every fresh Python process (pytest,
each notebook kernel, benchmark subprocesses) re-reads torch's ~4 GB of shared libraries from
disk, minutes per import. Locking them in the page cache once (mlock on a read-only mapping)
makes later imports fast. Exits when its parent does. Best effort, never needed for
correctness: where locking is not allowed (a normal machine's memlock limit is a few MiB) it
says so in one line and exits. Usage: python scripts/pin_libs.py &   (scripts/test.sh and
workbook.sh do this)
"""

import ctypes
import ctypes.util
import os
import sys
import time
from pathlib import Path

PROT_READ, MAP_SHARED = 0x1, 0x01


def shared_libraries() -> list[Path]:
    site = (
        Path(sys.prefix)
        / "lib"
        / f"python{sys.version_info.major}.{sys.version_info.minor}"
        / "site-packages"
    )
    found = [p for pattern in ("torch/lib/*.so*", "nvidia/**/*.so*") for p in site.glob(pattern)]
    return sorted(p for p in found if p.is_file())


def main() -> None:
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = [
        ctypes.c_void_p,
        ctypes.c_size_t,
        ctypes.c_int,
        ctypes.c_int,
        ctypes.c_int,
        ctypes.c_long,
    ]
    libc.mlock.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    parent, pinned, failed, error = os.getppid(), 0, 0, ""
    for path in shared_libraries():
        size = path.stat().st_size
        fd = os.open(path, os.O_RDONLY)
        addr = libc.mmap(None, size, PROT_READ, MAP_SHARED, fd, 0)
        os.close(fd)
        if addr in (None, ctypes.c_void_p(-1).value) or libc.mlock(addr, size) != 0:
            failed, error = failed + 1, error or os.strerror(ctypes.get_errno())
            continue
        pinned += size
    if not pinned:
        print(
            f"[pin_libs] not locking torch's libraries here ({error}); not needed", file=sys.stderr
        )
        return
    skipped = f"; {failed} could not be locked ({error})" if failed else ""
    print(
        f"[pin_libs] {pinned / 2**30:.1f} GiB of shared libraries locked in memory{skipped}",
        file=sys.stderr,
    )
    while os.getppid() == parent:
        time.sleep(5)


if __name__ == "__main__":
    main()
