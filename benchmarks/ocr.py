"""OCR quality and speed: the character error rate on ../shared's skewed scan, with and without the deskew step,
at each render resolution, the seconds a page takes, and what every scanned PDF of ../shared/pdfs yields.

The scan is ocrmypdf's skew.pdf (one letter page, about 1.8° off), its ground truth linn.txt; the CER is the edit
distance over the truth's length, whitespace runs counted as one (tests/cer.py). Each configuration is read
--repeat times, alternating, and the best time kept (the dev VM is shared). Tesseract runs as docqa runs it: one
OpenMP thread (ingest/parsers/ocr.py says why).

    .venv/bin/python benchmarks/ocr.py [--dpis 150,200,300] [--repeat 2] [--json]
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

import pypdfium2  # noqa: E402

from cer import character_error_rate  # noqa: E402  (tests/cer.py)
from ingest.parsers import parse_bytes  # noqa: E402
from ingest.parsers.ocr import OcrOptions, configured, read_page, render  # noqa: E402

PDFS = ROOT.parent / "shared" / "pdfs"
SCAN, TRUTH = PDFS / "ocrmypdf_OCRmyPDF" / "skew.pdf", PDFS / "ocrmypdf_OCRmyPDF" / "linn.txt"


def read_scan(dpi: int, deskew: bool) -> tuple[float, float, float]:
    """(CER, seconds to render, seconds to straighten and read) for the scan at `dpi`."""
    started = time.perf_counter()
    image = render(pypdfium2.PdfDocument(SCAN.read_bytes()), 0, dpi)
    rendered = time.perf_counter()
    with configured(OcrOptions(dpi=dpi, deskew=deskew)):
        text = read_page(image, 1, 1)
    return character_error_rate(text, TRUTH.read_text(encoding="utf-8")), rendered - started, time.perf_counter() - rendered


def scanned_pdfs() -> list[dict[str, object]]:
    """Each MANIFEST.tsv file noted as a scan: its pages, the pages OCR'd and the characters of text obtained."""
    with open(PDFS / "MANIFEST.tsv", newline="", encoding="utf-8") as f:
        rows = [r for r in csv.DictReader(f, delimiter="\t") if "scan" in r["special"].lower()]
    found = []
    for row in rows:
        document = parse_bytes((PDFS / row["local_path"]).read_bytes(), row["local_path"])
        found.append({"file": row["local_path"], "pages": document.pages, "ocr_pages": document.ocr_pages,
                      "chars": len(document.text), "ocr_chars": sum(len(s.text) for s in document.sections if s.ocr)})
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dpis", default="150,200,300")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    runs: dict[tuple[int, bool], list[tuple[float, float, float]]] = {}
    for _ in range(args.repeat):
        for dpi in map(int, args.dpis.split(",")):
            for deskew in (True, False):
                runs.setdefault((dpi, deskew), []).append(read_scan(dpi, deskew))
    table = [{"dpi": dpi, "deskew": deskew, "cer": round(min(r[0] for r in found), 4),
              "render_s": round(min(r[1] for r in found), 2), "ocr_s": round(min(r[2] for r in found), 2)}
             for (dpi, deskew), found in runs.items()]
    scans = scanned_pdfs()
    if args.json:
        print(json.dumps({"skew": table, "scanned_pdfs": scans}, indent=2))
        return
    print("skew.pdf   dpi  deskew   CER     render s  deskew+OCR s")
    for row in table:
        print(f"{row['dpi']:>13}  {'yes' if row['deskew'] else 'no':>6}  {row['cer']:6.2%}  {row['render_s']:8.2f}  {row['ocr_s']:12.2f}")
    for scan in scans:
        print(f"{scan['file']}: {scan['pages']} page(s), OCR'd {scan['ocr_pages']}, {scan['chars']} chars"
              f" ({scan['ocr_chars']} by OCR)")


if __name__ == "__main__":
    main()
