"""Spatial photo HEIC: the `ster` pair and the `cmin` / `cmex` camera properties, read back by libheif
(through pillow-heif) and by an independent box parser written here; the coded images unchanged."""

from __future__ import annotations

import io
import struct

import numpy as np
import pillow_heif
import pytest

from sharpdepth.apps.spatial_photo import StereoCameras, _shifted_iloc, add_stereo_metadata, save_spatial_heic
from sharpdepth.errors import OptionError, SharpDepthError


# ---------------------------------------------------------------- an independent ISO-BMFF reader
def boxes(buf: bytes, start: int, end: int) -> list[tuple[str, int, int]]:
    """(type, payload start, end) of the boxes laid end to end in buf[start:end] (32-bit sizes)."""
    out, i = [], start
    while i + 8 <= end:
        size, kind = struct.unpack(">I4s", buf[i : i + 8])
        assert 8 <= size <= end - i, f"bad box size at {i}"
        out.append((kind.decode("latin-1"), i + 8, i + size))
        i += size
    assert i == end, "boxes do not fill their container"
    return out


def one(buf: bytes, start: int, end: int, kind: str) -> tuple[int, int]:
    found = [(s, e) for k, s, e in boxes(buf, start, end) if k == kind]
    assert len(found) == 1, (kind, found)
    return found[0]


def read_heif(buf: bytes) -> dict:
    """Items, their image data (via iloc), properties per item and entity groups, parsed from scratch."""
    meta = one(buf, 0, len(buf), "meta")
    m0 = meta[0] + 4  # FullBox
    pitm = one(buf, m0, meta[1], "pitm")
    primary = struct.unpack(">H", buf[pitm[0] + 4 : pitm[0] + 6])[0]
    iprp = one(buf, m0, meta[1], "iprp")
    ipco = boxes(buf, *one(buf, *iprp, "ipco"))
    ipma_s, _ = one(buf, *iprp, "ipma")
    version, flags = buf[ipma_s], int.from_bytes(buf[ipma_s + 1 : ipma_s + 4], "big")
    pos, props = ipma_s + 8, {}
    for _ in range(struct.unpack(">I", buf[ipma_s + 4 : ipma_s + 8])[0]):
        item = int.from_bytes(buf[pos : pos + (2 if version == 0 else 4)], "big")
        pos += 2 if version == 0 else 4
        n, pos = buf[pos], pos + 1
        width = 2 if flags & 1 else 1
        idx = [int.from_bytes(buf[pos + k * width : pos + (k + 1) * width], "big") & (0x7FFF if flags & 1 else 0x7F)
               for k in range(n)]  # fmt: skip
        pos += n * width
        props[item] = [(ipco[i - 1][0], buf[ipco[i - 1][1] : ipco[i - 1][2]]) for i in idx]
    iloc_s, _ = one(buf, m0, meta[1], "iloc")
    assert buf[iloc_s] == 0 and buf[iloc_s + 4] in (0x44, 0x88)  # version 0, as libheif writes it
    size, base_size = buf[iloc_s + 4] >> 4, buf[iloc_s + 5] >> 4
    pos, data = iloc_s + 8, {}
    for _ in range(struct.unpack(">H", buf[iloc_s + 6 : iloc_s + 8])[0]):
        item, _ref = struct.unpack(">HH", buf[pos : pos + 4])
        base = int.from_bytes(buf[pos + 4 : pos + 4 + base_size], "big")
        pos += 4 + base_size
        n = struct.unpack(">H", buf[pos : pos + 2])[0]
        pos += 2
        chunks = []
        for _ in range(n):
            off = base + int.from_bytes(buf[pos : pos + size], "big")
            chunks.append(buf[off : off + int.from_bytes(buf[pos + size : pos + 2 * size], "big")])
            pos += 2 * size
        data[item] = b"".join(chunks)
    grpl = [(s, e) for k, s, e in boxes(buf, m0, meta[1]) if k == "grpl"]
    groups = [(k, buf[s:e]) for gs, ge in grpl for k, s, e in boxes(buf, gs, ge)]
    return {"primary": primary, "props": props, "data": data, "groups": groups}


