"""Who may open a file or device: its owner for a report line, and the service's rights."""

from __future__ import annotations

import grp
import os
import pwd
import stat

from terminal.doctor.report import Check, fail

# The user and groups kartapos.service runs with (systemd/kartapos.service).
SERVICE_USER = "kartapos"
SERVICE_GROUPS = ("dialout", "input", "lp")


def owner(st: os.stat_result) -> str:
    """'kartapos:dialout 0660' for a report line."""
    try:
        user = pwd.getpwuid(st.st_uid).pw_name
    except KeyError:
        user = str(st.st_uid)
    try:
        group = grp.getgrgid(st.st_gid).gr_name
    except KeyError:
        group = str(st.st_gid)
    return f"{user}:{group} {stat.S_IMODE(st.st_mode):04o}"


def service_cannot_open(st: os.stat_result, write: bool) -> bool:
    """True when kartapos.service's user and groups lack the permission bits (if it exists)."""
    try:
        user = pwd.getpwnam(SERVICE_USER)
    except KeyError:
        return False
    gids = {user.pw_gid}
    for name in SERVICE_GROUPS:
        try:
            gids.add(grp.getgrnam(name).gr_gid)
        except KeyError:
            continue
    mode = stat.S_IMODE(st.st_mode)
    if st.st_uid == user.pw_uid:
        bits = mode >> 6
    elif st.st_gid in gids:
        bits = mode >> 3
    else:
        bits = mode
    need = 0o6 if write else 0o4
    return bits & need != need


def missing_device(what: str, path: str, fix: str) -> Check:
    """A FAIL for a device path that is not there, naming a dangling udev link as such."""
    dangling = os.path.islink(path)
    detail = f"{path} is a link to a missing device" if dangling else f"{path} does not exist"
    return fail(what, detail, fix)
