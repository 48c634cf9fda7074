"""Small real face images for tests: the LFW faces scikit-image ships, upscaled and encoded."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image


def face_photo(index: int, size: int = 400) -> np.ndarray:
    """An RGB uint8 photo of LFW face `index` (scikit-image ships 100), upscaled to size x size."""
    from skimage import data

    face = (data.lfw_subset()[index] * 255).astype(np.uint8)
    return np.asarray(Image.fromarray(face).convert("RGB").resize((size, size), Image.BICUBIC))


def jpeg_bytes(pixels: np.ndarray, quality: int = 90) -> bytes:
    """The pixels as JPEG file bytes."""
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()
