"""EPUB, ODT and e-mail files built in the test, as their producers write them (zipfile, odfpy, stdlib email)."""

from __future__ import annotations

import io
import zipfile
from email.message import EmailMessage

from odf.dc import Title
from odf.opendocument import OpenDocumentText
from odf.table import Table, TableCell, TableColumn, TableHeaderRows, TableRow
from odf.text import H, List, ListItem, P, S
from reportlab.pdfgen import canvas

CONTAINER = b"""<?xml version="1.0"?>
<container version="1.0" xmlns="urn:oasis:names:tc:opendocument:xmlns:container">
  <rootfiles><rootfile full-path="OEBPS/content.opf" media-type="application/oebps-package+xml"/></rootfiles>
</container>"""


def epub_bytes(chapters: list[tuple[str, str | None, str]], title: str = "The Pump Book", ncx: bool = False) -> bytes:
    """An EPUB 3: `chapters` are (file name, table-of-contents title or None for no entry, XHTML body), in spine
    order; a nav document (not in the spine) lists the titled ones, or with `ncx` an EPUB 2 NCX does."""
    toc_item = ('<item id="ncx" href="toc.ncx" media-type="application/x-dtbncx+xml"/>' if ncx else
                '<item id="nav" href="nav.xhtml" media-type="application/xhtml+xml" properties="nav"/>')
    manifest = "".join(
        f'<item id="c{i}" href="text/{name}" media-type="application/xhtml+xml"/>'
        for i, (name, _, _) in enumerate(chapters)
    )
    spine = "".join(f'<itemref idref="c{i}"/>' for i in range(len(chapters)))
    opf = f"""<?xml version="1.0" encoding="utf-8"?>
<package xmlns="http://www.idpf.org/2007/opf" version="3.0" unique-identifier="id">
  <metadata xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:identifier id="id">urn:x</dc:identifier>
    <dc:title>{title}</dc:title><dc:language>en</dc:language></metadata>
  <manifest>{toc_item}{manifest}</manifest>
  <spine{' toc="ncx"' if ncx else ''}>{spine}</spine>
</package>"""
    links = "".join(f'<li><a href="text/{name}">{toc}</a></li>' for name, toc, _ in chapters if toc)
    nav = f"""<?xml version="1.0" encoding="utf-8"?>
<html xmlns="http://www.w3.org/1999/xhtml" xmlns:epub="http://www.idpf.org/2007/ops">
<head><title>Contents</title></head><body><nav epub:type="toc"><h1>Contents</h1><ol>{links}</ol></nav></body></html>"""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        z.writestr("mimetype", "application/epub+zip", compress_type=zipfile.ZIP_STORED)
        z.writestr("META-INF/container.xml", CONTAINER, compress_type=zipfile.ZIP_DEFLATED)
        z.writestr("OEBPS/content.opf", opf, compress_type=zipfile.ZIP_DEFLATED)
        if ncx:
            points = "".join(f'<navPoint id="p{i}"><navLabel><text>{toc}</text></navLabel><content src="text/{name}"/>'
                             "</navPoint>" for i, (name, toc, _) in enumerate(chapters) if toc)
            ncx_xml = f'<ncx xmlns="http://www.daisy.org/z3986/2005/ncx/"><navMap>{points}</navMap></ncx>'
            z.writestr("OEBPS/toc.ncx", ncx_xml)
        else:
            z.writestr("OEBPS/nav.xhtml", nav, compress_type=zipfile.ZIP_DEFLATED)
        for name, _, body in chapters:
            xhtml = (f'<?xml version="1.0" encoding="utf-8"?><html xmlns="http://www.w3.org/1999/xhtml"><head>'
                     f"<title>{title}</title></head><body>{body}</body></html>")
            z.writestr(f"OEBPS/text/{name}", xhtml, compress_type=zipfile.ZIP_DEFLATED)
    return buffer.getvalue()


