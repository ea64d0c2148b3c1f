"""Pictures, safely: which formats are ever decoded, and the thumbnail worker.

Only JPEG, PNG, GIF and WebP are ever handed to Pillow, chosen by Pillow from the file's own
bytes (`formats=`), never from a declared type: PostScript, PDF, SVG and the rest never reach
a decoder, so Ghostscript (or any other program) never runs.

Thumbnails are made here in a worker process of their own (`main`, started by
`mod.service.thumbnails`): it reads one job a line (JSON) on stdin and answers one line on
stdout. One decode makes every configured size of a picture: JPEG decoded at a reduced scale
(`draft`), the others reduced right after decoding, animations by their first frame. This
module imports nothing of the server but Pillow, so a worker stays small, and its memory goes
back to the system when it is replaced.
"""

from __future__ import annotations

import io
import json
import os
import secrets
import signal
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from PIL import Image, ImageOps, UnidentifiedImageError

SAFE_FORMATS = ("JPEG", "PNG", "GIF", "WEBP")
METHODS = ("scale", "crop")
# A worker that grew past this after a job leaves, and a fresh one takes its place.
RETIRE_RSS = 160 * 1024 * 1024
BAND_BYTES = 8 * 1024 * 1024  # a picture is reduced this much of it at a time


@dataclass(frozen=True, slots=True)
class Size:
    width: int
    height: int
    method: str  # "scale" (fit inside) or "crop" (fill exactly)

    def key(self) -> str:
        return f"{self.width}x{self.height}-{self.method}"


def parse_sizes(text: str) -> tuple[Size, ...]:
    """`"32x32 crop, 320x240 scale"` -> sizes; ValueError naming what is wrong."""
    sizes: list[Size] = []
    for item in text.split(","):
        if not item.strip():
            continue
        box, _, method = item.strip().partition(" ")
        width, _, height = box.lower().partition("x")
        method = method.strip() or "scale"
        if not (width.isdigit() and height.isdigit()) or method not in METHODS:
            raise ValueError(f"{item.strip()!r} is not WIDTHxHEIGHT scale|crop")
        size = Size(int(width), int(height), method)
        if not (0 < size.width <= 4096 and 0 < size.height <= 4096):
            raise ValueError(f"{item.strip()!r}: sides are 1 to 4096 pixels")
        if size not in sizes:
            sizes.append(size)
    if not sizes:
        raise ValueError("at least one size is needed")
    return tuple(sizes)


class Refused(Exception):
    """A picture this server does not thumbnail; the message is for the client."""


def open_safe(source: str | Path | IO[bytes]) -> Image.Image:
    """Open a picture of a safe format (decided by its bytes); anything else raises
    UnidentifiedImageError before any decoder sees it."""
    return Image.open(source, formats=SAFE_FORMATS)


def scaled(width: int, height: int, size: Size) -> tuple[int, int]:
    """The size of the thumbnail of a width×height picture at `size`: never larger than the
    picture; `scale` keeps the aspect ratio inside the box, `crop` fills the box (or the
    largest box of its shape inside the picture)."""
    if size.method == "crop":
        ratio = min(1.0, width / size.width, height / size.height)
        return max(1, round(size.width * ratio)), max(1, round(size.height * ratio))
    ratio = min(1.0, size.width / width, size.height / height)
    return max(1, round(width * ratio)), max(1, round(height * ratio))


def _needed(width: int, height: int, sizes: list[Size]) -> tuple[int, int]:
    """The smallest picture every size can still be made from without upscaling."""
    need_w = need_h = 1
    for size in sizes:
        out_w, out_h = scaled(width, height, size)
        if size.method == "crop":  # covering the box: the scale is set by the tighter side
            ratio = max(out_w / width, out_h / height)
            out_w, out_h = round(width * ratio), round(height * ratio)
        need_w, need_h = max(need_w, out_w), max(need_h, out_h)
    return need_w, need_h


