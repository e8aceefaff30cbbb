"""Image parser: a picture of text (a scan, a photo, each page of a multi-page TIFF) read by OCR (ocr.py)."""

from __future__ import annotations

import io

from PIL import Image, ImageSequence, UnidentifiedImageError

from indexes.errors import LimitExceeded, ParseError

from . import ocr
from .base import DocumentBuilder, ParsedDocument
from .text import split_paragraphs


class ImageParser:
    """PNG, JPEG and TIFF: one page per frame, one OCR'd section per paragraph."""

    name = "Image (PNG, JPEG, TIFF)"
    suffixes = (".png", ".jpg", ".jpeg", ".tif", ".tiff")

    def parse(self, data: bytes, name: str) -> ParsedDocument:
        """OCR every frame; without OCR an image has no text to give."""
        settings = ocr.options()
        if not settings.active:
            raise ParseError(settings.unavailable())
        try:
            image = Image.open(io.BytesIO(data))
        except UnidentifiedImageError as e:
            raise ParseError("invalid image: not a PNG, JPEG or TIFF Pillow can read") from e
        except Image.DecompressionBombError as e:
            raise LimitExceeded(f"image too large to OCR: {e}") from e
        builder = DocumentBuilder()
        with image:
            pages = getattr(image, "n_frames", 1)
            for index, frame in enumerate(ImageSequence.Iterator(image)):
                if frame.width * frame.height > ocr.MAX_PIXELS:  # checked on the header, before decoding
                    raise LimitExceeded(f"image too large to OCR: page {index + 1} is {frame.width}×{frame.height}"
                                        f" pixels (limit {ocr.MAX_PIXELS:,})")
                for paragraph in split_paragraphs(ocr.read_page(frame, index + 1, pages)):
                    builder.add(paragraph, page=index + 1, ocr=True)
        if not builder.sections:
            raise ParseError("no extractable text: OCR found none in the image")
        return builder.build(pages=pages)
