"""Files written atomically: a temp file in the same folder with the wanted
mode and owner, fsync, rename over the old one, fsync of the folder. A full
disk or a killed process leaves the old file whole."""
import os
import tempfile


def atomic_write(path, text, mode, uid, gid):
    """Replace ``path`` by ``text`` (UTF-8), mode ``mode``, owner uid/gid."""
    real = os.path.realpath(path)
    folder, base = os.path.split(real)
    data = text.encode("utf-8", "surrogateescape")
    fd, tmp = tempfile.mkstemp(prefix=f".{base}.", suffix=".tmp", dir=folder)
    try:
        try:
            os.fchmod(fd, mode)
            os.fchown(fd, uid, gid)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(tmp, real)
    except OSError:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    dir_fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
