"""How closely decoded pixels give back a 4:2:0 JPEG's chroma DCT values: can a gap map read chroma?

Each photo is saved at each quality with Pillow's default 4:2:0 chroma and decoded by Pillow, the
pipeline's decoder. The half-resolution chroma planes are rebuilt from the RGB pixels (JPEG's YCbCr, 2x2
means, the decoder's triangle upsampling undone per axis), cut into 8x8 blocks and transformed.
The distance of each DCT value from the nearest multiple of the file's chroma step is the noise a
chroma gap map would read through: a first save's gaps are 1-2 DCT units apart.

    python benchmarks/chroma_lattice.py runs/corpora_shipped/poisson/real_and_fake_face/training_real/real_000[0-3].jpg
"""

from __future__ import annotations

import argparse
import io
import json
from pathlib import Path

import numpy as np
from PIL import Image
from scipy.fft import dctn
from scipy.linalg import solve_banded


def chroma(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """JPEG's full-range Cb and Cr planes of an RGB uint8 image, as float."""
    r, g, b = (rgb[..., i].astype(np.float64) for i in range(3))
    return (128 - 0.168736 * r - 0.331264 * g + 0.5 * b,
            128 + 0.5 * r - 0.418688 * g - 0.081312 * b)


def half_resolution(plane: np.ndarray) -> np.ndarray:
    """The subsampled plane the decoder upsampled: 2x2 means, then its [1, 6, 1] / 8 blur undone per axis
    (what 2x2 means of a triangle-upsampled plane leave; the edges repeat their sample)."""
    h, w = plane.shape[0] // 2 * 2, plane.shape[1] // 2 * 2
    means = plane[:h, :w].reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3))

    def undo(values: np.ndarray, axis: int) -> np.ndarray:
        values = np.moveaxis(values, axis, 0)
        n = values.shape[0]
        bands = np.zeros((3, n))
        bands[0, 1:], bands[1], bands[2, :-1] = 1 / 8, 6 / 8, 1 / 8
        bands[1, [0, -1]] += 1 / 8
        return np.moveaxis(solve_banded((1, 1), bands, values.reshape(n, -1)).reshape(values.shape), 0, axis)

    return undo(undo(means, 0), 1)


def lattice_distance(plane: np.ndarray, table: np.ndarray) -> dict[str, float]:
    """Std of the DC and first AC values' distance (DCT units) from the nearest multiple of their step."""
    h, w = plane.shape[0] // 8 * 8, plane.shape[1] // 8 * 8
    blocks = dctn(plane[:h, :w].reshape(h // 8, 8, w // 8, 8).transpose(0, 2, 1, 3) - 128, axes=(2, 3), norm="ortho")
    out = {}
    for name, (u, v) in (("dc", (0, 0)), ("ac01", (0, 1))):
        values, step = blocks[..., u, v], table[u, v]
        out[name] = float(np.std(values - step * np.round(values / step)))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("photos", nargs="+")
    parser.add_argument("--qualities", default="50,80")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    rows = []
    for path in args.photos:
        rgb = np.asarray(Image.open(path).convert("RGB"))
        for quality in (int(q) for q in args.qualities.split(",")):
            buffer = io.BytesIO()
            Image.fromarray(rgb).save(buffer, format="JPEG", quality=quality)
            saved = Image.open(buffer)
            table = np.array(saved.quantization[1]).reshape(8, 8)  # Pillow gives natural order
            cb, cr = chroma(np.asarray(saved.convert("RGB")))
            row = {"photo": Path(path).name, "quality": quality, "dc_step": int(table[0, 0])}
            for name, plane in (("cb", cb), ("cr", cr)):
                row.update({f"{name}_{k}": round(v, 3) for k, v in lattice_distance(half_resolution(plane), table).items()})
            rows.append(row)
            print(row, flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
