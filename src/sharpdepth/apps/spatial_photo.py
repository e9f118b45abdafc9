"""Spatial photos: both eyes of a stereo pair in one HEIC, paired and with their cameras described.

pillow-heif (libheif) encodes the two eyes as two HEVC image items, the left eye
primary, but its encoder cannot write what makes the pair a *stereo* pair for a
headset. That part is added here by rewriting the file's `meta` box:

- `meta/grpl/ster`: an EntityToGroupBox (ISO/IEC 23008-12 2nd edition, 6.8.1 /
  6.8.2.1 "stereo pair"): FullBox version 0, flags 0, then uint32 group_id,
  uint32 num_entities_in_group = 2, and the entity (item) ids, left view first.
- `cmin` (camera intrinsics property, 23008-12 2nd edition; the layout libheif
  parses in `Box_cmin::parse`, `libheif/box.cc`, and that Apple's spatial photos
  use): FullBox version 0; flags bits 8-12 = the denominator shift d; signed
  int32 focal_length_x, principal_point_x, principal_point_y, each a fraction of
  the coded image's width (`ispe`; the principal point's y of its height) times
  2^d. Where the encoder padded the picture and crops it back with `clap`
  (sizes not a multiple of 8), the principal point is the shown picture's centre
  in coded coordinates. Flags bit 0
  (anisotropic: focal_length_y and skew follow) stays clear: square pixels, zero
  skew. d is the largest shift that keeps every value below 2^31, as libheif's
  writer (`Box_cmin::set_intrinsic_matrix`) picks it.
- `cmex` (camera extrinsics property, same edition; libheif's `Box_cmex::parse`):
  FullBox version 0; flags bit 0 = pos_x present (0x02 pos_y, 0x04 pos_z,
  0x08 orientation, 0x20 world coordinate system id, none of which are needed:
  absent means 0 / no rotation), then signed int32 pos_x in micrometres. Both
  eyes share one world frame (the photo's camera, x to the right): with the
  photo as the middle view the left eye sits at -B/2 and the right at +B/2, B
  the interaxial distance; with the photo as the left eye, at 0 and B.

Both properties go into `iprp/ipco` and are associated (not essential) with both
image items in `ipma` (cmin shared, one cmex per eye). `meta` precedes `mdat`,
so every `iloc` extent stored in the file (construction method 0) that lies after
`meta` moves by the number of bytes `meta` grew. Box-writing style as in
`stereo_mp4` (the VR180 `st3d` / `sv3d` boxes).
"""

from __future__ import annotations

import io
import math
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import OptionError, SharpDepthError
from ..io.atomic import atomic_path
from ..result import focal_from_fov
from .stereo_mp4 import Box, _box, _full_box, _iter_boxes

DEFAULT_FOV_DEG = 60.0
"""Horizontal field of view assumed when no focal length is given (as for stereo pairs)."""
DEFAULT_INTERAXIAL_M = 0.063
"""The documented headset default (`StereoSettings`)."""
STER_GROUP_ID = 1000
"""Entity group ids share one space with item ids; pillow-heif numbers its items from 1."""
IMAGE_ITEM_TYPES = (b"hvc1", b"av01", b"grid", b"jpeg")
CMEX_POS_X_PRESENT = 0x01

Associations = list[tuple[int, list[tuple[bool, int]]]]
"""ipma: per item id, its (essential, 1-based property index) pairs."""


@dataclass(frozen=True)
class StereoCameras:
    """What `cmin` / `cmex` say: one pinhole camera per eye, horizontally `interaxial_m` apart."""

    width: int
    height: int
    """The picture's size (what a viewer shows, after any clean-aperture crop)."""
    focal_px: float
    interaxial_m: float
    centered: bool = True
    """The photo is the middle view (eyes at -B/2, +B/2); False: the photo is the left eye (0, B)."""

    def positions_um(self) -> tuple[int, int]:
        b = self.interaxial_m * 1e6
        left = -b / 2 if self.centered else 0.0
        return round(left), round(left + b)


