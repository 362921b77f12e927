"""A story's panels decoded once, for every output of the story to share.

The storyboard PNG needs each panel as a cell-sized thumbnail, the PDF as a JPEG of at most
PDF_IMAGE_PX, the panel PNGs only the stored bytes (text chunks are added without touching
the pixels, see pngmeta.py). Each emitter used to decode and resize every panel itself; now
`prepare_panels` decodes each panel once and every derived image (thumbnail, JPEG) is made
once, on first use, and kept. A derived image is a pure function of the panel's bytes and
the requested size, so keeping it cannot change any output's bytes.

Emitters accept either the panels' PNG bytes or a PreparedPanels value; a build that emits
several outputs of one story should prepare once and pass the value to each. Bytes given
to separate emitter calls still share the work: the last MEMO_PANELS prepared panels are
kept by the sha256 of their PNG (two stories' worth), so a caller that passes bytes to
each emitter decodes each panel once too.
"""

from __future__ import annotations

import hashlib
import io
import threading
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from PIL.Image import Image

PDF_IMAGE_PX = 768  # longest side of a panel in the PDF: sharp in print at ~15 cm, small file
JPEG_QUALITY = 90
MEMO_PANELS = 16


@dataclass(frozen=True)
class PreparedPanel:
    """One panel: its PNG bytes, its pixels (RGB, decoded once), and the images made from them."""

    png: bytes
    image: "Image"  # shared: never mutate it
    _made: dict = field(default_factory=dict, compare=False, repr=False)

    @property
    def size(self) -> tuple[int, int]:
        return self.image.size

    def fitted(self, box: tuple[int, int]) -> "Image":
        """The panel scaled to fit inside `box` (w, h), aspect kept (LANCZOS: deterministic
        and sharp). Made once per box size. A box at most half the PDF's image is resampled
        from that image (made for the PDF anyway, and a quarter of the pixels to read);
        which source a box uses depends only on sizes, so the bytes never depend on the
        order the outputs are made in."""
        key = ("fit", box)
        if key not in self._made:
            from PIL import Image

            size = _fit(self.image.size, box)
            pdf_size = _fit(self.image.size, (PDF_IMAGE_PX, PDF_IMAGE_PX), enlarge=False)
            if size == self.image.size:
                made = self.image
            elif pdf_size != self.image.size and 2 * size[0] <= pdf_size[0] and 2 * size[1] <= pdf_size[1]:
                made = self.fitted(pdf_size).resize(size, Image.Resampling.LANCZOS)
            else:
                made = self.image.resize(size, Image.Resampling.LANCZOS)
            self._made[key] = made
        return self._made[key]

    def pdf_image(self) -> "Image":
        """The panel at most PDF_IMAGE_PX on its longest side (never enlarged)."""
        return self.fitted(_fit(self.image.size, (PDF_IMAGE_PX, PDF_IMAGE_PX), enlarge=False))

    def jpeg(self) -> bytes:
        """Baseline JPEG of pdf_image(). reportlab passes JPEG through as DCT: ~10x smaller
        than Flate for rendered images; Pillow's encoder is deterministic at fixed settings."""
        if "jpeg" not in self._made:
            out = io.BytesIO()
            self.pdf_image().save(out, format="JPEG", quality=JPEG_QUALITY, optimize=False, progressive=False)
            self._made["jpeg"] = out.getvalue()
        return self._made["jpeg"]


def _fit(size: tuple[int, int], box: tuple[int, int], enlarge: bool = True) -> tuple[int, int]:
    """`size` scaled to fit inside `box`, aspect kept (not enlarged unless `enlarge`)."""
    scale = min(box[0] / size[0], box[1] / size[1])
    if not enlarge:
        scale = min(scale, 1.0)
    return max(1, round(size[0] * scale)), max(1, round(size[1] * scale))


@dataclass(frozen=True)
class PreparedPanels:
    """A story's panels, in panel order."""

    panels: tuple[PreparedPanel, ...]

    def __len__(self) -> int:
        return len(self.panels)

    def __iter__(self) -> Iterator[PreparedPanel]:
        return iter(self.panels)

    def __getitem__(self, i: int) -> PreparedPanel:
        return self.panels[i]

    @property
    def pngs(self) -> list[bytes]:
        return [p.png for p in self.panels]


def decode_rgb(png: bytes) -> "Image":
    from PIL import Image

    with Image.open(io.BytesIO(png)) as im:
        im.load()
        return im if im.mode == "RGB" else im.convert("RGB")


_memo: OrderedDict[str, PreparedPanel] = OrderedDict()
_memo_lock = threading.Lock()


def prepare_panel(png: bytes) -> PreparedPanel:
    """The panel decoded, or the one prepared recently from the same bytes."""
    key = hashlib.sha256(png).hexdigest()
    with _memo_lock:
        if key in _memo:
            _memo.move_to_end(key)
            return _memo[key]
    panel = PreparedPanel(png, decode_rgb(png))
    with _memo_lock:
        _memo[key] = panel
        while len(_memo) > MEMO_PANELS:
            _memo.popitem(last=False)
    return panel


def prepare_panels(images: Sequence[bytes] | PreparedPanels) -> PreparedPanels:
    """Decode each panel once (a PreparedPanels value is returned as it is)."""
    if isinstance(images, PreparedPanels):
        return images
    return PreparedPanels(tuple(prepare_panel(png) for png in images))
