"""Spherical video metadata (Google's Spherical Video V2 RFC) written into an MP4 after encoding.

Players and YouTube recognise stereo / VR video by two boxes inside the video
track's sample entry (`moov/trak/mdia/minf/stbl/stsd/avc1`):

- `st3d` (FullBox + uint8 stereo_mode: 0 mono, 1 top-bottom, 2 left-right);
- `sv3d`, holding `svhd` (FullBox + the metadata source, a NUL-terminated
  string) and `proj`, which holds `prhd` (FullBox + yaw, pitch, roll as 16.16
  fixed point) and `equi` (FullBox + the cropped-away fractions of the 360 x 180
  degree sphere at the top, bottom, left and right, as 0.32 fixed point).

VR180 is left-right stereo, each eye an equirectangular picture of the front
half of the sphere: `equi` bounds top = bottom = 0 and left = right = 1/4.

No maintained Python library writes these, and PyAV (FFmpeg) cannot be asked
to, so the encoded file is rewritten: the boxes are spliced into the sample
entry, the sizes of the entry's ancestors grow by the same amount, and if the
`moov` box precedes the media data the chunk offsets (`stco` / `co64`) move
too. The result is written to a temporary file and renamed into place.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from pathlib import Path

from ..errors import SharpDepthError
from ..io.atomic import atomic_path

STEREO_MODES = {"mono": 0, "top-bottom": 1, "left-right": 2}
PATH_TO_ENTRIES = ("trak", "mdia", "minf", "stbl", "stsd")
VISUAL_ENTRY_HEADER = 78
"""SampleEntry (8) + VisualSampleEntry fields (70) before a visual sample entry's child boxes."""
METADATA_SOURCE = "sharpdepth"