def save_spatial_heic(
    path: Path,
    left: np.ndarray,
    right: np.ndarray,
    quality: int = 90,
    focal_px: float | None = None,
    interaxial_m: float = DEFAULT_INTERAXIAL_M,
    centered: bool = True,
) -> Path:
    """Write the left and right eye (HxWx3 uint8, same size) as a spatial photo HEIC, atomically.

    `focal_px`: the eyes' focal length in pixels (default: a 60 degree horizontal field of view).
    """
    import pillow_heif

    if left.shape != right.shape or left.ndim != 3 or left.shape[2] != 3:
        raise OptionError(f"the eyes must be two HxWx3 pictures of one size, got {left.shape} and {right.shape}")
    if not (interaxial_m > 0 and math.isfinite(interaxial_m)):
        raise OptionError(f"interaxial distance must be a positive number of metres, got {interaxial_m}")
    h, w = left.shape[:2]
    focal = float(focal_px) if focal_px is not None else focal_from_fov(DEFAULT_FOV_DEG, w)
    heif = pillow_heif.HeifFile()
    for eye in (left, right):
        rgb = np.ascontiguousarray(eye, dtype=np.uint8)
        heif.add_frombytes("RGB", (w, h), rgb.tobytes())
    encoded = io.BytesIO()
    heif.save(encoded, quality=quality, primary_index=0, format="HEIF")
    data = add_stereo_metadata(encoded.getvalue(), StereoCameras(w, h, focal, interaxial_m, centered))
    with atomic_path(path) as tmp:
        Path(tmp).write_bytes(data)
    return Path(path)


# ---------------------------------------------------------------- the boxes
@dataclass(frozen=True)
class CodedGeometry:
    """An image item's coded size (`ispe`) and where its clean aperture (`clap`) starts in it.

    `cmin` is relative to the coded size (23008-12; libheif's `to_absolute` and
    `apply_clap`): encoders pad sizes that are not a multiple of 8 and crop back with `clap`.
    """

    width: int
    height: int
    left: float
    top: float


def ster_box(group_id: int, left_id: int, right_id: int) -> bytes:
    return _full_box(b"ster", struct.pack(">IIII", group_id, 2, left_id, right_id))


def _fixed_point_shift(values: tuple[float, ...]) -> int:
    """The largest d <= 31 with |v| * 2^d < 2^31 for every value (libheif's choice of precision)."""
    largest = max(abs(v) for v in values)
    if largest == 0:
        return 31
    return max(0, min(31, 30 - math.floor(math.log2(largest))))


def cmin_box(cameras: StereoCameras, coded: CodedGeometry | None = None) -> bytes:
    """Isotropic intrinsics relative to the coded image (see module doc): the principal point at the
    centre of the picture shown, which sits at (left, top) inside the coded one when it is cropped."""
    coded = coded or CodedGeometry(cameras.width, cameras.height, 0.0, 0.0)
    values = (
        cameras.focal_px / coded.width,
        (coded.left + cameras.width / 2) / coded.width,
        (coded.top + cameras.height / 2) / coded.height,
    )
    if not (cameras.focal_px > 0 and values[0] < 2**30):
        raise OptionError(f"focal length {cameras.focal_px} px cannot be stored")
    shift = _fixed_point_shift(values)
    payload = struct.pack(">iii", *(min(round(v * 2**shift), 2**31 - 1) for v in values))
    return _full_box(b"cmin", payload, flags=shift << 8)


def cmex_box(pos_x_um: int) -> bytes:
    if not -(2**31) <= pos_x_um < 2**31:
        raise OptionError(f"camera position {pos_x_um} um does not fit the cmex box")
    return _full_box(b"cmex", struct.pack(">i", pos_x_um), flags=CMEX_POS_X_PRESENT)


