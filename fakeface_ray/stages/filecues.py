"""How an image file was saved, read from its headers: format, JPEG quality (estimated from the
quantisation tables), chroma subsampling, metadata markers, size and colour mode.

None of this looks at the face. Where it differs between classes, a classifier can tell them apart
by how the files were made, and its score measures that instead of the detector (see `learning.audit`).
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image, UnidentifiedImageError

# The example tables of the JPEG standard (Annex K), in row-major order, that libjpeg scales by quality.
LUMINANCE = np.array([
    16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55,
    14, 13, 16, 24, 40, 57, 69, 56, 14, 17, 22, 29, 51, 87, 80, 62,
    18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
    49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99])
CHROMINANCE = np.array([
    17, 18, 24, 47, 99, 99, 99, 99, 18, 21, 26, 66, 99, 99, 99, 99,
    24, 26, 56, 99, 99, 99, 99, 99, 47, 66, 99, 99, 99, 99, 99, 99] + [99] * 32)
UNREADABLE = "unreadable"
# (luma / chroma horizontal, luma / chroma vertical) sampling factor ratios
SUBSAMPLING = {(1, 1): "4:4:4", (2, 1): "4:2:2", (2, 2): "4:2:0", (4, 1): "4:1:1", (1, 2): "4:4:0"}


@dataclass(frozen=True)
class FileCues:
    format: str  # Pillow's name (JPEG, PNG, ...) or `unreadable`
    file_size: int  # bytes
    width: int | None = None
    height: int | None = None
    mode: str | None = None  # RGB, L, CMYK, P, RGBA, ...
    jpeg_quality: int | None = None  # the libjpeg quality whose tables are closest; JPEG only
    standard_tables: bool | None = None  # whether the tables are exactly libjpeg's at that quality
    subsampling: str | None = None  # 4:4:4, 4:2:2, 4:2:0, ..., grey, other; JPEG only
    exif: bool = False
    icc: bool = False
    xmp: bool = False
    photoshop: bool = False  # an APP13 "Photoshop 3.0" block (IPTC, resources)


def file_cues(data: bytes) -> FileCues:
    """The cues of one file's bytes; headers only, no pixel is decoded."""
    try:
        image = Image.open(io.BytesIO(data))
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        return FileCues(UNREADABLE, len(data))  # a decompression bomb is refused from its header alone
    info = image.info
    apps = [(name, payload) for name, payload in getattr(image, "applist", [])]
    cues = dict(format=image.format or UNREADABLE, file_size=len(data), width=image.width, height=image.height,
                mode=image.mode,
                exif=bool(info.get("exif")) or _app(apps, "APP1", b"Exif\x00"),
                icc=bool(info.get("icc_profile")) or _app(apps, "APP2", b"ICC_PROFILE\x00"),
                xmp=(bool(info.get("xmp") or info.get("XML:com.adobe.xmp"))
                     or _app(apps, "APP1", b"http://ns.adobe.com/xap/")),
                photoshop=_app(apps, "APP13", b"Photoshop 3.0\x00"))
    if image.format == "JPEG":
        quality, standard = estimate_jpeg_quality(getattr(image, "quantization", {}))
        cues.update(jpeg_quality=quality, standard_tables=standard, subsampling=_subsampling(image.layer))
    return FileCues(**cues)


def estimate_jpeg_quality(tables: dict[int, list[int]]) -> tuple[int | None, bool | None]:
    """The libjpeg quality (1-100) whose scaled standard tables are closest to these, and whether they match exactly.

    Table 0 is compared with the luminance table, table 1 (when present) with the chrominance one.
    Encoders with their own tables (cameras, Photoshop) get the nearest libjpeg quality, not an exact one.
    """
    if not tables or 0 not in tables:
        return None, None
    found = [np.asarray(tables[0], dtype=np.int64)]
    references = [LUMINANCE]
    if 1 in tables:
        found.append(np.asarray(tables[1], dtype=np.int64))
        references.append(CHROMINANCE)
    best, best_error = None, None
    for quality in range(1, 101):
        error = sum(int(np.abs(_scaled(reference, quality) - table).sum())
                    for reference, table in zip(references, found))
        if best_error is None or error < best_error:
            best, best_error = quality, error
    return best, best_error == 0


def _scaled(reference: np.ndarray, quality: int) -> np.ndarray:
    """libjpeg's `jpeg_quality_scaling` and `jpeg_add_quant_table` (baseline: clamped to 1..255)."""
    scale = 5000 // quality if quality < 50 else 200 - 2 * quality
    return np.clip((reference * scale + 50) // 100, 1, 255)


def _subsampling(layers: list[tuple]) -> str:
    if len(layers) == 1:
        return "grey"
    if len(layers) < 3:
        return "other"
    (_, luma_h, luma_v, _), (_, chroma_h, chroma_v, _) = layers[0], layers[1]
    if luma_h % chroma_h or luma_v % chroma_v:
        return "other"
    return SUBSAMPLING.get((luma_h // chroma_h, luma_v // chroma_v), "other")


def _app(apps: list[tuple[str, bytes]], marker: str, prefix: bytes) -> bool:
    return any(name == marker and payload.startswith(prefix) for name, payload in apps)
