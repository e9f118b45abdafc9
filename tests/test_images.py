"""Image loading: EXIF orientation (all 8), pixel formats, HEIC, EXIF focal, bad files."""

from __future__ import annotations

import math

import numpy as np
import pytest
from PIL import Image

from sharpdepth.errors import InputImageError
from sharpdepth.io.images import as_loaded_image, focal_from_exif, load_image

# Orientation tag -> how the stored pixels map to the upright picture.
UPRIGHT = {
    1: lambda a: a,
    2: lambda a: a[:, ::-1],
    3: lambda a: a[::-1, ::-1],
    4: lambda a: a[::-1, :],
    5: lambda a: a.transpose(1, 0, 2),
    6: lambda a: np.rot90(a, -1),
    7: lambda a: a.transpose(1, 0, 2)[::-1, ::-1],
    8: lambda a: np.rot90(a, 1),
}


def _pattern(h=6, w=10) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (h, w, 3), dtype=np.uint8)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_all_exif_orientations(tmp_path, orientation):
    stored = _pattern()
    img = Image.fromarray(stored)
    exif = img.getexif()
    exif[0x0112] = orientation
    path = tmp_path / f"o{orientation}.png"  # lossless, carries an eXIf chunk
    img.save(path, exif=exif)
    loaded = load_image(path)
    assert loaded.orientation == orientation
    np.testing.assert_array_equal(loaded.rgb, UPRIGHT[orientation](stored))