# ---------------------------------------------------------------- rewriting meta
@dataclass
class _Meta:
    """The parsed parts of `meta` that the rewrite changes (offsets within the file's bytes)."""

    start: int
    end: int
    full_header: bytes
    children: list[Box]
    """(type, box start, header size, box end) of each child of `meta`."""


def _bad(why: str) -> SharpDepthError:
    return SharpDepthError(f"cannot add the stereo metadata: {why}")


def _read_meta(buf: bytes) -> _Meta:
    metas = [b for b in _iter_boxes(buf, 0, len(buf)) if b[0] == "meta"]
    if len(metas) != 1:
        raise _bad(f"expected one top-level meta box, found {len(metas)}")
    _, start, header, end = metas[0]
    children = _iter_boxes(buf, start + header + 4, end)
    return _Meta(start, end, buf[start + header : start + header + 4], children)


def _child(buf: bytes, boxes: list[Box], kind: str) -> tuple[int, int]:
    """(payload start, end) of the one child box `kind`."""
    found = [(s + h, e) for k, s, h, e in boxes if k == kind]
    if len(found) != 1:
        raise _bad(f"expected one '{kind}' box, found {len(found)}")
    return found[0]


def _version_flags(buf: bytes, pos: int) -> tuple[int, int]:
    word = struct.unpack(">I", buf[pos : pos + 4])[0]
    return word >> 24, word & 0xFFFFFF


def _primary_item(buf: bytes, meta: _Meta) -> int:
    s, _ = _child(buf, meta.children, "pitm")
    version, _ = _version_flags(buf, s)
    return struct.unpack(">H" if version == 0 else ">I", buf[s + 4 : s + (6 if version == 0 else 8)])[0]


def _image_items(buf: bytes, meta: _Meta) -> list[int]:
    """Ids of the coded image items, in `iinf` order (infe versions 2 and 3)."""
    s, e = _child(buf, meta.children, "iinf")
    version, _ = _version_flags(buf, s)
    first = s + 4 + (2 if version == 0 else 4)
    ids = []
    for kind, bs, bh, _be in _iter_boxes(buf, first, e):
        if kind != "infe":
            continue
        p = bs + bh
        infe_version, _ = _version_flags(buf, p)
        if infe_version < 2:
            raise _bad(f"infe version {infe_version} is not written by libheif")
        if infe_version == 2:
            item_id, item_type = struct.unpack(">H2x4s", buf[p + 4 : p + 12])
        else:
            item_id, item_type = struct.unpack(">I2x4s", buf[p + 4 : p + 14])
        if item_type in IMAGE_ITEM_TYPES:
            ids.append(item_id)
    return ids


def _coded_geometry(buf: bytes, ipco: list[Box], indices: list[int]) -> CodedGeometry:
    """The `ispe` size and `clap` crop origin among the properties `indices` (1-based into `ipco`)."""
    props = [ipco[i - 1] for i in indices if 0 < i <= len(ipco)]
    ispe = [(s + h, e) for k, s, h, e in props if k == "ispe"]
    if len(ispe) != 1:
        raise _bad("the left image has no ispe (size) property")
    w, h = struct.unpack(">II", buf[ispe[0][0] + 4 : ispe[0][0] + 12])
    left = top = 0.0
    for k, s, hd, _e in props:
        if k == "clap":  # widthN/D, heightN/D, horizOffN/D, vertOffN/D; offsets move the centre
            cw_n, cw_d, ch_n, ch_d, ho_n, ho_d, vo_n, vo_d = struct.unpack(">IIIIiIiI", buf[s + hd : s + hd + 32])
            if 0 in (cw_d, ch_d, ho_d, vo_d):
                raise _bad("a clap box with a zero denominator")
            left = ho_n / ho_d + (w - 1) / 2 - (cw_n / cw_d - 1) / 2
            top = vo_n / vo_d + (h - 1) / 2 - (ch_n / ch_d - 1) / 2
    return CodedGeometry(w, h, left, top)


