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
two multiples of the first step, in a periodic pattern. `modulation_map` tests that pattern
against one save of a smooth envelope and says, per block, how much better one save explains its
coefficients. Its evidence per coefficient is weaker than a gap's, and it fades as the first step
shrinks (a save at 90 then 50 leaves too flat a pattern to read).
"""

from __future__ import annotations

import functools

import numpy as np
from scipy import fft
from scipy.special import gammainc, ndtr

# The low-frequency AC coefficients (row, column) that carry enough non-zero values to histogram.
FREQUENCIES = ((0, 1), (1, 0), (2, 0), (1, 1), (0, 2), (0, 3), (1, 2), (2, 1), (3, 0), (4, 0), (3, 1), (2, 2),
               (1, 3), (0, 4))
MAX_VALUE = 20  # quantised magnitudes histogrammed; larger ones are too rare to show gaps
MIN_VALUES = 30  # non-zero coefficients a frequency needs before its histogram is read
MIN_LIFT = 1.3  # how much more often than by chance values must avoid the gaps of a first step
# A coefficient's rounding noise between the two saves, in DCT units: pixels are rounded to integers
# (0.29) and clipped; it splits the values that fall half-way between two bins.
NOISE = 0.5
MIN_PATTERN_VALUES = 200  # a frequency's non-zero coefficients before a finer first save is looked for
# Smooth envelopes of a frequency's coefficients before any save: generalised Gaussians, these shapes
# (1: Laplacian) and scales in last-step units. A Laplacian alone misfits real histograms, and the
# misfit passed for a double save on photos saved once.
SHAPES = np.array([0.3, 0.4, 0.5, 0.6, 0.7, 0.85, 1.0, 1.25, 1.5, 2.0])
SCALES = np.geomspace(0.1, 40, 36)
# Log-likelihood (nats) by which a finer first save must beat one save: at 6, photos saved once at
# 50-95 showed one in at most 1 of 14 frequencies, double saves 85 -> 60 in 4-8.
MIN_EVIDENCE = 6.0
# The share of a region's coefficients the likelihood choice of a coarser first step leaves to one save:
# an edit fills the gaps, and without it a pasted part would rule out the first save the rest shows.
EDITED_SHARE = 0.2


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
    """bool [MAX_VALUE + 1]: which quantised magnitudes a first step `first` lets a last step reach.

    A multiple of `first` exactly half-way between two last steps reaches both: decoding noise decides
    which (np.round would keep only the even one, and untouched values would land in false gaps).
    """
    values = landing_values(np.arange(0, 4 * MAX_VALUE) * first / last)
    out = np.zeros(MAX_VALUE + 1, dtype=bool)
    out[values[values <= MAX_VALUE]] = True
    out.flags.writeable = False  # cached: shared by every call
    return out


def landing_values(scaled: np.ndarray) -> np.ndarray:
    """int: the last-step multiples that first-step multiples (`scaled`, in last-step units) can land on,
    both neighbours of one exactly half-way between two."""
    return np.concatenate([np.floor(scaled + 0.5), np.ceil(scaled - 0.5)]).astype(int)


def gap_map(luma: np.ndarray, origin: tuple[int, int], table: np.ndarray) -> tuple[np.ndarray, int, tuple[int, int]]:
    """Per grid block, the share of its informative coefficients that sit in a double-quantisation gap.

    Args:
        table: the file's luma quantisation table, int [8, 8] in natural order: the last save's steps
            (estimating them from decoded pixels confuses them with the first save's coarser ones).

    Returns: (float [rows, cols], NaN where a block has no informative coefficient; how many of
    FREQUENCIES showed gaps; the first block's offset (y, x) in the region).
    """
    return _block_map(*block_dct(luma, origin), table, MIN_VALUES, _gaps)


def history_maps(luma: np.ndarray, origin: tuple[int, int], table: np.ndarray,
                 first_step: str = "lift") -> tuple[tuple, tuple]:
    """(`gap_map`, `modulation_map`) of one region, from one DCT of its blocks.

    Args:
        first_step: how the gap map chooses the coarser first step, one of FIRST_STEP_CHOICES.
    """
    dct, offset = block_dct(luma, origin)
    return (_block_map(dct, offset, table, MIN_VALUES, FIRST_STEP_CHOICES[first_step]),
            _block_map(dct, offset, table, MIN_PATTERN_VALUES, _single_against_double))


def _gaps(histogram: np.ndarray, last: int) -> np.ndarray | None:
    """1.0 for the magnitudes in the gaps of the coarser first step that best explains `histogram`, by
    lift: the step whose lattice the values crowd onto the most over its share of the values."""
    total = histogram.sum()
    return _best_coarser_step(last, MIN_LIFT, lambda first, reach: histogram[reach].sum() / total / reach[1:].mean())


def _gaps_by_likelihood(histogram: np.ndarray, last: int) -> np.ndarray | None:
    """`_gaps` with the first step whose double save (EDITED_SHARE of the values saved once) explains
    `histogram` better than one save does, by the most and by at least MIN_EVIDENCE nats.

    Lift prefers sparse lattices that hold the crowded small values, so on a steep histogram it can
    pick a wrong step whose gaps hold untouched values; the likelihood weighs each value against the
    envelope it comes from.
    """
    counts = histogram[1:]
    one_save = float((single_save(last) @ counts).max())
    return _best_coarser_step(last, MIN_EVIDENCE,
                              lambda first, reach: float((_double_with_edits(first, last) @ counts).max()) - one_save)


def _best_coarser_step(last: int, floor: float, score) -> np.ndarray | None:
    """1.0 for the magnitudes in the gaps of the coarser first step with the highest `score(first, reach)`
    above `floor`, or None; steps whose lattice reaches almost every value have no gap to read."""
    best, pattern = floor, None
    for first in range(last + 1, 3 * last + 8):
        reach = reachable(first, last)
        if reach[1:].mean() > 0.9:
            continue
        value = score(first, reach)
        if value > best:
            best, pattern = value, reach
    return None if pattern is None else (~pattern).astype(float)


# 58 KB each, as `double_save`'s pairs: 1024 bound this cache at a further 60 MB an actor.
@functools.lru_cache(maxsize=1024)
def _double_with_edits(first: int, last: int) -> np.ndarray:
    """float [envelopes, MAX_VALUE]: log p of magnitudes 1..MAX_VALUE saved at `first`, then at `last`,
    with EDITED_SHARE of them saved once at `last` instead."""
    # Past double_save's cache, which holds the finer first steps the modulation map reads.
    with np.errstate(divide="ignore"):  # a coarse first step leaves some bins no mass at all
        double = np.exp(double_save.__wrapped__(first, last))
    out = np.log((1 - EDITED_SHARE) * double + EDITED_SHARE * np.exp(single_save(last)))
    out.flags.writeable = False  # cached: shared by every call
    return out


def _block_map(dct: np.ndarray, offset: tuple[int, int], table: np.ndarray, min_values: int,
               reading) -> tuple[np.ndarray, int, tuple[int, int]]:
    """Per grid block, the mean over its informative coefficients of what `reading` makes of their magnitudes.

    Args:
        dct, offset: the region's blocks, from `block_dct`.
        min_values: a frequency's non-zero coefficients before it is read.
        reading: (one frequency's histogram of magnitudes 0..MAX_VALUE, 0 left empty; its last step)
            -> float [MAX_VALUE + 1], each magnitude's value, or None where the frequency shows nothing.
    """
    total, informative, used = block_sums(dct, table, min_values, reading)
    out = np.full(total.shape, np.nan)
    np.divide(total, informative, out=out, where=informative > 0)
    return out, used, offset


def block_sums(dct: np.ndarray, table: np.ndarray, min_values: int, reading) -> tuple[np.ndarray, np.ndarray, int]:
    """`_block_map`'s sums before the mean: per block, the readings' total and its informative
    coefficients, and how many of FREQUENCIES were read."""
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
        per_value = reading(np.bincount(values, minlength=MAX_VALUE + 1), last)
        if per_value is None:
            continue
        used += 1
        informative += counted
        total[counted] += per_value[values]
    return total, informative, used


def _envelopes(low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """[len(SHAPES) * len(SCALES), n]: the probability that a coefficient's magnitude, in last-step
    units, lies in [low, high) under each smooth (generalised Gaussian) envelope."""
    shape = np.repeat(SHAPES, len(SCALES))[:, None]
    scale = np.tile(SCALES, len(SHAPES))[:, None]

    def below(x: np.ndarray) -> np.ndarray:
        return gammainc(1 / shape, (np.maximum(x, 0)[None] / scale) ** shape)

    return np.maximum(below(high) - below(low), 1e-300)


@functools.lru_cache(maxsize=64)
def single_save(last: int) -> np.ndarray:
    """float [envelopes, MAX_VALUE]: log probability of magnitudes 1..MAX_VALUE after one save at `last`."""
    k = np.arange(1, MAX_VALUE + 1)
    p = _envelopes(k - 0.5, k + 0.5)
    out = np.log(p / p.sum(axis=1, keepdims=True))
    out.flags.writeable = False  # cached: shared by every call
    return out


# 58 KB each: 1024 bounds an actor's cache at about 60 MB and holds every pair up to a last step of
# 45 (990 pairs, 11.7 s to build them all on this 2-core box; 12 ms each on average), paid once
# per pair and process.
@functools.lru_cache(maxsize=1024)
def double_save(first: int, last: int) -> np.ndarray:
    """float [envelopes, MAX_VALUE]: the same after a save at a finer step `first`, then at `last`.

    Each multiple of the first step carries its envelope's mass to the last-step bins, blurred by
    the rounding noise between the saves; so some bins collect two multiples, others one.
    """
    ratio = first / last
    centres = np.arange(0, (MAX_VALUE + 3) / ratio + 2) * ratio
    mass = _envelopes(centres - ratio / 2, centres + ratio / 2)
    bins = np.arange(1, MAX_VALUE + 1)[None, :]
    spread = NOISE / last
    carry = ndtr((bins + 0.5 - centres[:, None]) / spread) - ndtr((bins - 0.5 - centres[:, None]) / spread)
    p = mass @ carry
    out = np.log(p / p.sum(axis=1, keepdims=True))
    out.flags.writeable = False
    return out


def modulation_map(luma: np.ndarray, origin: tuple[int, int],
                   table: np.ndarray) -> tuple[np.ndarray, int, tuple[int, int]]:
    """Per grid block, how much better one save explains its coefficients than a finer first save did.

    For each frequency, the region's histogram is fitted by a smooth envelope saved once, and by the
    same envelopes saved first at each finer step; where a double save wins by MIN_EVIDENCE, a block's
    value is the mean over its informative coefficients of their log-likelihood ratio, single against
    double (positive: less double-compressed, edited-looking).

    Args:
        table: the file's luma quantisation table, int [8, 8] in natural order.

    Returns: (float [rows, cols], NaN where a block has no informative coefficient; how many of
    FREQUENCIES showed a finer first save; the first block's offset (y, x) in the region).
    """
    return _block_map(*block_dct(luma, origin), table, MIN_PATTERN_VALUES, _single_against_double)


def _single_against_double(histogram: np.ndarray, last: int) -> np.ndarray | None:
    """Per magnitude, log p(single save) - log p(best finer first save), or None if one save explains
    `histogram` within MIN_EVIDENCE (index 0 unused)."""
    counts = histogram[1:]
    single = single_save(last)
    fit_single = single @ counts
    best_single = int(np.argmax(fit_single))
    best_evidence, best = MIN_EVIDENCE, None
    for first in range(1, last):
        double = double_save(first, last)
        fit = double @ counts
        envelope = int(np.argmax(fit))
        if fit[envelope] - fit_single[best_single] > best_evidence:
            best_evidence, best = fit[envelope] - fit_single[best_single], double[envelope]
    return None if best is None else np.concatenate([[0.0], single[best_single] - best])


# How the gap map chooses a coarser first step (`history_maps`' first_step).
FIRST_STEP_CHOICES = {"lift": _gaps, "likelihood": _gaps_by_likelihood}
