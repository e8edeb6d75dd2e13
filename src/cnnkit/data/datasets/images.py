"""Reading image and mask files safely: every failure is one :class:`DatasetError` naming the file.

Pillow decodes lazily, so a truncated file often opens fine and fails only when its pixels are
read; :func:`read_image` forces the decode inside the ``try`` so the error names the file.

16-bit images (modes ``I;16``, ``I;16B``, ``I;16L`` and 32-bit ``I``) are read at full precision
and scaled by 1/65535 (Pillow's own conversion to "L" or "RGB" clips them to 255, which made
every 16-bit PNG white). :func:`read_depth` reads depth maps: 16-bit PNGs whose stored value
divided by a scale is metres (the common export of NYU Depth v2, Silberman et al., ECCV 2012,
stores millimetres: scale 1000), or float arrays in metres (``.npy``, float TIFF).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from cnnkit.data.sample import IGNORE_INDEX
from cnnkit.errors import ArgumentError, CnnkitError

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
WIDE_MODES = ("I;16", "I;16B", "I;16L", "I")  # more than 8 bits per pixel, one channel


class DatasetError(CnnkitError, ValueError):
    """A data file that cannot be used (corrupt, mismatched, missing, out of range)."""


def list_images(folder: Path, extensions: Sequence[str] = IMAGE_EXTENSIONS) -> list[Path]:
    """Image files directly in ``folder``, sorted by name; an error if there are none."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DatasetError(f"{folder}: folder not found")
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in extensions)
    if not files:
        raise DatasetError(f"{folder}: empty folder (no image files with extensions "
                           f"{', '.join(extensions)})")
    return files