def _luma(rgb: np.ndarray) -> np.ndarray:
    """ITU-R 601 luma with Pillow's fixed-point rounding (L = 0.299 R + 0.587 G + 0.114 B)."""
    r, g, b = (rgb[..., i].astype(np.int64) for i in range(3))
    return ((r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16).astype(np.uint8)


def _grey3(gray: np.ndarray) -> np.ndarray:
    return np.repeat(gray[..., None], 3, axis=2)


@pytest.mark.parametrize(
    "mode",
    ["L", "LA", "RGBA", "P", "CMYK", "I;16", "1"],
)
def test_pixel_formats_become_rgb8(tmp_path, mode):
    """Each mode's RGB is what the stored pixels mean, computed here from the stored data."""
    rgb = _pattern(8, 8)
    base = Image.fromarray(rgb)
    if mode == "I;16":
        img = Image.fromarray(rgb[..., 0].astype(np.uint16) * 257)
        assert img.mode == "I;16"
    elif mode == "P":
        img = base.convert("P")
        img.info["transparency"] = 0
    elif mode == "RGBA":
        img = Image.fromarray(np.dstack([rgb, np.full((8, 8), 7, np.uint8)]), "RGBA")
    else:
        img = base.convert(mode)
    path = tmp_path / ("x.jpg" if mode == "CMYK" else "x.png")
    img.save(path, **({"quality": 95} if mode == "CMYK" else {}))
    loaded = load_image(path)
    assert loaded.rgb.dtype == np.uint8 and loaded.rgb.shape == (8, 8, 3)
    got = loaded.rgb
    if mode in ("L", "LA"):
        np.testing.assert_array_equal(got, _grey3(_luma(rgb)))
    elif mode == "RGBA":  # alpha is dropped, colours kept
        np.testing.assert_array_equal(got, rgb)
    elif mode == "P":  # palette lookup of the stored indices
        indices = np.asarray(Image.open(path))
        palette = np.asarray(Image.open(path).getpalette()[: 3 * 256], np.uint8).reshape(-1, 3)
        np.testing.assert_array_equal(got, palette[indices])
    elif mode == "I;16":  # 16-bit scaled to 8 bits (v * 255 / 65535), not clipped
        np.testing.assert_array_equal(got, _grey3(rgb[..., 0]))
    elif mode == "1":  # bilevel: 0 or 255 on every channel, as stored
        np.testing.assert_array_equal(got, _grey3(np.asarray(Image.open(path), np.uint8) * 255))
    elif mode == "CMYK":  # lossy JPEG of the picture: close to the original colours
        assert float(np.abs(got.astype(np.int16) - rgb).mean()) < 4  # 1.5 measured; inverted channels would be ~85
    if mode == "I;16":  # 16-bit scaled down, not clipped
        np.testing.assert_array_equal(loaded.rgb[..., 0], rgb[..., 0])


def test_heic_roundtrip_with_exif_focal(tmp_path):
    pillow_heif = pytest.importorskip("pillow_heif")
    assert pillow_heif
    img = Image.fromarray(_pattern(64, 96))
    exif = img.getexif()
    exif.get_ifd(0x8769)[0xA405] = 26
    path = tmp_path / "x.heic"
    img.save(path, exif=exif.tobytes(), quality=90)
    loaded = load_image(path)
    assert loaded.rgb.shape == (64, 96, 3)
    assert loaded.exif_focal is not None
    assert loaded.exif_focal.focal_px == pytest.approx(26 * math.hypot(96, 64) / math.hypot(36, 24))


def _jpeg_with_exif(tmp_path, tags: dict[int, object], size=(400, 300)) -> str:
    img = Image.fromarray(np.full((size[1], size[0], 3), 128, np.uint8))
    exif = img.getexif()
    sub = exif.get_ifd(0x8769)
    for tag, value in tags.items():
        sub[tag] = value
    path = tmp_path / "e.jpg"
    img.save(path, exif=exif)
    return str(path)


def test_exif_35mm_equivalent_focal(tmp_path):
    loaded = load_image(_jpeg_with_exif(tmp_path, {0xA405: 28, 0x920A: 4.2}))
    assert loaded.exif_focal.rule == "35mm-equivalent"
    assert loaded.exif_focal.focal_px == pytest.approx(28 * 500 / math.hypot(36, 24))


def test_exif_physical_focal_with_focal_plane_resolution(tmp_path):
    # 50 mm lens, 4000 px per inch sensor density; image not resized -> f = 50 * 4000 / 25.4 px
    tags = {0x920A: 50.0, 0xA20E: 4000.0, 0xA210: 2, 0xA002: 400, 0xA003: 300}
    loaded = load_image(_jpeg_with_exif(tmp_path, tags))
    assert loaded.exif_focal.rule == "focal-plane-resolution"
    assert loaded.exif_focal.focal_px == pytest.approx(50 * 4000 / 25.4)


def test_physical_focal_rescaled_when_image_was_resized():
    tags = {"FocalLength": 10.0, "FocalPlaneXResolution": 100.0, "FocalPlaneResolutionUnit": 4,
            "PixelXDimension": 4000, "PixelYDimension": 3000}  # fmt: skip
    info = focal_from_exif(tags, width=1000, height=750)
    assert info.focal_px == pytest.approx(10 * 100 / 1 * 0.25)


def test_no_focal_data(tmp_path):
    assert load_image(_jpeg_with_exif(tmp_path, {})).exif_focal is None
    assert focal_from_exif({"FocalLengthIn35mmFilm": 0.0}, 10, 10) is None


def test_corrupt_and_missing_files(tmp_path):
    text = tmp_path / "notes.jpg"
    text.write_text("not an image")
    with pytest.raises(InputImageError, match="not a readable image"):
        load_image(text)
    good = tmp_path / "g.jpg"
    Image.fromarray(_pattern(64, 64)).save(good)
    truncated = tmp_path / "t.jpg"
    truncated.write_bytes(good.read_bytes()[:200])
    with pytest.raises(InputImageError, match="corrupt or truncated"):
        load_image(truncated)
    with pytest.raises(InputImageError, match="no such file"):
        load_image(tmp_path / "missing.png")
    with pytest.raises(InputImageError, match="directory"):
        load_image(tmp_path)


def test_decompression_bomb_guard(tmp_path):
    path = tmp_path / "big.png"
    Image.fromarray(_pattern(100, 100)).save(path)
    with pytest.raises(InputImageError, match="too large"):
        load_image(path, max_pixels=4000)  # over 2x: Pillow's hard error
    with pytest.raises(InputImageError, match="too large"):
        load_image(path, max_pixels=9000)  # between 1x and 2x: Pillow only warns; we refuse
    assert load_image(path, max_pixels=20000).rgb.shape == (100, 100, 3)
    assert Image.MAX_IMAGE_PIXELS is not None  # the global guard is left on


def test_array_inputs():
    gray = np.zeros((4, 5), np.uint8)
    assert as_loaded_image(gray).rgb.shape == (4, 5, 3)
    floats = np.full((4, 5, 3), 0.5, np.float32)
    assert as_loaded_image(floats).rgb[0, 0, 0] == 128
    with pytest.raises(InputImageError):
        as_loaded_image(np.zeros((4, 5, 7), np.uint8))
    with pytest.raises(InputImageError):
        as_loaded_image(42)
