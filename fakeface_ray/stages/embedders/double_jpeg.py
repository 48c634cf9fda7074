"""Where a JPEG was compressed twice on its own 8x8 grid, and where it was not: pure numpy.

A photo that was a JPEG before it was edited and saved again carries two quantisations on the
same grid. Each DCT coefficient of the final file is then a multiple of the last step (the file's
table) that can be reached from a multiple of the first, so some values never occur: the
histogram has periodic gaps (Lin et al. 2009, "Fast, automatic and fine-grained tampered JPEG
image detection via DCT coefficient analysis"). Pixels pasted, warped or blended in were
resampled or recomputed, lost the first quantisation, and fill the gaps. The map says, per
block, how many of its coefficients sit in a gap. It only speaks where the first step is coarser
than the last; elsewhere it is empty and says nothing.
"""

from __future__ import annotations

import numpy as np
from scipy import fft

# The low-frequency AC coefficients (row, column) that carry enough non-zero values to histogram.
FREQUENCIES = ((0, 1), (1, 0), (2, 0), (1, 1), (0, 2), (0, 3), (1, 2), (2, 1), (3, 0), (4, 0), (3, 1), (2, 2),
               (1, 3), (0, 4))
MAX_VALUE = 20  # quantised magnitudes histogrammed; larger ones are too rare to show gaps
MIN_VALUES = 30  # non-zero coefficients a frequency needs before its histogram is read
MIN_LIFT = 1.3  # how much more often than by chance values must avoid the gaps of a first step


def block_dct(luma: np.ndarray, origin: tuple[int, int]) -> tuple[np.ndarray, tuple[int, int]]:
    """[rows, cols, 8, 8] DCT of the 8x8 blocks on the file's grid, and the offset (y, x) of the first.

    Args:
        origin: the region's top-left corner (x, y) in its image; the grid starts at the image's corner.
    """
    dy, dx = (-origin[1]) % 8, (-origin[0]) % 8
    grid = luma[dy:, dx:]
    height, width = (grid.shape[0] // 8) * 8, (grid.shape[1] // 8) * 8
    blocks = grid[:height, :width].reshape(height // 8, 8, width // 8, 8).transpose(0, 2, 1, 3)
    return fft.dctn(blocks.astype(np.float64), axes=(2, 3), norm="ortho"), (dy, dx)


def reachable(first: int, last: int) -> np.ndarray:
    """bool [MAX_VALUE + 1]: which quantised magnitudes a first step `first` lets a last step reach."""
    values = np.round(np.arange(0, 4 * MAX_VALUE) * first / last).astype(int)
    out = np.zeros(MAX_VALUE + 1, dtype=bool)
    out[values[values <= MAX_VALUE]] = True
    return out


def gap_map(luma: np.ndarray, origin: tuple[int, int], table: np.ndarray) -> tuple[np.ndarray, int, tuple[int, int]]:
    """Per grid block, the share of its informative coefficients that sit in a double-quantisation gap.

    Args:
        table: the file's luma quantisation table, int [8, 8] in natural order: the last save's steps
            (estimating them from decoded pixels confuses them with the first save's coarser ones).

    Returns: (float [rows, cols], NaN where a block has no informative coefficient; how many of
    FREQUENCIES showed gaps; the first block's offset (y, x) in the region).
    """
    dct, offset = block_dct(luma, origin)
    in_gap = np.zeros(dct.shape[:2])
    informative = np.zeros(dct.shape[:2])
    used = 0
    for u, v in FREQUENCIES:
        coefficients = dct[:, :, u, v]
        last = int(table[u, v])
        if last < 2:
            continue
        magnitude = np.abs(np.round(coefficients / last)).astype(int)
        counted = (magnitude > 0) & (magnitude <= MAX_VALUE)
        values = magnitude[counted]
        if len(values) < MIN_VALUES:
            continue
        best_lift, pattern = MIN_LIFT, None
        for first in range(last + 1, 3 * last + 8):
            reach = reachable(first, last)
            cover = reach[1:].mean()
            if cover > 0.9:
                continue  # almost every value reachable: no gap to read
            lift = reach[values].mean() / cover
            if lift > best_lift:
                best_lift, pattern = lift, reach
        if pattern is None:
            continue
        used += 1
        informative += counted
        in_gap += counted & ~pattern[np.minimum(magnitude, MAX_VALUE)]
    share = np.full(in_gap.shape, np.nan)
    np.divide(in_gap, informative, out=share, where=informative > 0)
    return share, used, offset
