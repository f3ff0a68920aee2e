"""The files a DICOMDIR (PS3.10 media directory, PS3.3 F.3) refers to."""

from __future__ import annotations

import os


def is_dicomdir(path: str) -> bool:
    """True when ``path`` is a DICOMDIR: named so (PS3.10 8.6 fixes the name) or its media storage
    SOP class is Media Storage Directory Storage."""
    if os.path.basename(path).upper() == "DICOMDIR":
        return os.path.isfile(path)
    if not path.lower().endswith(".dcm") and "dicomdir" not in os.path.basename(path).lower():
        return False
    # Only the file meta group is needed: reading it from the first bytes costs one small read, where
    # pydicom would parse the whole header (a list of N image files would be read twice).
    try:
        with open(path, "rb") as fh:
            head = fh.read(MEDIA_CLASS_PROBE_BYTES)
    except OSError:
        return False
    return media_storage_class(head) == DICOMDIR_CLASS


#: MediaStorageSOPClassUID of a DICOMDIR (Media Storage Directory Storage).
DICOMDIR_CLASS = "1.2.840.10008.1.3.10"
#: The file meta group (PS3.10 7.1) precedes everything else and is a few hundred bytes long.
MEDIA_CLASS_PROBE_BYTES = 4096
_LONG_VRS = {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"}


def media_storage_class(head: bytes) -> str | None:
    """(0002,0002) MediaStorageSOPClassUID from the first bytes of a Part 10 file (preamble, "DICM",
    then the explicit VR little endian meta group), or None when it is not there."""
    import struct

    if head[128:132] != b"DICM":
        return None
    pos = 132
    while pos + 8 <= len(head):
        group, elem = struct.unpack_from("<HH", head, pos)
        if group != 2:
            return None
        vr = head[pos + 4:pos + 6]
        if vr in _LONG_VRS:
            if pos + 12 > len(head):
                return None
            length, start = struct.unpack_from("<I", head, pos + 8)[0], pos + 12
        else:
            length, start = struct.unpack_from("<H", head, pos + 6)[0], pos + 8
        if elem == 2:
            if start + length > len(head):
                return None
            return head[start:start + length].rstrip(b"\x00 ").decode("ascii", "replace")
        pos = start + length
    return None


#: Nested directory files followed at most this deep (a DIRFILE naming itself must not loop forever).
MAX_DEPTH = 8


def referenced_files(path: str) -> tuple[list[str], list[tuple[str, str]]]:
    """Files listed by the DICOMDIR at ``path``, following nested directory files.

    Philips CDs write a root DICOMDIR whose records point to further directory files (named DIRFILE,
    themselves PS3.10 media directories) that list the images; those are followed (File IDs resolved
    against the media root, else against the directory file's own folder). A File ID that would leave
    the media folder (``..``, an absolute path, a link outside) is refused.

    Returns
    -------
    files, problems
        Existing referenced image files (absolute paths, in directory-record order) and (path, reason)
        pairs for references that do not exist, leave the media folder, or a directory file that cannot
        be read.
    """
    root = os.path.dirname(os.path.abspath(path))
    files: list[str] = []
    problems: list[tuple[str, str]] = []
    seen: set[str] = set()
    visited: set[str] = set()
    _walk_directory(os.path.abspath(path), root, files, problems, seen, visited, 0)
    return files, problems


def _walk_directory(path: str, root: str, files: list[str], problems: list[tuple[str, str]], seen: set[str],
                    visited: set[str], depth: int) -> None:
    from pydicom import dcmread

    visited.add(os.path.realpath(path))
    try:
        ds = dcmread(path, force=True)
        records = ds.get("DirectoryRecordSequence") or []
    except Exception as exc:  # noqa: BLE001 - any reader failure is this file's problem, not the scan's
        problems.append((path, f"unreadable DICOMDIR: {type(exc).__name__}: {exc}"[:300]))
        return
    here = os.path.dirname(path)
    for rec in records:
        ref = rec.get("ReferencedFileID")
        if ref is None:
            continue
        parts = [str(p) for p in ref] if not isinstance(ref, str) else ref.split("\\")
        shown = os.path.join(root, *parts)
        if not _safe(parts):
            problems.append((shown, "referenced by DICOMDIR but outside the media folder; not read"))
            continue
        full = _resolve(root, parts)
        if full is None and here != root:
            full = _resolve(here, parts)
        if full is not None and not _inside(full, root):
            problems.append((shown, "referenced by DICOMDIR but outside the media folder; not read"))
            continue
        if full is None:
            problems.append((shown, "referenced by DICOMDIR but missing"))
        elif _is_directory_file(full, rec):
            if os.path.realpath(full) in visited:
                continue
            if depth + 1 > MAX_DEPTH:
                problems.append((full, f"directory files nested deeper than {MAX_DEPTH}; not followed"))
                continue
            _walk_directory(full, root, files, problems, seen, visited, depth + 1)
        elif full not in seen:
            seen.add(full)
            files.append(full)


def _safe(parts: list[str]) -> bool:
    """A File ID is a relative path of plain components (PS3.10 8.2 allows no others)."""
    return bool(parts) and all(p not in ("", ".", "..") and "/" not in p and ":" not in p
                               and not os.path.isabs(p) for p in parts)


def _inside(path: str, root: str) -> bool:
    real, base = os.path.realpath(path), os.path.realpath(root)
    return real == base or real.startswith(base.rstrip(os.sep) + os.sep)


def _is_directory_file(path: str, rec: object) -> bool:
    """A nested media directory: named DIRFILE, or its meta header names the Media Storage Directory
    SOP class (checked on the first bytes only)."""
    if os.path.basename(path).upper() == "DIRFILE":
        return True
    try:
        with open(path, "rb") as f:
            head = f.read(1024)
    except OSError:
        return False
    return head[128:132] == b"DICM" and b"1.2.840.10008.1.3.10" in head


def _resolve(root: str, parts: list[str]) -> str | None:
    """Path of a File ID; CD-R media often change case, so match components case-insensitively."""
    direct = os.path.join(root, *parts)
    if os.path.isfile(direct):
        return direct
    cur = root
    for p in parts:
        try:
            names = {n.upper(): n for n in os.listdir(cur)}
        except OSError:
            return None
        name = names.get(p.upper())
        if name is None:
            return None
        cur = os.path.join(cur, name)
    return cur if os.path.isfile(cur) else None