def _box(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I4s", 8 + len(payload), kind) + payload


def _full_box(kind: bytes, payload: bytes, version: int = 0, flags: int = 0) -> bytes:
    return _box(kind, struct.pack(">I", (version << 24) | flags) + payload)


def st3d_box(stereo_mode: str) -> bytes:
    return _full_box(b"st3d", struct.pack(">B", STEREO_MODES[stereo_mode]))


def sv3d_equirect_box(
    top: float = 0.0, bottom: float = 0.0, left: float = 0.25, right: float = 0.25, source: str = METADATA_SOURCE
) -> bytes:
    """`sv3d` for an equirectangular projection cropped by the given fractions (default: VR180)."""

    def fixed(x: float) -> int:
        return min(int(round(x * 2**32)), 2**32 - 1)

    svhd = _full_box(b"svhd", source.encode() + b"\0")
    prhd = _full_box(b"prhd", struct.pack(">iii", 0, 0, 0))
    equi = _full_box(b"equi", struct.pack(">IIII", fixed(top), fixed(bottom), fixed(left), fixed(right)))
    return _box(b"sv3d", svhd + _box(b"proj", prhd + equi))


# ---------------------------------------------------------------- reading boxes
Box = tuple[str, int, int, int]
"""(type, box start, header size, box end)."""


def _walk_boxes(head_at: Callable[[int], bytes], start: int, end: int, where: str) -> list[Box]:
    """The boxes laid end to end from `start` to `end`; `head_at(pos)` reads up to 16 bytes there.
    A box whose size does not fit is a one-line error naming `where`."""
    out = []
    pos = start
    while pos + 8 <= end:
        head = head_at(pos)
        size, kind = struct.unpack(">I4s", head[:8])
        header = 8
        if size == 1:  # 64-bit size after the type
            size = struct.unpack(">Q", head[8:16])[0]
            header = 16
        elif size == 0:  # to the end
            size = end - pos
        if size < header or pos + size > end:
            raise SharpDepthError(f"{where}: box {kind!r} at {pos} has a bad size")
        out.append((kind.decode("latin-1"), pos, header, pos + size))
        pos += size
    return out


def _iter_boxes(buf: bytes | bytearray, start: int, end: int) -> list[Box]:
    """The boxes laid end to end in buf[start:end]."""
    return _walk_boxes(lambda pos: bytes(buf[pos : pos + 16]), start, end, "malformed MP4")


def _top_level(path: Path) -> list[Box]:
    """The file's top-level boxes, read header by header (the file is never read whole)."""
    with open(path, "rb") as f:

        def head_at(pos: int) -> bytes:
            f.seek(pos)
            return f.read(16)

        return _walk_boxes(head_at, 0, path.stat().st_size, f"{path}: malformed MP4 (top level)")


def _handler(moov: bytearray, trak: Box) -> str:
    for kind, s, h, e in _iter_boxes(moov, trak[1] + trak[2], trak[3]):
        if kind == "mdia":
            for k2, s2, h2, _e2 in _iter_boxes(moov, s + h, e):
                if k2 == "hdlr":
                    return moov[s2 + h2 + 8 : s2 + h2 + 12].decode("latin-1")
    return "?"


def _video_entry_path(moov: bytearray) -> list[Box]:
    """The boxes from the video `trak` down to its first sample entry (offsets within `moov`)."""
    for trak in _iter_boxes(moov, 0, len(moov)):
        if trak[0] != "trak" or _handler(moov, trak) != "vide":
            continue
        chain = [trak]
        for want in PATH_TO_ENTRIES[1:]:
            _, s, h, e = chain[-1]
            found = [b for b in _iter_boxes(moov, s + h, e) if b[0] == want]
            if not found:
                break
            chain.append(found[0])
        else:
            _, s, h, e = chain[-1]
            entries = _iter_boxes(moov, s + h + 8, e)  # stsd: FullBox header + entry_count
            if entries:
                return [*chain, entries[0]]
    raise SharpDepthError("the MP4 has no video sample entry")


def _grow(buf: bytearray, box: Box, delta: int) -> None:
    """Add `delta` to a box's size field (32- or 64-bit)."""
    _, start, header, end = box
    if header == 16:
        struct.pack_into(">Q", buf, start + 8, end - start + delta)
    else:
        struct.pack_into(">I", buf, start, end - start + delta)


def _shift_chunk_offsets(moov: bytearray, start: int, end: int, delta: int) -> None:
    for kind, s, h, e in _iter_boxes(moov, start, end):
        if kind in ("trak", "mdia", "minf", "stbl"):
            _shift_chunk_offsets(moov, s + h, e, delta)
        elif kind in ("stco", "co64"):
            count = struct.unpack(">I", moov[s + h + 4 : s + h + 8])[0]
            fmt, width = (">I", 4) if kind == "stco" else (">Q", 8)
            for i in range(count):
                at = s + h + 8 + i * width
                struct.pack_into(fmt, moov, at, struct.unpack(fmt, moov[at : at + width])[0] + delta)


def with_spherical_boxes(moov_payload: bytes, boxes: bytes) -> tuple[bytearray, int]:
    """The `moov` payload with `boxes` as the last children of the video sample entry (replacing
    earlier `st3d` / `sv3d`); returns (payload, growth in bytes)."""
    moov = bytearray(moov_payload)
    chain = _video_entry_path(moov)
    entry = chain[-1]
    children_start = entry[1] + entry[2] + VISUAL_ENTRY_HEADER
    kept = b"".join(
        bytes(moov[s:e])
        for kind, s, h, e in _iter_boxes(moov, children_start, entry[3])
        if kind not in ("st3d", "sv3d")
    )
    new_children = kept + boxes
    delta = len(new_children) - (entry[3] - children_start)
    for box in chain:
        _grow(moov, box, delta)
    moov[children_start : entry[3]] = new_children
    return moov, delta


def add_spherical_metadata(src: Path, dest: Path, stereo_mode: str = "left-right") -> Path:
    """Copy the MP4 `src` to `dest` (atomically) with VR180 `st3d` + `sv3d` boxes in its video track."""
    src, dest = Path(src), Path(dest)
    top = _top_level(src)
    moovs = [b for b in top if b[0] == "moov"]
    if not moovs:
        raise SharpDepthError(f"{src}: no moov box")
    _, m_start, m_header, m_end = moovs[0]
    with open(src, "rb") as f:
        f.seek(m_start + m_header)
        payload, delta = with_spherical_boxes(
            f.read(m_end - m_start - m_header), st3d_box(stereo_mode) + sv3d_equirect_box()
        )
    media_after = any(b[0] == "mdat" and b[1] > m_start for b in top)
    if media_after:
        _shift_chunk_offsets(payload, 0, len(payload), delta)
    header = struct.pack(">I4s", 8 + len(payload), b"moov")
    if 8 + len(payload) >= 2**32:
        raise SharpDepthError(f"{src}: moov box too large")
    with atomic_path(dest) as tmp, open(tmp, "wb") as out, open(src, "rb") as f:
        for _, start, _, end in top:
            if start == m_start:
                out.write(header + payload)
                continue
            f.seek(start)
            remaining = end - start
            while remaining:
                chunk = f.read(min(remaining, 1 << 20))
                out.write(chunk)
                remaining -= len(chunk)
    return dest
