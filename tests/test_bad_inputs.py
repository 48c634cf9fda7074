"""Every kind of broken or awkward file becomes exactly one row, through the real pipeline."""

import io
import shutil

import numpy as np
import pyarrow.dataset as pads
import pytest
from PIL import Image

from fakeface_ray.stages import sources
from fakeface_ray.config import load_config
from fakeface_ray.pipeline import extract_embeddings

from .photos import face_photo, jpeg_bytes

pytestmark = [pytest.mark.ray, pytest.mark.slow]


def _png(img: Image.Image) -> bytes:
    buffer = io.BytesIO()
    img.save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def awkward(tmp_path_factory):
    root = tmp_path_factory.mktemp("awkward")
    real, fake = root / "training_real", root / "training_fake"
    real.mkdir()
    fake.mkdir()
    face = face_photo(0, 300)
    # 240 wide, 360 high; MTCNN finds this face upright and not when it lies on its side.
    upright = Image.fromarray(np.pad(face_photo(1, 240), ((60, 60), (0, 0), (0, 0)), mode="edge"))
    exif = Image.Exif()
    exif[0x0112] = 8  # stored rotated; viewers turn it 90 degrees back
    stored = upright.transpose(Image.Transpose.ROTATE_270)
    rotated = io.BytesIO()
    stored.save(rotated, format="JPEG", quality=92, exif=exif)
    frames = [Image.fromarray(face), Image.new("RGB", (300, 300), (0, 0, 255))]
    gif = io.BytesIO()
    frames[0].save(gif, format="GIF", save_all=True, append_images=frames[1:])
    files = {
        "training_real/zero.jpg": b"",
        "training_real/truncated.jpg": jpeg_bytes(face)[:3000],
        "training_real/text.jpg": b"just some text\n",
        "training_real/doc.jpg": b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n",
        "training_real/vector.png": b"<svg xmlns='http://www.w3.org/2000/svg'/>",
        "training_real/alpha.png": _png(Image.fromarray(face).convert("RGBA")),
        "training_real/sixteen.png": _png(Image.fromarray(np.asarray(Image.fromarray(face).convert("L"), np.uint16) * 257)),
        "training_real/grey.png": _png(Image.fromarray(face).convert("L")),
        "training_real/palette.png": _png(Image.fromarray(face).convert("P")),
        "training_fake/cmyk.jpg": _cmyk(face),
        "training_fake/rotated.jpg": rotated.getvalue(),
        "training_fake/tiny.png": _png(Image.fromarray(face).resize((10, 10))),
        "training_fake/bomb.png": _png(Image.new("L", (9000, 9000))),
        "training_fake/animated.gif": gif.getvalue(),
        "training_fake/vanishing.jpg": jpeg_bytes(face),
        "training_fake/spaced ünïcødé näme.jpg": jpeg_bytes(face),
        "training_fake/copy a.jpg": jpeg_bytes(face_photo(2, 300)),
        "training_fake/copy b.jpg": jpeg_bytes(face_photo(2, 300)),
    }
    for name, data in files.items():
        (root / name).write_bytes(data)
    return root, upright


def _cmyk(face: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(face).convert("CMYK").save(buffer, format="JPEG")
    return buffer.getvalue()


def test_each_file_is_one_row_with_a_specific_status(awkward, tmp_path, ray_session, detector):
    root, upright = awkward
    config = load_config(overrides=["read.max_pixels=50000000"], infile=str(root), out=str(tmp_path))
    listing = sources.list_sources(str(root), config.read.extensions)
    (root / "training_fake" / "vanishing.jpg").unlink()  # gone between listing and reading
    (root / "training_fake" / "vanishing.jpg").mkdir()  # and a folder in its place
    try:
        result = extract_embeddings(config, tmp_path, listing)
    finally:
        shutil.rmtree(root / "training_fake" / "vanishing.jpg")
    rows = {r["image_id"]: r for r in pads.dataset(str(result.folder), format="parquet").to_table().to_pylist()}
    assert len(rows) == len(listing) == 18
    status = {k.split("/")[1]: v["status"] for k, v in rows.items()}
    assert status == {
        "zero.jpg": "empty_file", "truncated.jpg": "truncated", "text.jpg": "unsupported",
        "doc.jpg": "unsupported", "vector.png": "unsupported", "alpha.png": "ok", "sixteen.png": "ok",
        "grey.png": "ok", "palette.png": "ok", "cmyk.jpg": "ok", "rotated.jpg": "ok", "tiny.png": "too_small",
        "bomb.png": "too_large", "animated.gif": "ok", "vanishing.jpg": "read_error",
        "spaced ünïcødé näme.jpg": "ok", "copy a.jpg": "ok", "copy b.jpg": "ok",
    }
    assert all(r["error"] for r in rows.values() if r["status"] not in ("ok", "no_face"))
    assert rows["training_fake/copy a.jpg"]["sha256"] == rows["training_fake/copy b.jpg"]["sha256"]
    assert rows["training_fake/bomb.png"]["width"] == 9000
    # The EXIF-rotated face is found upright, its box in the upright frame.
    turned = rows["training_fake/rotated.jpg"]
    assert (turned["width"], turned["height"]) == (240, 360)
    direct = max(detector.detect_faces(np.asarray(upright)), key=lambda d: d["confidence"])["box"]
    # Within 10% of the face: the stage scans a copy capped at extract.detect_max_side, `direct` the
    # full image; a face left on its side would be off by half the frame.
    assert np.abs(np.array(turned["face_box"]) - np.array(direct)).max() <= 0.1 * max(direct[2:])
    assert result.counts_by_status["ok"] == 10
