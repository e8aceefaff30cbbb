"""OCR for pages without a text layer: render (pypdfium2), straighten, read with Tesseract.

Tesseract runs as a subprocess fed a PGM on stdin, with one OpenMP thread: on the 2-core dev machine under load
its default two threads took 66-113 s for a page that one thread reads in 10-12 s, and pytesseract (no way to
set the child's environment) spends 0.5 s per page writing a PNG to a temporary file (docs/quality.md, "OCR").
`--psm 1` lets Tesseract turn pages that lie on their side or upside down; a small skew it reads poorly (CER
2.9-4.6% on skew.pdf against about 1% straightened), so `deskewed` straightens the page first. The options and a
hook called before each page is read (the parser process uses it to give every OCR'd page its own time limit,
ingest/isolation.py) reach the parsers through `configured`, since a parser takes only bytes and a name.
"""

from __future__ import annotations

import io
import math
import os
import shutil
import subprocess
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from functools import cache
from typing import Callable, Iterator

import numpy as np
import pypdfium2 as pdfium
from PIL import Image, ImageOps

from indexes.errors import ParseError

INSTALL_HINT = "apt-get install tesseract-ocr tesseract-ocr-eng tesseract-ocr-por"
MAX_PIXELS = 60_000_000  # a PDF page drawn poster-sized is rendered smaller; an image file this big is refused
_SKEW_SIDE = 1000  # the skew is measured on a copy this many pixels on its longer side
_MAX_SKEW = 10.0  # degrees either way; a page turned further is Tesseract's to turn (by quarters)


@dataclass(frozen=True)
class OcrOptions:
    """Whether and how pages without a text layer are read. The defaults are those of `DOCQA_OCR__*`
    (service/settings.py takes them from here); OCR is on wherever the tesseract binary is installed."""

    enabled: bool = True
    languages: str = "eng+por"
    dpi: int = 300  # docs/quality.md, "OCR": 150-300 dpi read skew.pdf alike; 300 is Tesseract's own advice
    deskew: bool = True

    @property
    def active(self) -> bool:
        """Enabled, and Tesseract is there to do it."""
        return self.enabled and tesseract_installed()

    def unavailable(self) -> str:
        """Why pages without text stay unread (for files that are nothing but images)."""
        if not self.enabled:
            return "no extractable text: OCR is turned off (DOCQA_OCR__ENABLED)"
        return f"no extractable text: OCR needs Tesseract, which is not installed ({INSTALL_HINT})"


PageHook = Callable[[int, int], None]  # (page, pages), called before a page is OCR'd; may raise to stop the parse

_current: ContextVar[tuple[OcrOptions, PageHook | None]] = ContextVar("docqa_ocr", default=(OcrOptions(), None))


@contextmanager
def configured(options: OcrOptions, before_page: PageHook | None = None) -> Iterator[None]:
    """Parse with these OCR options, calling `before_page` before each page is OCR'd."""
    token = _current.set((options, before_page))
    try:
        yield
    finally:
        _current.reset(token)


def options() -> OcrOptions:
    """The OCR options of the parse in progress."""
    return _current.get()[0]


@cache
def tesseract_installed() -> bool:
    """Whether the tesseract binary is on PATH."""
    return shutil.which("tesseract") is not None


def read_page(image: Image.Image, page: int, pages: int) -> str:
    """Page `page` of `pages` as text: the hook is told, the image straightened and read in the set languages."""
    settings, before_page = _current.get()
    if before_page is not None:
        before_page(page, pages)
    straight = deskewed(_gray(image)) if settings.deskew else _gray(image)
    buffer = io.BytesIO()
    straight.save(buffer, format="PPM")
    command = ["tesseract", "stdin", "stdout", "-l", settings.languages, "--psm", "1"]
    dpi = straight.info.get("dpi")
    if dpi:
        command += ["--dpi", str(round(dpi[0]))]
    done = subprocess.run(command, input=buffer.getvalue(), capture_output=True,
                          env={**os.environ, "OMP_THREAD_LIMIT": "1"})
    if done.returncode:
        message = " ".join(done.stderr.decode("utf-8", "replace").split())[-300:]
        raise ParseError(f"OCR failed on page {page}: {message or f'tesseract exited with {done.returncode}'}")
    return done.stdout.decode("utf-8", "replace").replace("\f", "")


class PdfScans:
    """Reads the pages of a PDF that have no text layer, opening it with pypdfium2 once, for the first."""

    def __init__(self, data: bytes, pages: int) -> None:
        self._data, self._pages = data, pages
        self._pdf: pdfium.PdfDocument | None = None

    def read(self, index: int, warnings: list[str]) -> str:
        """Page `index` (0-based) as text; a page that cannot be rendered or read is a warning, not the file's end."""
        try:
            if self._pdf is None:
                self._pdf = pdfium.PdfDocument(self._data)
            image = render(self._pdf, index, options().dpi)
        except pdfium.PdfiumError as e:
            warnings.append(f"page {index + 1} could not be rendered for OCR: {str(e)[:200]}")
            return ""
        try:
            return read_page(image, index + 1, self._pages)
        except ParseError as e:
            warnings.append(e.detail)
            return ""


def render(pdf: pdfium.PdfDocument, index: int, dpi: int) -> Image.Image:
    """Page `index` of an open PDF in grey at `dpi`, or lower for a page too big to render so."""
    page = pdf[index]
    width, height = page.get_size()
    scale = min(dpi / 72, math.sqrt(MAX_PIXELS / max(width * height, 1.0)))
    image = page.render(scale=scale, grayscale=True).to_pil()
    image.info["dpi"] = (scale * 72, scale * 72)
    return image


def _gray(image: Image.Image) -> Image.Image:
    """Upright (EXIF orientation), on white where transparent, in grey."""
    dpi = image.info.get("dpi")
    image = ImageOps.exif_transpose(image)
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        image = image.convert("RGBA")
        image = Image.alpha_composite(Image.new("RGBA", image.size, "white"), image)
    image = image.convert("L")
    if dpi:
        image.info["dpi"] = dpi
    return image


def skew_angle(image: Image.Image) -> float:
    """The rotation (degrees, counter-clockwise) that lines the text up best: the one that makes the ink's row
    and column profiles sharpest (text lines run along rows, or along columns on a page on its side)."""
    small = image.copy()
    small.thumbnail((_SKEW_SIDE, _SKEW_SIDE))
    ink = Image.fromarray(((np.asarray(small) < 128) * 255).astype(np.uint8))

    def sharpness(angle: float) -> float:
        turned = np.asarray(ink.rotate(angle, resample=Image.Resampling.NEAREST), dtype=np.float64)
        return sum(float(np.sum(np.diff(turned.sum(axis=axis)) ** 2)) for axis in (0, 1))

    coarse = max(np.arange(-_MAX_SKEW, _MAX_SKEW + 0.25, 0.5), key=sharpness)
    return float(max(np.arange(coarse - 0.5, coarse + 0.55, 0.1), key=sharpness))


def deskewed(image: Image.Image) -> Image.Image:
    """The grey image turned by its skew angle (unchanged when it is straight to a tenth of a degree)."""
    angle = round(skew_angle(image), 1)
    if not angle:
        return image
    turned = image.rotate(angle, resample=Image.Resampling.BICUBIC, expand=True, fillcolor=255)
    turned.info = dict(image.info)
    return turned