PUMP_BOOK = [
    ("ch1.xhtml", "Chapter One: Installing", "<h1>Chapter One: Installing</h1><p>Mount the pump on a level base.</p>"
     "<h2>Wiring</h2><p>The red lead goes to terminal seven.</p>"),
    ("ch2.xhtml", None, "<h1>Servicing the Seals</h1><p>Replace the lip seals every 4,000 hours of running.</p>"),
]


def odt_bytes() -> bytes:
    """An ODT written by odfpy: a title, headings on two levels, a paragraph with a run of spaces, a list and a
    table with two declared header rows."""
    doc = OpenDocumentText()
    doc.meta.addElement(Title(text="Pump manual"))
    doc.text.addElement(H(outlinelevel=1, text="Installation"))
    paragraph = P(text="Mount the")
    paragraph.addElement(S(c=3))
    paragraph.addText("pump level.")
    doc.text.addElement(paragraph)
    doc.text.addElement(H(outlinelevel=2, text="Wiring"))
    items = List()
    for text in ("Red lead to terminal seven.", "Black lead to ground."):
        item = ListItem()
        item.addElement(P(text=text))
        items.addElement(item)
    doc.text.addElement(items)
    doc.text.addElement(H(outlinelevel=1, text="Revenue"))
    table = Table(name="Sales")
    table.addElement(TableColumn(numbercolumnsrepeated=2))
    header = TableHeaderRows()
    header.addElement(_row("Region", "Q3 revenue"))
    header.addElement(_row("", "in euros"))  # a second header row: stacked names
    table.addElement(header)
    table.addElement(_row("North", "4.2M"))
    table.addElement(_row("South", "3.1M"))
    doc.text.addElement(table)
    buffer = io.BytesIO()
    doc.write(buffer)
    return buffer.getvalue()


def _row(*cells: str) -> TableRow:
    row = TableRow()
    for text in cells:
        cell = TableCell()
        cell.addElement(P(text=text))
        row.addElement(cell)
    return row


def pdf_bytes(lines: list[str]) -> bytes:
    """A one-page PDF with these lines of text (reportlab), byte for byte the same for the same lines."""
    buffer = io.BytesIO()
    page = canvas.Canvas(buffer, invariant=True)  # the same bytes every time: no date or random id
    for i, line in enumerate(lines):
        page.drawString(72, 760 - 16 * i, line)
    page.showPage()
    page.save()
    return buffer.getvalue()


INVOICE_FACT = "Invoice 7731 for the Kestrel turbine overhaul totals 48,900 euros, due on 14 March."
NOTES_FACT = "The spare impeller for the Osprey pump ships from the Porto warehouse."


def eml_bytes(*, notes: bool = True, body: str = "Please find the invoice and the shipping notes attached.") -> bytes:
    """A message with a plain body and its HTML alternative, a PDF attachment (the invoice), a .txt attachment
    (the notes; left out with `notes=False`) and an unsupported .bin attachment."""
    message = EmailMessage()
    message["Subject"] = "Kestrel overhaul invoice"
    message["From"] = "Ana Souza <ana@example.org>"
    message["To"] = "ops@example.org, finance@example.org"
    message["Cc"] = "Rui <rui@example.org>"
    message["Date"] = "Tue, 03 Mar 2026 09:15:00 +0000"
    message["Message-ID"] = "<kestrel-7731@example.org>"
    message.set_content(body + "\n\nBest,\nAna\n")
    message.add_alternative(f"<html><body><p>{body}</p><p>HTML-only sentence.</p></body></html>", subtype="html")
    message.add_attachment(pdf_bytes([INVOICE_FACT]), maintype="application", subtype="pdf", filename="invoice.pdf")
    if notes:
        message.add_attachment(NOTES_FACT.encode(), maintype="text", subtype="plain", filename="notes.txt")
    message.add_attachment(bytes(range(256)), maintype="application", subtype="octet-stream", filename="firmware.bin")
    return message.as_bytes()