def cmin_values(payload: bytes) -> tuple[int, int, tuple[float, ...]]:
    version, flags = payload[0], int.from_bytes(payload[1:4], "big")
    shift = (flags >> 8) & 0x1F
    return version, flags, tuple(v / 2**shift for v in struct.unpack(">iii", payload[4:16]))


def encode_pair(left: np.ndarray, right: np.ndarray) -> bytes:
    heif = pillow_heif.HeifFile()
    for eye in (left, right):
        heif.add_frombytes("RGB", (eye.shape[1], eye.shape[0]), eye.tobytes())
    out = io.BytesIO()
    heif.save(out, quality=90, primary_index=0, format="HEIF")
    return out.getvalue()


def decode(buf: bytes) -> list[np.ndarray]:
    return [np.asarray(im.to_pillow().convert("RGB")) for im in pillow_heif.open_heif(io.BytesIO(buf))]


def eyes(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(h * w)
    left = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    return left, np.roll(left, 3, axis=1)


# ---------------------------------------------------------------- tests
def test_the_pair_is_grouped_and_described_and_the_images_are_unchanged():
    left, right = eyes(64, 128)
    before = encode_pair(left, right)
    after = add_stereo_metadata(before, StereoCameras(128, 64, 100.0, 0.065))
    # libheif (through pillow-heif) sees the stereo group, left view first, and the intrinsics
    heif = pillow_heif.open_heif(io.BytesIO(after))
    for im in heif:
        (group,) = im.info["entity_groups"]
        assert group["type"] == "ster" and group["images"] == [0, 1]
        k = im.info["heif"]["camera_intrinsic_matrix"]
        assert (k["focal_length_x"], k["focal_length_y"], k["skew"]) == (100.0, 100.0, 0.0)
        assert (k["principal_point_x"], k["principal_point_y"]) == (64.0, 32.0)
    # both images decode exactly as before the rewrite, and their coded bytes did not change
    assert all(np.array_equal(a, b) for a, b in zip(decode(before), decode(after), strict=True))
    a, b = read_heif(before), read_heif(after)
    assert a["data"] == b["data"] and len(b["data"]) == 2
    # an independent parse: ster (version 0, flags 0, group id, 2 entities: left = primary, right)
    (kind, ster) = b["groups"][0]
    assert kind == "ster" and ster[:4] == b"\0\0\0\0"
    group_id, n, first, second = struct.unpack(">IIII", ster[4:])
    left_id = b["primary"]
    right_id = next(i for i in b["data"] if i != left_id)
    assert (n, first, second) == (2, left_id, right_id) and group_id not in b["data"]
    # cmin on both items: f / width, principal point at the centre, isotropic (no skew field)
    for item, pos_um in ((left_id, -32500), (right_id, 32500)):
        kinds = dict(b["props"][item])
        version, flags, values = cmin_values(kinds["cmin"])
        assert version == 0 and flags & 1 == 0 and len(kinds["cmin"]) == 16
        assert values == pytest.approx((100.0 / 128, 0.5, 0.5), abs=1e-8)
        cmex = kinds["cmex"]
        assert cmex[:4] == b"\0\0\0\x01" and len(cmex) == 8  # version 0, only pos_x present
        assert struct.unpack(">i", cmex[4:8])[0] == pos_um  # the eyes 65 mm apart, centred on the photo
        assert {"hvcC", "ispe"} <= set(kinds)  # the old associations are kept


def test_cropped_pictures_put_the_principal_point_at_the_shown_centre():
    """101 x 53 is coded larger and cropped back (clap): cmin is relative to the coded size."""
    left, right = eyes(53, 101)
    after = add_stereo_metadata(encode_pair(left, right), StereoCameras(101, 53, 500.0, 0.063, centered=False))
    parsed = read_heif(after)
    kinds = dict(parsed["props"][parsed["primary"]])
    cw, ch = struct.unpack(">II", kinds["ispe"][4:12])
    assert cw > 101 and ch > 53 and "clap" in kinds
    wn, wd, hn, hd, xn, xd, yn, yd = struct.unpack(">IIIIiIiI", kinds["clap"])
    crop_left = xn / xd + (cw - 1) / 2 - (wn / wd - 1) / 2
    crop_top = yn / yd + (ch - 1) / 2 - (hn / hd - 1) / 2
    _, _, (f, px, py) = cmin_values(kinds["cmin"])
    assert f * cw == pytest.approx(500.0, abs=1e-5)
    assert px * cw - crop_left == pytest.approx(101 / 2, abs=1e-5)
    assert py * ch - crop_top == pytest.approx(53 / 2, abs=1e-5)
    positions = [struct.unpack(">i", dict(parsed["props"][i])["cmex"][4:8])[0] for i in sorted(parsed["data"])]
    assert positions == [0, 63000]  # the photo is the left eye
    assert all(np.array_equal(a, b) for a, b in zip(decode(encode_pair(left, right)), decode(after), strict=True))


def test_saved_file_and_bad_input(tmp_path):
    left, right = eyes(64, 96)
    path = save_spatial_heic(tmp_path / "s.heic", left, right, focal_px=80.0, interaxial_m=0.05)
    k = pillow_heif.open_heif(str(path))[1].info["heif"]["camera_intrinsic_matrix"]
    assert k["focal_length_x"] == pytest.approx(80.0, abs=1e-6)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.heic"]  # written through a temporary file
    with pytest.raises(OptionError):
        save_spatial_heic(tmp_path / "x.heic", left, right[:, :50])
    with pytest.raises(OptionError):
        save_spatial_heic(tmp_path / "x.heic", left, right, interaxial_m=0.0)
    once = path.read_bytes()
    with pytest.raises(SharpDepthError, match="entity groups"):
        add_stereo_metadata(once, StereoCameras(96, 64, 80.0, 0.05))
    heif = pillow_heif.HeifFile()
    for _ in range(3):
        heif.add_frombytes("RGB", (96, 64), left.tobytes())
    three = io.BytesIO()
    heif.save(three, format="HEIF")
    with pytest.raises(SharpDepthError, match="two image items"):
        add_stereo_metadata(three.getvalue(), StereoCameras(96, 64, 80.0, 0.05))


def _iloc(version: int, offset_size: int, base_size: int, items: list[tuple[int, int, list[tuple[int, int]]]]) -> bytes:
    """An iloc payload: items of (construction method, base offset, [(extent offset, length)])."""
    index_size = 4 if version else 0
    out = bytearray(struct.pack(">I", version << 24))
    out += bytes([(offset_size << 4) | 4, (base_size << 4) | index_size])
    out += struct.pack(">H" if version < 2 else ">I", len(items))
    for n, (method, base, extents) in enumerate(items, start=1):
        out += struct.pack(">H" if version < 2 else ">I", n)
        if version:
            out += struct.pack(">H", method)
        out += struct.pack(">H", 0) + (base.to_bytes(base_size, "big") if base_size else b"")
        out += struct.pack(">H", len(extents))
        for off, length in extents:
            out += (b"\0" * index_size) + off.to_bytes(offset_size, "big") + length.to_bytes(4, "big")
    return bytes(out)


@pytest.mark.parametrize("version", [0, 1, 2])
@pytest.mark.parametrize("offset_size", [4, 8])
def test_iloc_offsets_after_meta_move_by_the_growth(version, offset_size):
    after, delta = 1000, 77
    items = [(0, 0, [(1200, 10), (1500, 5)]), (0, 0, [(500, 4)])]  # past meta / before it
    if version:
        items.append((1, 0, [(1300, 8)]))  # idat-relative: never moves
    moved = _shifted_iloc(_iloc(version, offset_size, 0, items), after, delta)
    want = [(0, 0, [(1277, 10), (1577, 5)]), (0, 0, [(500, 4)])] + ([(1, 0, [(1300, 8)])] if version else [])
    assert moved == _iloc(version, offset_size, 0, want)
    based = _shifted_iloc(_iloc(version, offset_size, offset_size, [(0, 1100, [(0, 9), (20, 9)])]), after, delta)
    assert based == _iloc(version, offset_size, offset_size, [(0, 1177, [(0, 9), (20, 9)])])
    if offset_size == 4:
        with pytest.raises(SharpDepthError, match="does not fit"):
            _shifted_iloc(_iloc(version, 4, 0, [(0, 0, [(2**32 - 10, 1)])]), after, delta)