def _ipma_entries(payload: bytes) -> tuple[int, int, Associations]:
    """(version, flags, [(item id, [(essential, property index)])]) of an ipma box's payload."""
    version, flags = _version_flags(payload, 0)
    count = struct.unpack(">I", payload[4:8])[0]
    pos, entries = 8, []
    for _ in range(count):
        if version < 1:
            item_id = struct.unpack(">H", payload[pos : pos + 2])[0]
            pos += 2
        else:
            item_id = struct.unpack(">I", payload[pos : pos + 4])[0]
            pos += 4
        n = payload[pos]
        pos += 1
        assoc = []
        for _ in range(n):
            if flags & 1:
                v = struct.unpack(">H", payload[pos : pos + 2])[0]
                assoc.append((bool(v >> 15), v & 0x7FFF))
                pos += 2
            else:
                assoc.append((bool(payload[pos] >> 7), payload[pos] & 0x7F))
                pos += 1
        entries.append((item_id, assoc))
    return version, flags, entries


def _ipma_box(version: int, flags: int, entries: Associations) -> bytes:
    if any(index > 0x7F for _, assoc in entries for _, index in assoc):
        flags |= 1  # 15-bit property indices
    if version < 1 and any(item_id > 0xFFFF for item_id, _ in entries):
        version = 1
    out = [struct.pack(">I", len(entries))]
    for item_id, assoc in entries:
        out.append(struct.pack(">H" if version < 1 else ">I", item_id) + struct.pack(">B", len(assoc)))
        for essential, index in assoc:
            if flags & 1:
                out.append(struct.pack(">H", (int(essential) << 15) | index))
            else:
                out.append(struct.pack(">B", (int(essential) << 7) | index))
    return _full_box(b"ipma", b"".join(out), version=version, flags=flags)


def _iprp_parts(buf: bytes, meta: _Meta) -> tuple[list[Box], list[Box], tuple[int, int, Associations]]:
    """(children of iprp, children of ipco, parsed ipma)."""
    s, e = _child(buf, meta.children, "iprp")
    inner = _iter_boxes(buf, s, e)
    ipco_s, ipco_e = _child(buf, inner, "ipco")
    ipma_s, ipma_e = _child(buf, inner, "ipma")
    return inner, _iter_boxes(buf, ipco_s, ipco_e), _ipma_entries(buf[ipma_s:ipma_e])


def _new_iprp(buf: bytes, meta: _Meta, props: list[bytes], assoc: dict[int, list[int]]) -> bytes:
    """`iprp` with `props` appended to `ipco` and item -> [1-based indices of props] added to `ipma`."""
    inner, ipco, (version, flags, entries) = _iprp_parts(buf, meta)
    existing = len(ipco)
    known = {item_id for item_id, _ in entries}
    entries = entries + [(item_id, []) for item_id in assoc if item_id not in known]
    entries = [(item_id, a + [(False, existing + i) for i in assoc.get(item_id, [])]) for item_id, a in entries]
    out = []
    for kind, bs, bh, be in inner:
        if kind == "ipco":
            out.append(_box(b"ipco", buf[bs + bh : be] + b"".join(props)))
        elif kind == "ipma":
            out.append(_ipma_box(version, flags, entries))
        else:
            out.append(buf[bs:be])
    return _box(b"iprp", b"".join(out))


