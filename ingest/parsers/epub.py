"""EPUB parser: the package is unpacked here (container.xml → the OPF → the spine), each chapter read as HTML.

EbookLib, the usual library, is AGPL-licensed, which docqa (MIT) cannot take on; the format is a zip of XML and
XHTML, so it is read with the zip guard (archive.py), defusedxml and the HTML parser's own walk (html.py).
"""

from __future__ import annotations

import posixpath
import zipfile
from urllib.parse import unquote
from xml.etree.ElementTree import Element

from indexes.errors import ParseError

from .archive import check_zip_bomb, read_member, xml_member
from .base import DocumentBuilder, ParsedDocument, squash
from .html import add_content, read_html

_DOCUMENT_TYPES = frozenset({"application/xhtml+xml", "text/html"})
_HEADINGS = "h1, h2, h3, h4, h5, h6"



def _resolve(base: str, href: str) -> str:
    """A package path from an href relative to the member `base` (fragment dropped, %-escapes undone)."""
    return posixpath.normpath(posixpath.join(posixpath.dirname(base), unquote(href.split("#", 1)[0])))


class EpubParser:
    """EPUB 2 and 3: one chapter per spine document (Section.page is its number), titled from the table of
    contents, else by its first heading."""

    name = "EPUB"
    suffixes = (".epub",)

    def parse(self, data: bytes, name: str) -> ParsedDocument:
        """Find the OPF, walk the spine in order, add each chapter under its title."""
        package = check_zip_bomb(data, "EPUB")
        container = xml_member(package, "META-INF/container.xml", "EPUB")
        rootfile = container.find(".//{*}rootfile")
        if rootfile is None or not rootfile.get("full-path"):
            raise ParseError("invalid EPUB: META-INF/container.xml names no package document")
        opf_path = posixpath.normpath(rootfile.get("full-path", ""))
        opf = xml_member(package, opf_path, "EPUB")
        manifest = {
            item.get("id"): item for item in opf.iterfind("{*}manifest/{*}item") if item.get("id") and item.get("href")
        }
        spine = opf.find("{*}spine")
        if spine is None:
            raise ParseError("invalid EPUB: the package document has no spine")
        builder = DocumentBuilder()
        toc = self._toc(package, opf_path, manifest, spine, builder)
        chapter = 0
        for ref in spine.iterfind("{*}itemref"):
            item = manifest.get(ref.get("idref"))
            if item is None or item.get("media-type") not in _DOCUMENT_TYPES:
                continue
            chapter += 1
            path = _resolve(opf_path, item.get("href", ""))
            try:
                tree = read_html(read_member(package, path, "EPUB"))
            except ParseError as e:
                builder.warnings.append(f"chapter {chapter} ({path}) skipped: {e.detail}")
                continue
            first = tree.css_first(_HEADINGS)
            add_content(builder, tree, page=chapter, top=toc.get(path) or (squash(first.text()) if first else None))
        if chapter == 0:
            raise ParseError("invalid EPUB: the spine lists no XHTML document")
        title = squash(opf.findtext("{*}metadata/{*}title")) or None
        return builder.build(title=title, pages=chapter, unit="chapter")

    @staticmethod
    def _toc(
        package: zipfile.ZipFile, opf_path: str, manifest: dict[str | None, Element], spine: Element,
        builder: DocumentBuilder,
    ) -> dict[str, str]:
        """Chapter titles by package path, from the EPUB 3 nav document or else the EPUB 2 NCX (first entry wins)."""
        titles: dict[str, str] = {}
        nav = next((i for i in manifest.values() if "nav" in (i.get("properties") or "").split()), None)
        ncx = manifest.get(spine.get("toc"))
        try:
            if nav is not None:
                nav_path = _resolve(opf_path, nav.get("href", ""))
                tree = read_html(read_member(package, nav_path, "EPUB"))
                navs = tree.css("nav")
                toc = next((n for n in navs if "toc" in (n.attributes.get("epub:type") or "")), None)
                toc = toc or (navs[0] if navs else None)
                for link in toc.css("a[href]") if toc is not None else ():
                    if text := squash(link.text()):
                        titles.setdefault(_resolve(nav_path, link.attributes.get("href") or ""), text)
            elif ncx is not None:
                ncx_path = _resolve(opf_path, ncx.get("href", ""))
                root = xml_member(package, ncx_path, "EPUB")
                for point in root.iterfind(".//{*}navPoint"):
                    content, text = point.find("{*}content"), squash(point.findtext("{*}navLabel/{*}text"))
                    if content is not None and content.get("src") and text:
                        titles.setdefault(_resolve(ncx_path, content.get("src", "")), text)
        except ParseError as e:  # a broken table of contents costs the titles, not the book
            builder.warnings.append(f"table of contents skipped: {e.detail}")
        return titles
