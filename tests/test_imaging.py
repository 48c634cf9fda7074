import io

import numpy as np
import pytest
from PIL import Image

from fakeface_ray.stages import imaging
from fakeface_ray.stages.imaging import decode_image
from fakeface_ray.storage.schema import Status

from .photos import face_photo, jpeg_bytes

CAP = 10_000_000


def _encode(img: Image.Image, fmt: str, **kwargs) -> bytes:
    buffer = io.BytesIO()
    img.save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


def test_jpeg_decodes_to_rgb_uint8():
    decoded = decode_image(jpeg_bytes(face_photo(0, 64)), CAP)
    assert decoded.status == Status.OK
    assert decoded.image.shape == (64, 64, 3) and decoded.image.dtype == np.uint8
    assert (decoded.width, decoded.height) == (64, 64)


@pytest.mark.parametrize("mode", ["L", "P", "CMYK", "RGBA", "LA", "I;16"])
def test_any_mode_becomes_rgb(mode):
    base = Image.fromarray(face_photo(1, 48))
    if mode == "I;16":
        img = Image.fromarray((np.asarray(base.convert("L"), dtype=np.uint16) * 257))
        data = _encode(img, "PNG")
    else:
        img = base.convert(mode)
        data = _encode(img, "JPEG" if mode in ("L", "CMYK") else "PNG")
    decoded = decode_image(data, CAP)
    assert decoded.status == Status.OK, decoded.error
    assert decoded.image.shape == (48, 48, 3)
    # 16-bit samples are scaled, not clipped: the picture keeps its contrast.
    assert decoded.image.std() > 10


def test_transparent_pixels_are_composited_on_white():
    img = Image.new("RGBA", (8, 8), (0, 0, 0, 0))
    decoded = decode_image(_encode(img, "PNG"), CAP)
    assert (decoded.image == 255).all()


def test_exif_orientation_is_applied():
    img = Image.fromarray(face_photo(2, 40)[:, :30])  # 30 wide, 40 high
    exif = Image.Exif()
    exif[0x0112] = 6  # rotated 90 degrees: upright image is 40 wide, 30 high
    decoded = decode_image(_encode(img, "JPEG", exif=exif), CAP)
    assert decoded.image.shape == (30, 40, 3)


def test_animated_gif_uses_first_frame():
    frames = [Image.new("RGB", (16, 16), c) for c in ((255, 0, 0), (0, 0, 255))]
    buffer = io.BytesIO()
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:])
    decoded = decode_image(buffer.getvalue(), CAP)
    assert decoded.status == Status.OK
    assert decoded.image[0, 0, 0] > 200 and decoded.image[0, 0, 2] < 50


@pytest.mark.parametrize("data, status", [
    (b"", Status.EMPTY_FILE),
    (b"this is text, not a JPEG", Status.UNSUPPORTED),
    (b"%PDF-1.4\n1 0 obj\n<<>>\nendobj\n", Status.UNSUPPORTED),
])
def test_non_images_get_a_status(data, status):
    decoded = decode_image(data, CAP)
    assert decoded.status == status and decoded.image is None and decoded.error


def test_truncated_jpeg_is_reported():
    data = jpeg_bytes(face_photo(3, 200))
    decoded = decode_image(data[: len(data) // 2], CAP)
    assert decoded.status == Status.TRUNCATED
    assert "truncated" in decoded.error


def test_pixel_cap_refuses_before_decoding():
    data = _encode(Image.new("L", (3000, 3000)), "PNG")
    decoded = decode_image(data, max_pixels=1_000_000)
    assert decoded.status == Status.TOO_LARGE
    assert (decoded.width, decoded.height) == (3000, 3000)