def _decoded(source: Path, max_pixels: int, sizes: list[Size]) -> Image.Image:
    """The picture's first frame, decoded at the smallest scale the sizes allow, upright."""
    try:
        image = open_safe(source)
    except FileNotFoundError:
        raise
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError
            ) as error:
        raise Refused("This file is not a picture this server thumbnails (JPEG, PNG, GIF "
                      "or WebP)") from error
    with image:
        width, height = image.size
        if width * height > max_pixels:
            raise Refused(f"The image is too large to thumbnail ({width}×{height} pixels)")
        need_w, need_h = _needed(width, height, sizes)
        try:
            orientation = int(image.getexif().get(0x0112, 1))
        except Exception:  # a broken EXIF block: no rotation
            orientation = 1
        if orientation in (5, 6, 7, 8):
            need_w, need_h = need_h, need_w
        if image.format == "JPEG":
            image.draft("RGB" if image.mode != "L" else "L", (need_w, need_h))
        try:
            image.seek(0)  # animations: the first frame only
            image.load()
        except (OSError, ValueError, EOFError, Image.DecompressionBombError) as error:
            raise Refused("This picture cannot be decoded") from error
        picture: Image.Image = image
        if picture.mode not in ("RGB", "RGBA", "L", "LA"):
            alpha = "transparency" in picture.info or picture.mode in ("PA", "RGBa", "La")
            picture = picture.convert("RGBA" if alpha else "RGB")
        factor = max(1, min(picture.width // (2 * need_w), picture.height // (2 * need_h)))
        if factor > 1:
            picture = _reduced(picture, factor)
        method = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180,
                  4: Image.Transpose.FLIP_TOP_BOTTOM, 5: Image.Transpose.TRANSPOSE,
                  6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
                  8: Image.Transpose.ROTATE_90}.get(orientation)
        if method is not None:
            picture = picture.transpose(method)
        if picture is image:
            picture = image.copy()  # small already: outlive the file's closing
        return picture


def _reduced(image: Image.Image, factor: int) -> Image.Image:
    """`image.reduce(factor)` a band of rows at a time: Pillow reduces (and resizes) a picture
    with alpha through a premultiplied copy of all of it, which would double the memory."""
    out = Image.new(image.mode, (-(-image.width // factor), -(-image.height // factor)))
    rows = factor * max(1, BAND_BYTES // (image.width * len(image.getbands()) * factor))
    for top in range(0, image.height, rows):
        band = image.crop((0, top, image.width, min(image.height, top + rows)))
        out.paste(band.reduce(factor), (0, top // factor))
    return out


def _encoded(picture: Image.Image) -> tuple[bytes, str]:
    out = io.BytesIO()
    if picture.mode in ("RGBA", "LA"):
        picture.save(out, "PNG", optimize=True)
        return out.getvalue(), "png"
    picture.convert("RGB").save(out, "JPEG", quality=85)
    return out.getvalue(), "jpg"


def make(source: Path, target_dir: Path, sha256: str, sizes: list[Size], max_pixels: int
         ) -> dict[str, str]:
    """Every size of one picture from one decode, each written whole (temporary file, then
    renamed) as `<sha256>-<w>x<h>-<method>.<png|jpg>` in `target_dir`: size key -> suffix."""
    picture = _decoded(source, max_pixels, sizes)
    target_dir.mkdir(parents=True, exist_ok=True)
    made: dict[str, str] = {}
    for size in sizes:
        box = scaled(picture.width, picture.height, size)
        if size.method == "crop":
            thumb = ImageOps.fit(picture, box, Image.Resampling.LANCZOS)
        else:
            thumb = picture.resize(box, Image.Resampling.LANCZOS, reducing_gap=3.0)
        data, suffix = _encoded(thumb)
        target = target_dir / f"{sha256}-{size.key()}.{suffix}"
        temp = target.with_name(f"{target.name}.{os.getpid()}-{secrets.token_hex(4)}")
        temp.write_bytes(data)
        os.replace(temp, target)
        made[size.key()] = suffix
    return made


def _rss() -> int:
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def _answer(job: dict[str, Any]) -> dict[str, Any]:
    try:
        sizes = [Size(int(w), int(h), str(m)) for w, h, m in job["sizes"]]
        made = make(Path(job["source"]), Path(job["target_dir"]), str(job["sha256"]), sizes,
                    int(job["max_pixels"]))
    except FileNotFoundError:
        return {"status": 404, "error": "The file is no longer stored"}
    except Refused as refused:
        return {"status": 400, "error": str(refused)}
    except MemoryError:
        return {"status": 400, "error": "The image is too large to thumbnail"}
    return {"status": 200, "made": made}


def _die_with_parent() -> None:
    """Linux: be killed when the server process ends, however it ends."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def main() -> None:
    """The worker: one JSON job a line on stdin, one JSON answer a line on stdout; ends at
    the end of its input (the server closed the pipe or died)."""
    _die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the server stops its workers itself
    out = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)  # nothing but answers on the answer pipe
    Image.MAX_IMAGE_PIXELS = None  # our own pixel limit is checked before decoding
    out.write('{"ready": true}\n')  # imports done: time limits count from here
    out.flush()
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            answer = _answer(json.loads(line))
        except Exception as error:  # a job we cannot read: say so, keep serving
            answer = {"status": 500, "error": f"thumbnail worker: {type(error).__name__}"}
        retire = _rss() > RETIRE_RSS
        answer["retire"] = retire
        out.write(json.dumps(answer) + "\n")
        out.flush()
        if retire:
            return


if __name__ == "__main__":
    main()
