"""Decode image bytes into RGB uint8, turning every failure into a status instead of an exception."""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError

from ..storage.schema import Status


@dataclass(frozen=True)
class Decoded:
    image: np.ndarray | None  # HxWx3 uint8 RGB, upright
    status: Status
    error: str | None = None
    width: int | None = None
    height: int | None = None
    # The file's luma quantisation table (8x8, natural order) when it is a JPEG whose 8x8 grid the
    # pixels keep (no EXIF turn); None otherwise. The double-JPEG features read it.
    quantisation: np.ndarray | None = None


def decode_image(data: bytes, max_pixels: int) -> Decoded:
    """Decode bytes with Pillow: EXIF orientation applied, any mode to RGB, size checked before pixels.

    Args:
        max_pixels: images with more pixels are refused as `too_large` from the header alone,
            before any pixel is decoded (decompression bombs).
    """
    if not data:
        return Decoded(None, Status.EMPTY_FILE, "file is empty (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        return Decoded(None, Status.UNSUPPORTED, "not an image format Pillow can read")
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        return Decoded(None, Status.TOO_LARGE, f"refused before decoding: {exc}")
    except Exception as exc:  # Pillow raises many types for malformed headers
        return Decoded(None, Status.DECODE_ERROR, f"cannot read header: {exc}")
    width, height = img.size
    if width * height > max_pixels:
        return Decoded(None, Status.TOO_LARGE, f"{width}x{height} exceeds the {max_pixels}-pixel cap",
                       width, height)
    try:
        img.seek(0)  # first frame of animations
        img.load()
        # An EXIF turn moves the 8x8 grid: the table is only kept for upright files.
        table = luma_quantisation(img) if img.getexif().get(ExifTags.Base.Orientation, 1) == 1 else None
        rgb = to_rgb(ImageOps.exif_transpose(img))
    except OSError as exc:
        status = Status.TRUNCATED if "truncated" in str(exc).lower() else Status.DECODE_ERROR
        return Decoded(None, status, f"cannot decode pixels: {exc}", width, height)
    except Exception as exc:
        return Decoded(None, Status.DECODE_ERROR, f"cannot decode pixels: {exc}", width, height)
    return Decoded(rgb, Status.OK, None, rgb.shape[1], rgb.shape[0], table)


def luma_quantisation(img: Image.Image) -> np.ndarray | None:
    """int32 [8, 8]: a JPEG's first (luma) quantisation table in natural order; None for other files."""
    tables = getattr(img, "quantization", None)
    if img.format != "JPEG" or not tables or img.mode not in ("L", "RGB", "YCbCr"):
        return None
    table = np.asarray(tables[min(tables)], dtype=np.int32)
    return table.reshape(8, 8) if table.size == 64 else None


def to_rgb(img: Image.Image) -> np.ndarray:
    """Any Pillow mode to HxWx3 uint8: 16-bit scaled down, transparency composited on white."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        peak = 65535.0 if img.mode.startswith("I;16") or arr.max() > 255 else 255.0
        gray = np.clip(arr / peak * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return np.repeat(gray[:, :, None], 3, axis=2)
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, rgba)
    return np.ascontiguousarray(np.asarray(img.convert("RGB"), dtype=np.uint8))
