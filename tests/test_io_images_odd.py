"""Issue 13: odd/absurd EXIF never cost the picture; arrays follow one rule; animations and HEIF say what was done."""

from __future__ import annotations

import math

import numpy as np
import pytest
from PIL import Image

from sharpdepth.errors import InputImageError
from sharpdepth.io.images import as_loaded_image, load_image

EXIF_IFD, F_MM, F35, UNIT, XRES = 0x8769, 0x920A, 0xA405, 0xA210, 0xA20E


def _jpeg(tmp_path, tags: dict[int, object], name="e.jpg", size=(40, 30)) -> str:
    img = Image.fromarray(np.full((size[1], size[0], 3), 128, np.uint8))
    exif = Image.Exif()
    for tag, value in tags.items():
        exif.get_ifd(EXIF_IFD)[tag] = value
    path = tmp_path / name
    img.save(path, exif=exif.tobytes())
    return str(path)


@pytest.mark.parametrize(
    "tags,word",
    [
        ({F_MM: "fifty"}, "FocalLength"),
        ({F35: "28mm"}, "FocalLengthIn35mmFilm"),
        ({UNIT: "cm", XRES: 5000.0, F_MM: 4.2}, "FocalPlaneResolutionUnit"),
    ],
)
def test_text_focal_tags_are_ignored_with_a_note(tmp_path, tags, word):
    loaded = load_image(_jpeg(tmp_path, tags))
    assert loaded.rgb.shape == (30, 40, 3)
    assert loaded.exif_focal is None
    assert any(word in note and "ignored" in note for note in loaded.notes), loaded.notes
    with Image.open(_jpeg(tmp_path, tags, "pil.jpg")) as img:  # the API path (PIL image) too
        assert as_loaded_image(img).exif_focal is None


def test_absurd_35mm_focal_falls_back_to_the_model(tmp_path):
    loaded = load_image(_jpeg(tmp_path, {F35: 65535}))
    assert loaded.exif_focal is None
    assert any("implausible" in note and "65535" in note for note in loaded.notes)
    plausible = load_image(_jpeg(tmp_path, {F35: 26}, "ok.jpg"))
    assert plausible.exif_focal.focal_px == pytest.approx(26 * 50 / math.hypot(36, 24))
    assert plausible.notes == []


def test_absurd_physical_focal_falls_back(tmp_path):
    loaded = load_image(_jpeg(tmp_path, {F_MM: 90000.0, XRES: 4000.0, UNIT: 2}))
    assert loaded.exif_focal is None and any("implausible" in n for n in loaded.notes)


def test_float_arrays_outside_unit_range_are_refused():
    with pytest.raises(InputImageError, match=r"\[0, 1\].*uint8"):
        as_loaded_image(np.full((4, 4, 3), 200.0, np.float32))
    assert as_loaded_image(np.full((4, 4, 3), 1.0, np.float32)).rgb[0, 0, 0] == 255


def test_one_size_rule_for_arrays_and_files(tmp_path):
    for shape in ((0, 0, 3), (1, 1, 3), (1, 5)):
        with pytest.raises(InputImageError, match="too small"):
            as_loaded_image(np.zeros(shape, np.uint8))
    Image.fromarray(np.zeros((1, 1, 3), np.uint8)).save(tmp_path / "dot.png")
    with pytest.raises(InputImageError, match="too small"):
        load_image(tmp_path / "dot.png")
    assert as_loaded_image(np.zeros((2, 2, 3), np.uint8)).rgb.shape == (2, 2, 3)


def test_animated_gif_notes_the_first_frame(tmp_path):
    frames = [Image.fromarray(np.full((8, 8, 3), v, np.uint8)) for v in (10, 200, 90)]
    frames[0].save(tmp_path / "a.gif", save_all=True, append_images=frames[1:], duration=50)
    loaded = load_image(tmp_path / "a.gif")
    assert any("3 frames" in n and "first frame" in n for n in loaded.notes)
    assert abs(int(loaded.rgb[0, 0, 0]) - 10) <= 2  # the first frame's pixels


def test_orientation_applied_is_described(tmp_path):
    img = Image.fromarray(np.zeros((6, 10, 3), np.uint8))
    exif = img.getexif()
    exif[0x0112] = 6
    img.save(tmp_path / "o6.png", exif=exif)
    loaded = load_image(tmp_path / "o6.png")
    assert loaded.rgb.shape == (10, 6, 3) and "rotated 90° clockwise" in loaded.orientation_applied


def test_heif_orientation_applied_by_the_decoder_is_reported(tmp_path):
    pytest.importorskip("pillow_heif")
    img = Image.fromarray(np.zeros((32, 48, 3), np.uint8))
    exif = img.getexif()
    exif[0x0112] = 6
    img.save(tmp_path / "o6.heic", exif=exif.tobytes())
    loaded = load_image(tmp_path / "o6.heic")
    assert loaded.rgb.shape == (48, 32, 3)  # upright
    assert loaded.orientation == 6 and "by the decoder" in loaded.orientation_applied