def _open_array(path: Path, mode: str | None,
                keep: tuple[str, ...] = ()) -> tuple[np.ndarray, str, list[int] | None]:
    """Decode a file fully; returns the pixel array, the file's mode and its palette. The pixels
    are converted to ``mode`` unless the file's mode is one of ``keep``."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: file not found")
    try:
        with Image.open(path) as im:
            im.load()
            file_mode, palette = im.mode, im.getpalette()
            if mode is not None and im.mode != mode and im.mode not in keep:
                im = im.convert(mode)
            array = np.array(im)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise DatasetError(f"{path}: corrupt or truncated image ({err})") from None
    return array, file_mode, palette


def image_size(path: Path) -> tuple[int, int]:
    """(height, width) from the file header, without decoding the pixels."""
    try:
        with Image.open(path) as im:
            w, h = im.size
    except (UnidentifiedImageError, OSError) as err:
        raise DatasetError(f"{path}: corrupt or unreadable image ({err})") from None
    return h, w


def read_image(path: Path, mode: str = "RGB") -> torch.Tensor:
    """An image file as a ``C x H x W`` float tensor in [0, 1]; ``mode`` is "RGB" or "L".

    A 16-bit (or 32-bit integer) single-channel file is divided by 65535 (values are not
    clipped) and repeated to 3 channels for "RGB"."""
    array, file_mode, _ = _open_array(path, mode, WIDE_MODES if mode in ("RGB", "L") else ())
    if file_mode in WIDE_MODES and mode in ("RGB", "L"):
        wide = array.astype(np.float32) * np.float32(1 / 65535)
        return torch.from_numpy(np.repeat(wide[None], 3 if mode == "RGB" else 1, axis=0))
    if array.dtype != np.uint8:
        raise DatasetError(f"{path}: expected 8-bit pixels, got {array.dtype}")
    chw = array[None] if array.ndim == 2 else array.transpose(2, 0, 1)
    out = chw.astype(np.float32)  # contiguous copy; numpy is cheaper than torch at this size
    out *= np.float32(1 / 255)
    return torch.from_numpy(out)


def read_depth(path: Path, scale: float = 1000.0) -> torch.Tensor:
    """A depth map as an ``H x W`` float32 tensor in metres, 0 where unknown.

    - 16-bit PNG/TIFF (mode ``I;16*`` or ``I``): stored value / ``scale`` (1000 for
      millimetres); a stored 0 is unknown;
    - ``.npy`` (``H x W``, or ``1 x H x W`` / ``H x W x 1``) or float TIFF (mode ``F``): float
      metres, ``scale`` not applied; NaN, infinite and values <= 0 are unknown (0).
    """
    path = Path(path)
    if not scale > 0:
        raise ArgumentError(f"depth scale must be > 0 (stored units per metre); got {scale!r}")
    if path.suffix.lower() == ".npy":
        array = load_npy(path)
        if array.ndim == 3 and 1 in (array.shape[0], array.shape[-1]):
            array = array.reshape(array.shape[1:] if array.shape[0] == 1 else array.shape[:-1])
        if array.ndim != 2:
            raise DatasetError(f"{path}: a depth array must be H x W; got shape {array.shape}")
        file_mode = "F"
    else:
        array, file_mode, _ = _open_array(path, None)
    if file_mode == "F":
        if not np.issubdtype(array.dtype, np.floating):
            raise DatasetError(f"{path}: a depth array must hold float metres; got {array.dtype} "
                               f"(store integer depth as a 16-bit PNG with a depth scale)")
        depth = array.astype(np.float32)
        depth[~np.isfinite(depth) | (depth <= 0)] = 0
        return torch.from_numpy(depth)
    if file_mode not in WIDE_MODES:
        raise DatasetError(f"{path}: a depth image must be 16-bit single-channel (mode I;16 or "
                           f"I) or float (mode F); got mode {file_mode!r}")
    depth = array.astype(np.float32) / np.float32(scale)
    depth[depth < 0] = 0
    return torch.from_numpy(depth)


def load_npy(path: Path) -> np.ndarray:
    """A ``.npy`` array (no pickles); a missing or unreadable file is a :class:`DatasetError`."""
    if not path.is_file():
        raise DatasetError(f"{path}: file not found")
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as err:
        raise DatasetError(f"{path}: corrupt or unreadable .npy array ({err})") from None


def read_mask(path: Path, num_classes: int, *, colors: Sequence[tuple[int, int, int]] | None = None,
              values: dict[int, int] | None = None,
              ignore_index: int = IGNORE_INDEX) -> torch.Tensor:
    """A label file as an ``H x W`` int64 class map.

    - index PNG (mode "L") or palette PNG (mode "P"): the stored value is the class (palette
      indices are read as such, the palette colours are not used);
    - RGB colour map: each colour of ``colors`` (index = class) becomes its class; a colour not
      in the table is an error;
    - ``values`` maps raw stored values to classes (e.g. ``{0: 0, 255: 1}`` for a binary mask
      saved as black/white); an unlisted value is an error.
    Values outside ``[0, num_classes)`` other than ``ignore_index`` are an error.
    """
    array, file_mode, _ = _open_array(path, None)
    if array.ndim == 3:
        if colors is None:
            raise DatasetError(f"{path}: an RGB colour mask needs a colour table (classes with "
                               f"colours); got none")
        return _from_colors(path, array[..., :3], colors, ignore_index)
    if file_mode not in ("L", "P", "I", "I;16"):
        raise DatasetError(f"{path}: mask mode {file_mode!r} is not an index, palette or RGB image")
    mask = torch.from_numpy(array.astype(np.int64))
    if values is not None:
        mask = _map_values(path, mask, values)
    present = np.flatnonzero(np.bincount(mask.numpy().ravel().clip(min=-1) + 1)) - 1
    found = [int(v) for v in present if not 0 <= v < num_classes and v != ignore_index][:5]
    if found:
        raise DatasetError(f"{path}: label values {found} are outside the classes 0..{num_classes - 1} "
                           f"(and are not the ignore value {ignore_index})")
    return mask


def _map_values(path: Path, raw: torch.Tensor, values: dict[int, int]) -> torch.Tensor:
    lut = np.full(max(256, int(raw.max()) + 1), -1, dtype=np.int64)
    for value, cls in values.items():
        lut[value] = cls
    mask = torch.from_numpy(lut[raw.numpy()])
    present = np.flatnonzero(np.bincount(raw.numpy().ravel()))
    found = [int(v) for v in present if lut[v] < 0][:5]
    if found:
        raise DatasetError(f"{path}: mask values {found} are not in the value table "
                           f"{sorted(values)}")
    return mask


def _from_colors(path: Path, rgb: np.ndarray, colors: Sequence[tuple[int, int, int]],
                 ignore_index: int) -> torch.Tensor:
    code = (rgb[..., 0].astype(np.int64) << 16) | (rgb[..., 1].astype(np.int64) << 8) | rgb[..., 2]
    mask = np.full(code.shape, -1, dtype=np.int64)
    for cls, (r, g, b) in enumerate(colors):
        mask[code == ((r << 16) | (g << 8) | b)] = cls
    if (mask < 0).any():
        y, x = np.argwhere(mask < 0)[0]
        raise DatasetError(f"{path}: colour {tuple(int(c) for c in rgb[y, x])} at (x={x}, y={y}) "
                           f"is not in the colour table of {len(colors)} classes")
    return torch.from_numpy(mask)


class SkipBad:
    """Validate every sample once and keep the good ones (the ``skip_bad=True`` option).

    ``skipped`` lists ``(key, message)`` for each sample left out; a warning says how many.
    """

    def _check_all(self, items: list, load, where: str,
                   skipped: list[tuple[str, str]] | None = None) -> tuple[list, list[tuple[str, str]]]:
        """Load each item; ``skipped`` holds items already rejected (e.g. unparsable rows)."""
        good, skipped = [], list(skipped or [])
        total = len(items) + len(skipped)
        for item in items:
            try:
                load(item)
                good.append(item)
            except DatasetError as err:
                skipped.append((str(item[0] if isinstance(item, tuple) else item), str(err)))
        if skipped:
            log.warning("%s: skipped %d bad sample(s) of %d: %s%s", where, len(skipped), total,
                        "; ".join(msg for _, msg in skipped[:3]),
                        " ..." if len(skipped) > 3 else "")
        if not good:
            raise DatasetError(f"{where}: every one of the {total} samples is bad")
        return good, skipped
