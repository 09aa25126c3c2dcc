"""``enclave demo``: write the project's sample documents, ingest them, search them.

The samples are the project's own: a fictional company's handbook, policies and figures,
written here in several formats (Markdown, HTML, CSV, e-mail, and DOCX, XLSX, PPTX and
a two-page PDF generated with the same libraries users' files come from). Finance
documents are readable by the ``finance`` group only; the rest are public.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

from core.types import Principal

# (question, who asks): the same finance question as an employee outside finance and in it.
DEMO_SEARCHES: list[tuple[str, Principal]] = [
    ("How many days of paid leave do I get?", Principal("alice")),
    ("What is the hotel limit per night?", Principal("alice")),
    ("What is the hotel limit per night?", Principal("bob", groups=("finance",))),
    ("How long must passwords be?", Principal("bob", groups=("finance",))),
]

# Cited answers: one the public handbook answers, one only finance may read, one it cannot.
DEMO_QUESTIONS: list[tuple[str, Principal]] = [
    ("How many days of paid leave do employees get?", Principal("alice")),
    ("What is the hotel limit per night?", Principal("bob", groups=("finance",))),
    ("Who won the 1998 football world cup?", Principal("alice")),
]

HANDBOOK_MD = """\
# Northwind Robotics Employee Handbook

## Working hours

Core hours are 10:00 to 16:00 local time. Outside core hours, employees plan their own
day with their team. Remote work is allowed up to three days a week.

## Paid leave

Every employee receives 28 days of paid leave per calendar year. Up to five unused days
carry over to the next year and expire on 31 March.

## Equipment

New starters receive a laptop on their first day. Lost equipment must be reported to the
IT service desk within 24 hours.
"""

SECURITY_HTML = """\
<html><head><title>Information Security Policy</title></head><body>
<h1>Information Security Policy</h1>
<h2>Passwords</h2>
<p>Passwords must be at least 14 characters long and are never shared, not even with the
IT service desk. Multi-factor authentication is required for every company system.</p>
<h2>Reporting incidents</h2>
<p>Suspected phishing e-mails are forwarded to the security team, who answer within one
business hour.</p>
<table><tr><th>Severity</th><th>Response time</th></tr>
<tr><td>Critical</td><td>15 minutes</td></tr><tr><td>High</td><td>4 hours</td></tr></table>
</body></html>
"""

HOLIDAYS_CSV = """\
date,holiday,offices
2026-01-01,New Year's Day,all
2026-05-01,Labour Day,Berlin; Paris
2026-07-04,Independence Day,Boston
2026-12-25,Christmas Day,all
"""

WELCOME_EML = """\
From: people-team@northwind.example
To: all-staff@northwind.example
Subject: Welcome to the new intranet search
Date: Mon, 02 Nov 2026 09:00:00 +0000
Content-Type: text/plain; charset="utf-8"

Hello everyone,

The intranet search now answers questions from our own documents. It only shows you
documents you are allowed to read.

The People Team
"""

EXPENSES_PAGES = [
    [
        "Travel and Expense Policy",
        "Employees book travel through the travel desk at least 14 days in advance.",
        "Economy class is the default for flights under six hours.",
        "Hotel costs are reimbursed up to 180 euros per night in major cities.",
    ],
    [
        "Meals and approvals",
        "Meals are reimbursed up to 60 euros per day with receipts.",
        "Expenses above 1,000 euros need the approval of a finance director.",
        "Claims are submitted within 30 days of the trip.",
    ],
]


def write_samples(root: Path) -> dict[str, Path]:
    """Write the sample folders once; returns {"public": folder, "finance": folder}.

    Existing files are kept: Office writers stamp the time into the file, and a rewrite
    would make a second demo re-ingest what has not changed.
    """
    public, finance = root / "public", root / "finance"
    public.mkdir(parents=True, exist_ok=True)
    finance.mkdir(parents=True, exist_ok=True)
    writers = {
        public / "handbook.md": lambda p: p.write_text(HANDBOOK_MD),
        public / "security-policy.html": lambda p: p.write_text(SECURITY_HTML),
        public / "holidays.csv": lambda p: p.write_text(HOLIDAYS_CSV),
        public / "welcome.eml": lambda p: p.write_text(WELCOME_EML),
        public / "product-faq.docx": _write_docx,
        public / "all-hands-q3.pptx": _write_pptx,
        finance / "budget-2027.xlsx": _write_xlsx,
        finance / "expense-policy.pdf": lambda p: write_pdf(p, EXPENSES_PAGES),
    }
    for path, write in writers.items():
        if not path.exists():
            write(path)
    return {"public": public, "finance": finance}


def _write_docx(path: Path) -> None:
    import docx

    document = docx.Document()
    document.add_heading("Atlas Arm Product FAQ", level=1)
    document.add_heading("What payload can the Atlas arm lift?", level=2)
    document.add_paragraph("The Atlas arm lifts up to 12 kilograms at full reach of 1.4 metres.")
    document.add_heading("How often is maintenance due?", level=2)
    document.add_paragraph("Joints are inspected every 2,000 operating hours or once a year.")
    document.save(str(path))


def _write_pptx(path: Path) -> None:
    from pptx import Presentation

    deck = Presentation()
    for title, body in (
        ("Q3 All-Hands", "Revenue grew 18 percent over Q2. The Lisbon office opens in January."),
        ("Hiring", "We hired 42 engineers in Q3 and plan 30 more hires in Q4."),
    ):
        slide = deck.slides.add_slide(deck.slide_layouts[1])
        slide.shapes.title.text = title
        slide.placeholders[1].text = body
    deck.save(str(path))


def _write_xlsx(path: Path) -> None:
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    sheet.title = "Budget 2027"
    sheet.append(["Department", "Budget (EUR)", "Headcount"])
    for row in (("Engineering", 4_200_000, 61), ("Sales", 1_900_000, 24), ("Finance", 650_000, 7)):
        sheet.append(list(row))
    book.save(str(path))


def write_pdf(path: Path, pages: list[list[str]]) -> None:
    """A minimal PDF with a real text layer, one page per list of lines (Helvetica)."""

    def escape(text: str) -> str:
        return text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")

    objects: list[bytes] = []
    page_ids = [4 + 2 * i for i in range(len(pages))]
    objects.append(b"<< /Type /Catalog /Pages 2 0 R >>")
    kids = " ".join(f"{pid} 0 R" for pid in page_ids)
    objects.append(f"<< /Type /Pages /Kids [{kids}] /Count {len(pages)} >>".encode())
    objects.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    for i, lines in enumerate(pages):
        content_lines = ["BT", "/F1 18 Tf", "72 740 Td", f"({escape(lines[0])}) Tj", "/F1 11 Tf"]
        for line in lines[1:]:
            for wrapped in textwrap.wrap(line, 90):
                content_lines += ["0 -22 Td", f"({escape(wrapped)}) Tj"]
        content_lines.append("ET")
        stream = "\n".join(content_lines).encode("latin-1")
        objects.append(
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
            f"/Resources << /Font << /F1 3 0 R >> >> /Contents {page_ids[i] + 1} 0 R >>".encode()
        )
        objects.append(
            b"<< /Length " + str(len(stream)).encode() + b" >>\nstream\n" + stream
            + b"\nendstream"
        )
    path.write_bytes(pdf_bytes(objects))


def pdf_bytes(objects: list[bytes]) -> bytes:
    """A PDF file of numbered objects (object 1 the catalog), with its cross-reference."""
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    for offset in offsets:
        out += f"{offset:010d} 00000 n \n".encode()
    out += (
        f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n"
    ).encode()
    return bytes(out)
