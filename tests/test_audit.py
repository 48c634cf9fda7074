"""The shortcut audit: file cues read from headers, their AUC, and `fakeface audit`."""

import io
import json
import struct

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from fakeface_ray.cli import cli
from fakeface_ray.learning.audit import AuditError, audit, auc_standard_error
from fakeface_ray.stages.filecues import file_cues
from .photos import face_photo


def _jpeg(pixels: np.ndarray, quality: int, **options) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=quality, **options)
    return buffer.getvalue()


def _with_app13(jpeg: bytes) -> bytes:
    """The file with a Photoshop APP13 block right after its SOI marker."""
    payload = b"Photoshop 3.0\x008BIM\x04\x04\x00\x00\x00\x00\x00\x00"
    return jpeg[:2] + b"\xff\xed" + struct.pack(">H", len(payload) + 2) + payload + jpeg[2:]


@pytest.mark.parametrize("quality", [10, 35, 50, 75, 90, 95, 100])
def test_jpeg_quality_is_read_back_from_the_quantisation_tables(quality):
    cues = file_cues(_jpeg(face_photo(0, 64), quality))
    assert (cues.format, cues.jpeg_quality, cues.standard_tables) == ("JPEG", quality, True)


def test_subsampling_markers_size_and_mode():
    pixels = face_photo(1, 80)
    plain = file_cues(_jpeg(pixels, 90))
    assert (plain.subsampling, plain.width, plain.height, plain.mode) == ("4:2:0", 80, 80, "RGB")
    assert not (plain.exif or plain.icc or plain.photoshop or plain.xmp)
    exif = Image.Exif()
    exif[0x0131] = "Adobe Photoshop 25.0"  # Software
    tagged = file_cues(_with_app13(_jpeg(pixels, 90, subsampling=0, exif=exif.tobytes(), icc_profile=b"\0" * 128)))
    assert tagged.subsampling == "4:4:4" and tagged.exif and tagged.icc and tagged.photoshop
    grey = file_cues(_jpeg(pixels[:, :, 0], 90))
    assert (grey.subsampling, grey.mode) == ("grey", "L")
    assert file_cues(b"not an image").format == "unreadable"


def test_a_decompression_bomb_header_is_an_unreadable_cue_not_an_error():
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    # 20,000 x 20,000 RGB: past twice Pillow's pixel limit, which refuses it from the header.
    header = struct.pack(">IIBBBBB", 20_000, 20_000, 8, 2, 0, 0, 0)
    bomb = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")
    cues = file_cues(bomb)
    assert (cues.format, cues.file_size) == ("unreadable", len(bomb))


def _corpus(root, fake_quality=None, n=20, quality=90):
    """Reals and fakes drawn alike from LFW faces; every file re-saved at `quality`, fakes at
    `fake_quality` when given."""
    for label, offset in (("training_real", 0), ("training_fake", n)):
        (root / label).mkdir(parents=True)
        for i in range(n):
            pixels = face_photo(offset + i, 96)
            q = fake_quality if fake_quality is not None and label == "training_fake" else quality
            (root / label / f"{i:03d}.jpg").write_bytes(_jpeg(pixels, q))
    return root


def _cues(root):
    files = sorted(root.rglob("*.jpg"))
    return [file_cues(p.read_bytes()) for p in files], ["real" if "real" in p.parent.name else "fake" for p in files]


def test_fakes_saved_at_a_lower_quality_are_flagged(tmp_path):
    result = audit(*_cues(_corpus(tmp_path / "c", fake_quality=70)), threshold=0.7)
    by_name = {c.name: c for c in result.cues}
    assert by_name["jpeg_quality"].auc == 1.0 and by_name["jpeg_quality"].separates
    assert by_name["jpeg_quality"].per_class == {"real": "90 (90-90)", "fake": "70 (70-70)"}
    assert by_name["combined"].separates
    assert by_name["image_size"].constant and not by_name["image_size"].separates
    assert result.verdict().startswith("SHORTCUT: JPEG quality (AUC 1.00)")


def test_a_corpus_saved_one_way_is_not_flagged(tmp_path):
    result = audit(*_cues(_corpus(tmp_path / "c")), threshold=0.7)
    assert result.flagged == []
    assert {c.name for c in result.cues if c.constant} >= {"format", "jpeg_quality", "chroma_subsampling",
                                                           "image_size", "mode", "exif"}
    assert result.verdict().startswith("no shortcut found")


def test_auc_standard_error_matches_hanley_and_mcneil():
    # At AUC 0.5 with n per class: Q1 = Q2 = 1/3, so SE^2 = (1/4 + 2 (n - 1) / 12) / n^2.
    assert auc_standard_error(0.5, 10, 10) == pytest.approx((0.25 + 18 / 12) ** 0.5 / 10)
    assert auc_standard_error(1.0, 20, 20) == 0.0


def test_one_class_or_too_few_images():
    cues = [file_cues(_jpeg(face_photo(i, 32), 90)) for i in range(6)]
    with pytest.raises(AuditError, match="real with fake"):
        audit(cues, ["real"] * 6)
    result = audit(cues, ["real"] * 3 + ["fake"] * 3)
    assert all(c.auc is None for c in result.cues) and result.flagged == []
    assert result.verdict().startswith("too few images")


def test_audit_command_and_its_strict_exit_codes(tmp_path):
    shortcut = _corpus(tmp_path / "shortcut", fake_quality=70)
    clean = _corpus(tmp_path / "clean")
    runner = CliRunner()
    for corpus, strict_code, word in ((shortcut, 1, "SHORTCUT"), (clean, 0, "no shortcut found")):
        shown = runner.invoke(cli, ["audit", "--infile", str(corpus)])
        assert shown.exit_code == 0, shown.output
        assert "JPEG quality" in shown.output and word in shown.output
        # --json into a folder not made yet: the finished audit is not lost at the last step.
        written = tmp_path / f"new_{strict_code}" / "a.json"
        strict = runner.invoke(cli, ["audit", "--infile", str(corpus), "--strict", "--json", str(written)])
        assert strict.exit_code == strict_code, strict.output
        flagged = set(json.loads(written.read_text())["flagged"])
        # A lower quality also makes smaller files: file size is a shortcut of the same making.
        assert flagged == ({"jpeg_quality", "file_size", "combined"} if strict_code else set())


def test_the_audit_json_goes_to_a_uri_too(tmp_path):
    from fakeface_ray.config import load_config
    from fakeface_ray.runs import run_audit, write_audit

    corpus = _corpus(tmp_path / "c", fake_quality=70)
    written = tmp_path / "made" / "audit.json"
    result = run_audit(load_config(infile=str(corpus)))
    write_audit(result, written.as_uri())
    assert json.loads(written.read_text()) == result.to_dict()


def test_the_report_shows_the_audit_table(tmp_path):
    from fakeface_ray.reporting.audit import html_table

    page = html_table(audit(*_cues(_corpus(tmp_path / "c", fake_quality=70))).to_dict())
    assert '<td data-audit="jpeg_quality">1.00</td>' in page and "SHORTCUT" in page