def _shifted_iloc(payload: bytes, after: int, delta: int) -> bytes:
    """`iloc`'s payload with every file offset (construction method 0) at or past `after` moved by `delta`.

    Versions 0-2; offset_size / base_offset_size 0, 4 or 8. With a base offset the
    base moves (extents are relative to it), else each extent's offset does.
    """
    out = bytearray(payload)
    version, _ = _version_flags(payload, 0)
    if version > 2:
        raise _bad(f"iloc version {version}")
    offset_size, length_size = payload[4] >> 4, payload[4] & 15
    base_size = payload[5] >> 4
    index_size = payload[5] & 15 if version in (1, 2) else 0
    if {offset_size, length_size, base_size} - {0, 4, 8} or index_size not in (0, 4, 8):
        raise _bad("iloc field sizes other than 0, 4 and 8 bytes")
    pos = 6
    if version < 2:
        count = struct.unpack(">H", payload[pos : pos + 2])[0]
        pos += 2
    else:
        count = struct.unpack(">I", payload[pos : pos + 4])[0]
        pos += 4

    def read(size: int) -> int:
        nonlocal pos
        value = int.from_bytes(payload[pos : pos + size], "big") if size else 0
        pos += size
        return value

    def move(at: int, size: int, value: int) -> None:
        moved = value + delta
        if moved >= 1 << (8 * size):
            raise _bad(f"an offset of {moved} does not fit iloc's {size}-byte field")
        out[at : at + size] = moved.to_bytes(size, "big")

    for _ in range(count):
        read(2 if version < 2 else 4)  # item id
        method = read(2) & 15 if version in (1, 2) else 0
        read(2)  # data reference index
        base_at = pos
        base = read(base_size)
        extents = []
        for _ in range(read(2)):
            read(index_size)
            extents.append((pos, read(offset_size)))
            read(length_size)
        if method != 0:
            continue  # idat- or item-relative: unaffected by where meta ends
        if base_size:
            if base + (extents[0][1] if extents else 0) >= after:
                move(base_at, base_size, base)
        else:
            for at, offset in extents:
                if offset >= after:
                    if not offset_size:
                        raise _bad("an iloc extent has no offset field to move")
                    move(at, offset_size, offset)
    return bytes(out)


def add_stereo_metadata(buf: bytes, cameras: StereoCameras) -> bytes:
    """The HEIC `buf` with its two image items grouped as a stereo pair (`ster`, primary = left) and
    given `cmin` / `cmex` (see module doc); the coded images are left byte for byte as they were."""
    meta = _read_meta(buf)
    if any(k == "grpl" for k, *_ in meta.children):
        raise _bad("the file already has entity groups")
    items = _image_items(buf, meta)
    left = _primary_item(buf, meta)
    if len(items) != 2 or left not in items:
        raise _bad(f"expected two image items, the primary one of them, found {items} (primary {left})")
    right = next(i for i in items if i != left)
    _, ipco, (_, _, entries) = _iprp_parts(buf, meta)
    left_props = [index for item_id, assoc in entries if item_id == left for _, index in assoc]
    coded = _coded_geometry(buf, ipco, left_props)
    pos_left, pos_right = cameras.positions_um()
    props = [cmin_box(cameras, coded), cmex_box(pos_left), cmex_box(pos_right)]
    iprp = _new_iprp(buf, meta, props, {left: [1, 2], right: [1, 3]})
    grpl = _box(b"grpl", ster_box(STER_GROUP_ID, left, right))
    parts: list[tuple[str, bytes]] = []
    for kind, s, _h, e in meta.children:
        parts.append((kind, iprp if kind == "iprp" else buf[s:e]))
    parts.append(("grpl", grpl))
    new_size = 8 + 4 + sum(len(p) for _, p in parts)  # iloc keeps its size
    delta = new_size - (meta.end - meta.start)
    body = []
    for kind, part in parts:
        if kind == "iloc":
            header = 8 if struct.unpack(">I", part[:4])[0] != 1 else 16
            part = part[:header] + _shifted_iloc(part[header:], meta.end, delta)
        body.append(part)
    new_meta = _box(b"meta", meta.full_header + b"".join(body))
    if len(new_meta) != new_size:
        raise _bad("meta grew by an unexpected amount")  # a header size changed (a box passed 4 GB)
    return buf[: meta.start] + new_meta + buf[meta.end :]
