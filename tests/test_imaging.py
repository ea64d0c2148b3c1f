"""mod.imaging in process: the safe formats, the sizes setting, the nearest size, and one
decode making every size (JPEG decoded at a reduced scale)."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image, UnidentifiedImageError

from mod.imaging import Refused, Size, _decoded, make, open_safe, parse_sizes, scaled
from mod.service.mediastore import sniff
from mod.service.thumbnails import nearest
from tests.test_thumbnails import EPS

SIZES = parse_sizes("32x32 crop, 96x96 crop, 320x240 scale, 640x480 scale, 800x600 scale")


def test_only_safe_formats_are_opened(tmp_path: Path) -> None:
    for data in (EPS, b"%PDF-1.7\n", b"<svg xmlns='http://www.w3.org/2000/svg'/>",
                 b"BM" + bytes(60)):
        with pytest.raises(UnidentifiedImageError):
            open_safe(io.BytesIO(data))
    assert sniff(EPS).content_type == "application/postscript"
    (tmp_path / "eps").write_bytes(EPS)
    with pytest.raises(Refused, match="not a picture"):
        make(tmp_path / "eps", tmp_path, "0" * 64, list(SIZES), 10**8)
    assert list(tmp_path.glob("0*")) == []


def test_sizes_setting_and_the_nearest_size() -> None:
    assert SIZES[0] == Size(32, 32, "crop") and len(SIZES) == 5
    for bad in ("", "32x crop", "32x32 stretch", "0x10 scale", "5000x10 scale"):
        with pytest.raises(ValueError):
            parse_sizes(bad)
    assert nearest(SIZES, 100, 100, "scale") == Size(320, 240, "scale")
    assert nearest(SIZES, 700, 500, "scale") == Size(800, 600, "scale")
    assert nearest(SIZES, 4000, 4000, "scale") == Size(800, 600, "scale")
    assert nearest(SIZES, 10, 10, "crop") == Size(32, 32, "crop")
    assert nearest(SIZES, 200, 200, "crop") == Size(96, 96, "crop")
    assert nearest(parse_sizes("64x64 crop"), 500, 500, "scale") == Size(64, 64, "crop")
    assert scaled(400, 200, Size(320, 240, "scale")) == (320, 160)
    assert scaled(200, 100, Size(320, 240, "scale")) == (200, 100)  # never upscaled
    assert scaled(20, 50, Size(32, 32, "crop")) == (20, 20)


def test_one_decode_makes_every_size(tmp_path: Path) -> None:
    source = tmp_path / "photo.jpg"
    Image.new("RGB", (4000, 3000), (20, 140, 60)).save(source, "JPEG")
    decoded = _decoded(source, 10**8, list(SIZES))
    assert decoded.size[0] < 4000 and decoded.size[0] >= 800  # JPEG drafted, then reduced
    made = make(source, tmp_path / "thumbs", "a" * 64, list(SIZES), 10**8)
    assert made == {size.key(): "jpg" for size in SIZES}
    with Image.open(tmp_path / "thumbs" / f"{'a' * 64}-800x600-scale.jpg") as image:
        assert image.size == (800, 600)
    with pytest.raises(Refused, match="too large"):
        make(source, tmp_path / "thumbs", "b" * 64, list(SIZES), 1000)
