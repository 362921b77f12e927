"""Opening images that came from someone else: a pixel budget, checked before decoding.

A PNG of a few hundred KB can declare 144 megapixels (2.7 GB once decoded). Pillow reads
the size from the header in `Image.open` and decodes only on `load()`, so the budget is
checked in between: an image over it is refused with a reason, never decoded. Pillow's
own guard (`DecompressionBombError` at twice `Image.MAX_IMAGE_PIXELS`) is a process-wide
setting and a traceback; this one is per call and a message.

Memory bound: one decoded image holds at most 4 bytes per pixel in any Pillow mode
(RGBA, CMYK, I, F), so at most 4 x MAX_PIXELS bytes = 160 MB. Kolors panels are at most
2048x2048 (4.2 MP), upscaled by `refine` to at most MAX_PIXELS (kolorsc check says so).
PIL is imported inside the functions.
"""

from __future__ import annotations

import re
import warnings
from typing import BinaryIO

MAX_PIXELS = 40_000_000  # ~6300 x 6300
BYTES_PER_PIXEL = 4  # the widest Pillow mode


class ImageProblem(ValueError):
    """The image cannot be used: over the pixel budget, or unreadable. str() says why."""

    def __init__(self, message: str, too_large: bool = False):
        super().__init__(message)
        self.too_large = too_large


def over_budget(width: int, height: int, max_pixels: int = MAX_PIXELS) -> str | None:
    pixels = int(width) * int(height)
    if pixels > max_pixels:
        return (f"{width}x{height} is {pixels / 1e6:.1f} megapixels, over the pixel budget of "
                f"{max_pixels / 1e6:g} megapixels: left out, never decoded")
    return None


def open_checked(source: str | BinaryIO, max_pixels: int = MAX_PIXELS):
    """Open `source` (a path or a binary file object), check its size against the budget
    from the header, then decode it fully (a truncated file fails here, not later).
    Returns the loaded PIL image; raises ImageProblem saying why it cannot be used."""
    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our budget decides
            im = Image.open(source)
    except Image.DecompressionBombError as exc:
        raise ImageProblem(_bomb(exc, max_pixels), too_large=True) from None
    except Exception as exc:  # noqa: BLE001 - Pillow raises many kinds for files it cannot identify
        raise ImageProblem(f"unreadable image ({type(exc).__name__}: {exc})") from None
    why = over_budget(im.width, im.height, max_pixels)
    if why:
        im.close()
        raise ImageProblem(why, too_large=True)
    if im.width < 1 or im.height < 1:
        im.close()
        raise ImageProblem("empty image")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im.load()
    except Exception as exc:  # noqa: BLE001 - truncated data, bad CRC, decoder errors...
        im.close()
        raise ImageProblem(f"unreadable image ({type(exc).__name__}: {exc})") from None
    return im


def check_file(path, max_pixels: int = MAX_PIXELS) -> str | None:
    """None when the image at `path` decodes completely within the budget, else why not.
    The pixels are released before returning."""
    try:
        im = open_checked(str(path), max_pixels)
    except ImageProblem as exc:
        return str(exc)
    except OSError as exc:
        return f"cannot be read ({exc.strerror or exc})"
    im.close()
    return None


def header_problem(path, max_pixels: int = MAX_PIXELS) -> ImageProblem | None:
    """Cheap check without decoding the pixels: None when Pillow identifies the file, its
    structure verifies and its declared size is within the budget, else the problem."""
    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(str(path)) as im:
                why = over_budget(im.width, im.height, max_pixels)
                if why:
                    return ImageProblem(why, too_large=True)
                im.verify()
    except Image.DecompressionBombError as exc:
        return ImageProblem(_bomb(exc, max_pixels), too_large=True)
    except Exception as exc:  # noqa: BLE001 - Pillow raises many kinds for files it cannot identify
        return ImageProblem(f"not an image ({type(exc).__name__}: {exc})")
    return None


def _bomb(exc: Exception, max_pixels: int) -> str:
    """Pillow refused before we saw the size (over twice its own limit): its message has it."""
    found = re.search(r"\((\d+) pixels\)", str(exc))
    size = f"{int(found.group(1)) / 1e6:.1f} megapixels, " if found else ""
    return f"{size}over the pixel budget of {max_pixels / 1e6:g} megapixels: left out, never decoded"
