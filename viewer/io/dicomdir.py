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
    try:
        from pydicom import dcmread

        meta = dcmread(path, stop_before_pixels=True, specific_tags=["MediaStorageSOPClassUID"]).file_meta
        return str(meta.get("MediaStorageSOPClassUID", "")) == "1.2.840.10008.1.3.10"
    except Exception:  # noqa: BLE001 - not a readable DICOMDIR
        return False


def referenced_files(path: str) -> tuple[list[str], list[tuple[str, str]]]:
    """Files listed by the DICOMDIR at ``path``.

    Returns
    -------
    files, problems
        Existing referenced files (absolute paths, in directory-record order) and (path, reason)
        pairs for references that do not exist or a DICOMDIR that cannot be read.
    """
    from pydicom import dcmread

    root = os.path.dirname(os.path.abspath(path))
    try:
        ds = dcmread(path)
        records = ds.get("DirectoryRecordSequence") or []
    except Exception as exc:  # noqa: BLE001
        return [], [(path, f"unreadable DICOMDIR: {type(exc).__name__}: {exc}"[:300])]
    files: list[str] = []
    problems: list[tuple[str, str]] = []
    seen: set[str] = set()
    for rec in records:
        ref = rec.get("ReferencedFileID")
        if ref is None:
            continue
        parts = [str(p) for p in ref] if not isinstance(ref, str) else ref.split("\\")
        full = _resolve(root, parts)
        if full is None and _outside(root, parts):
            problems.append((os.path.join(root, *parts), "DICOMDIR entry points outside its media folder; "
                             "not followed"))
        elif full is None:
            problems.append((os.path.join(root, *parts), "referenced by DICOMDIR but missing"))
        elif full not in seen:
            seen.add(full)
            files.append(full)
    return files, problems


def _resolve(root: str, parts: list[str]) -> str | None:
    """Path of a File ID; CD-R media often change case, so match components case-insensitively.

    A File ID names a file inside the media folder (PS3.10 8.5: components of up to 8 characters, no
    "..", no root): anything that would lead outside it (``../../etc/shadow``, an absolute component, a
    symlink out) is not followed."""
    found = None if _outside(root, parts) else _resolve_inside(root, parts)
    # Case-insensitive matching may have passed through a symlink: the real path decides.
    return None if found is None or _outside(root, [os.path.relpath(found, root)]) else found


def _outside(root: str, parts: list[str]) -> bool:
    """True when the File ID ``parts`` leads out of ``root`` (.., absolute, or a symlink out)."""
    if any(p in ("", ".", "..") or os.path.isabs(p) for p in parts):
        return True
    real_root = os.path.realpath(root)
    real = os.path.realpath(os.path.join(root, *parts))
    return os.path.commonpath([real_root, real]) != real_root


def _resolve_inside(root: str, parts: list[str]) -> str | None:
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
