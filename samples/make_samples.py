"""Generate the binary sample documents (atlas-report.pdf, onboarding.docx) deterministically.

The samples folder holds small documents written for docqa's demo and tests: an engineering
handbook (Markdown), a fictional project report (PDF), a FAQ page (HTML), a vacation policy in
Portuguese (Markdown), a Portuguese intranet page of short sections, each a heading and a paragraph
(laboratorio-ia.html, written by hand) and an onboarding guide (DOCX). All content is original and fictional;
each holds concrete facts that tests ask about. Run `python samples/make_samples.py` to rebuild.
"""

from __future__ import annotations

import datetime as dt
import io
import zipfile
from pathlib import Path

import docx
from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import getSampleStyleSheet
from reportlab.platypus import PageBreak, Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

HERE = Path(__file__).resolve().parent
FIXED_TIME = dt.datetime(2024, 1, 15, 9, 0, 0)

ATLAS_PAGES = [
    [
        ("h1", "Project Atlas: Final Report"),
        ("p", "Project Atlas built Atlas-7B, a language model for answering questions about "
              "internal engineering documents. This report summarises the data, the training run, "
              "the evaluation and the open risks. The project ran from February to June and was "
              "led by Marta Okafor."),
        ("h2", "Goals"),
        ("p", "The goal was a model small enough to serve on a single GPU while answering at least "
              "80 percent of the questions in the internal benchmark correctly. A second goal was "
              "to keep the cost of the whole project under 120,000 euros."),
    ],
    [
        ("h1", "Training"),
        ("p", "The model was trained on 64 GPUs for 9 days. The training corpus held 410 billion "
              "tokens, of which 35 billion came from internal documentation and the rest from "
              "licensed public text. We used a learning rate of 0.0003 with a cosine schedule."),
        ("h2", "Infrastructure"),
        ("p", "Training ran in the Helsinki data centre. Two hardware failures interrupted the run; "
              "each time training resumed from the last checkpoint, which was written every 500 "
              "steps, and less than two hours of work was lost in total."),
    ],
    [
        ("h1", "Evaluation"),
        ("p", "We evaluated Atlas-7B on three benchmarks. The table below compares it with the "
              "baseline model the team used before the project started."),
        ("table", [["Benchmark", "Atlas-7B", "Baseline"],
                   ["Internal QA", "84.2", "71.5"],
                   ["Code search", "66.0", "58.3"],
                   ["Policy lookup", "91.7", "88.9"]]),
        ("p", "Atlas-7B met the 80 percent goal on the internal benchmark with a score of 84.2."),
    ],
    [
        ("h1", "Risks and next steps"),
        ("p", "The largest open risk is stale knowledge: documents change every week, so answers "
              "must always cite their source passage. The team recommends a retrieval step in "
              "front of the model and a quarterly refresh of the training data."),
        ("p", "The total cost of the project was 97,500 euros, below the budget. The next phase, "
              "Project Meridian, starts in September."),
    ],
]


class _OutlinedDoc(SimpleDocTemplate):
    """Adds a PDF bookmark for every heading, so the PDF has an outline tree."""

    def afterFlowable(self, flowable):  # noqa: N802 - reportlab's hook name
        level = {"Heading1": 0, "Heading2": 1}.get(getattr(flowable, "style", None) and flowable.style.name)
        if level is None:
            return
        self._outline_count = getattr(self, "_outline_count", 0) + 1
        key = f"heading-{self._outline_count}"  # stable names keep the file byte-identical
        self.canv.bookmarkPage(key)
        self.canv.addOutlineEntry(flowable.getPlainText(), key, level=level)


def make_pdf(path: Path) -> None:
    """Write the four-page Project Atlas report."""
    styles = getSampleStyleSheet()
    story = []
    for number, page in enumerate(ATLAS_PAGES):
        if number:
            story.append(PageBreak())
        for kind, content in page:
            if kind == "table":
                table = Table(content)
                table.setStyle(TableStyle([("GRID", (0, 0), (-1, -1), 0.5, colors.grey)]))
                story += [table, Spacer(1, 12)]
            else:
                style = {"h1": "Heading1", "h2": "Heading2", "p": "BodyText"}[kind]
                story.append(Paragraph(content, styles[style]))
    doc = _OutlinedDoc(str(path), pagesize=A4, invariant=1, title="Project Atlas: Final Report",
                       author="Northwind Research", showBoundary=0)
    doc.build(story)


def make_docx(path: Path) -> None:
    """Write the onboarding guide with headings, paragraphs and a table."""
    document = docx.Document()
    document.core_properties.title = "Welcome to Northwind"
    document.core_properties.author = "Northwind People Team"
    document.core_properties.created = FIXED_TIME
    document.core_properties.modified = FIXED_TIME
    document.core_properties.last_modified_by = "make_samples.py"
    document.core_properties.revision = 1
    document.add_heading("Welcome to Northwind", level=0)
    document.add_paragraph("This guide covers your first two weeks at Northwind. Your onboarding "
                           "buddy will go through it with you on your first morning.")
    document.add_heading("Your first day", level=1)
    document.add_paragraph("Arrive at the Lisbon office at 9:30. Reception gives you a badge and "
                           "a laptop that is already enrolled in device management.")
    document.add_heading("Accounts", level=2)
    document.add_paragraph("Your single sign-on account is created before you start. Set up "
                           "two-factor authentication with a hardware key within 48 hours.")
    document.add_heading("Your first two weeks", level=1)
    document.add_paragraph("Each week has a short checklist. Tick items off in the onboarding "
                           "tracker so your manager can see your progress.")
    table = document.add_table(rows=1, cols=3)
    table.style = "Table Grid"
    for cell, text in zip(table.rows[0].cells, ["Week", "Task", "Owner"]):
        cell.text = text
    for row in [["1", "Ship a small fix to production", "You"],
                ["1", "Shadow an on-call shift", "Buddy"],
                ["2", "Present your team's service at demo day", "You"]]:
        for cell, text in zip(table.add_row().cells, row):
            cell.text = text
    document.add_heading("Benefits", level=1)
    document.add_paragraph("The gym allowance is 40 euros per month and starts in your second "
                           "month. Lunch is provided in the office on Tuesdays and Thursdays.")
    buffer = io.BytesIO()
    document.save(buffer)
    path.write_bytes(_with_fixed_zip_times(buffer.getvalue()))


def _with_fixed_zip_times(data: bytes) -> bytes:
    """Rewrite a zip with fixed entry timestamps: python-docx stamps the current time."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as source, zipfile.ZipFile(out, "w") as target:
        for info in source.infolist():
            fixed = zipfile.ZipInfo(info.filename, date_time=FIXED_TIME.timetuple()[:6])
            fixed.compress_type = zipfile.ZIP_DEFLATED
            target.writestr(fixed, source.read(info))
    return out.getvalue()


if __name__ == "__main__":
    make_pdf(HERE / "atlas-report.pdf")
    make_docx(HERE / "onboarding.docx")
