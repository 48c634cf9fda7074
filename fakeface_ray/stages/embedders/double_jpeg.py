"""Where a JPEG was compressed twice on its own 8x8 grid, and where it was not: pure numpy.

A photo that was a JPEG before it was edited and saved again carries two quantisations on the
same grid. Each DCT coefficient of the final file is then a multiple of the last step (the file's
table) that can be reached from a multiple of the first, so some values never occur: the
histogram has periodic gaps (Lin et al. 2009, "Fast, automatic and fine-grained tampered JPEG
image detection via DCT coefficient analysis"). Pixels pasted, warped or blended in were
resampled or recomputed, lost the first quantisation, and fill the gaps. `gap_map` says, per
block, how many of its coefficients sit in a gap; it speaks where the first step is coarser than
the last.

Where the first step is finer than the last (a photo saved at high quality, edited, re-saved at a
lower one), every value is reachable, but not equally often: each last-step bin collects one or
two multiples of the first step, in a periodic pattern. `modulation_map` says, per block, how
little its coefficients follow that pattern. Its evidence per coefficient is weaker than a gap's.
"""

from __future__ import annotations

import functools

import numpy as np
from scipy import fft
from scipy.special import ndtr

# The low-frequency AC coefficients (row, column) that carry enough non-zero values to histogram.
FREQUENCIES = ((0, 1), (1, 0), (2, 0), (1, 1), (0, 2), (0, 3), (1, 2), (2, 1), (3, 0), (4, 0), (3, 1), (2, 2),
               (1, 3), (0, 4))
MAX_VALUE = 20  # quantised magnitudes histogrammed; larger ones are too rare to show gaps
MIN_VALUES = 30  # non-zero coefficients a frequency needs before its histogram is read
MIN_LIFT = 1.3  # how much more often than by chance values must avoid the gaps of a first step
# A coefficient's rounding noise between the two saves, in DCT units: pixels are rounded to integers
# (0.29) and clipped; it splits the values that fall half-way between two bins.
NOISE = 0.5
MIN_PATTERN_VALUES = 200  # a frequency's non-zero coefficients before its modulation is read
MIN_PATTERN = 0.2  # spread of a first step's log pattern; flatter ones cannot be told from chance
MIN_SUPPORT = 0.03  # mean log-likelihood ratio per coefficient the best first step must reach


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


@functools.lru_cache(maxsize=4096)
def reachable(first: int, last: int) -> np.ndarray:
    """bool [MAX_VALUE + 1]: which quantised magnitudes a first step `first` lets a last step reach."""
    values = np.round(np.arange(0, 4 * MAX_VALUE) * first / last).astype(int)
    out = np.zeros(MAX_VALUE + 1, dtype=bool)
    out[values[values <= MAX_VALUE]] = True
    out.flags.writeable = False  # cached: shared by every call
    return out


def gap_map(luma: np.ndarray, origin: tuple[int, int], table: np.ndarray) -> tuple[np.ndarray, int, tuple[int, int]]:
    """Per grid block, the share of its informative coefficients that sit in a double-quantisation gap.

    Args:
        table: the file's luma quantisation table, int [8, 8] in natural order: the last save's steps
            (estimating them from decoded pixels confuses them with the first save's coarser ones).

    Returns: (float [rows, cols], NaN where a block has no informative coefficient; how many of
    FREQUENCIES showed gaps; the first block's offset (y, x) in the region).
    """
    return _block_map(luma, origin, table, MIN_VALUES, _gaps)


def _gaps(values: np.ndarray, last: int) -> np.ndarray | None:
    """1.0 for the magnitudes in the gaps of the coarser first step that best explains `values`."""
    best_lift, pattern = MIN_LIFT, None
    for first in range(last + 1, 3 * last + 8):
        reach = reachable(first, last)
        cover = reach[1:].mean()
        if cover > 0.9:
            continue  # almost every value reachable: no gap to read
        lift = reach[values].mean() / cover
        if lift > best_lift:
            best_lift, pattern = lift, reach
    return None if pattern is None else (~pattern).astype(float)


def _block_map(luma: np.ndarray, origin: tuple[int, int], table: np.ndarray, min_values: int,
               reading) -> tuple[np.ndarray, int, tuple[int, int]]:
    """Per grid block, the mean over its informative coefficients of what `reading` makes of their magnitudes.

    Args:
        min_values: a frequency's non-zero coefficients before it is read.
        reading: (magnitudes 1..MAX_VALUE of one frequency, its last step) -> float [MAX_VALUE + 1],
            each magnitude's value, or None where the frequency shows nothing.
    """
    dct, offset = block_dct(luma, origin)
    total = np.zeros(dct.shape[:2])
    informative = np.zeros(dct.shape[:2])
    used = 0
    for u, v in FREQUENCIES:
        last = int(table[u, v])
        if last < 2:
            continue
        magnitude = np.abs(np.round(dct[:, :, u, v] / last)).astype(int)
        counted = (magnitude > 0) & (magnitude <= MAX_VALUE)
        values = magnitude[counted]
        if len(values) < min_values:
            continue
        per_value = reading(values, last)
        if per_value is None:
            continue
        used += 1
        informative += counted
        total[counted] += per_value[values]
    out = np.full(total.shape, np.nan)
    np.divide(total, informative, out=out, where=informative > 0)
    return out, used, offset


@functools.lru_cache(maxsize=4096)
def modulation(first: int, last: int) -> np.ndarray:
    """float [MAX_VALUE]: for magnitudes 1..MAX_VALUE, the log of how many multiples of a finer first
    step land in that last-step bin, against the mean of it and its two neighbours (which absorbs the
    histogram's smooth decay)."""
    centres = np.arange(0, (MAX_VALUE + 3) * last // first + 2) * first / last
    edges = np.arange(0, MAX_VALUE + 1)[None, :]
    spread = NOISE / last
    counts = (ndtr((edges + 0.5 - centres[:, None]) / spread)
              - ndtr((edges - 0.5 - centres[:, None]) / spread)).sum(axis=0)[1:]
    local = np.convolve(np.pad(counts, 1, mode="edge"), np.ones(3) / 3, mode="valid")
    pattern = np.log(counts / local)
    pattern.flags.writeable = False
    return pattern


def modulation_map(luma: np.ndarray, origin: tuple[int, int],
                   table: np.ndarray) -> tuple[np.ndarray, int, tuple[int, int]]:
    """Per grid block, how little its coefficients follow the pattern of a first step finer than the last.

    For each frequency, the first step (below the file's) whose pattern best explains the region's
    histogram is kept if it explains it well enough; a block's value is the mean over its informative
    coefficients of minus that pattern's log ratio (positive: less double-compressed, edited-looking).

    Args:
        table: the file's luma quantisation table, int [8, 8] in natural order.

    Returns: (float [rows, cols], NaN where a block has no informative coefficient; how many of
    FREQUENCIES showed a pattern; the first block's offset (y, x) in the region).
    """
    return _block_map(luma, origin, table, MIN_PATTERN_VALUES, _against_modulation)


def _against_modulation(values: np.ndarray, last: int) -> np.ndarray | None:
    """Minus the log pattern of the finer first step that best explains `values` (index 0 unused)."""
    best_support, best = MIN_SUPPORT, None
    for first in range(1, last):
        pattern = modulation(first, last)
        if np.ptp(pattern) < MIN_PATTERN:
            continue
        support = pattern[values - 1].mean()
        if support > best_support:
            best_support, best = support, pattern
    return None if best is None else np.concatenate([[0.0], -best])
