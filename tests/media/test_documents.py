"""Documents from strangers: text comes out within limits; bombs, locks and fakes get one line."""

from __future__ import annotations

import io
import zipfile

import docx
import pytest
from pypdf import PdfWriter
from pypdf.generic import DecodedStreamObject, DictionaryObject, NameObject

from opencomputer.bot.media.documents import DOCX_MIME, extract_text
from opencomputer.bot.media.limits import MediaError

PDF = "application/pdf"


def make_pdf(pages: list[str], *, password: str | None = None) -> bytes:
    """A real PDF: one Helvetica text line per page, written by pypdf."""
    writer = PdfWriter()
    font = writer._add_object(
        DictionaryObject(
            {
                NameObject("/Type"): NameObject("/Font"),
                NameObject("/Subtype"): NameObject("/Type1"),
                NameObject("/BaseFont"): NameObject("/Helvetica"),
            }
        )
    )
    resources = DictionaryObject({NameObject("/Font"): DictionaryObject({NameObject("/F1"): font})})
    streams: dict[str, object] = {}  # a repeated page shares its content stream
    for text in pages:
        page = writer.add_blank_page(612, 792)
        if text not in streams:
            stream = DecodedStreamObject()
            stream.set_data(f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode())
            streams[text] = writer._add_object(stream)
        page[NameObject("/Contents")] = streams[text]
        page[NameObject("/Resources")] = resources
    if password:
        writer.encrypt(password, algorithm="AES-128")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def make_docx(paragraphs: list[str], table: list[list[str]] | None = None) -> bytes:
    document = docx.Document()
    for text in paragraphs:
        document.add_paragraph(text)
    if table:
        grid = document.add_table(rows=len(table), cols=len(table[0]))
        for r, row in enumerate(table):
            for c, value in enumerate(row):
                grid.cell(r, c).text = value
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def test_pdf_text_is_extracted_page_by_page() -> None:
    result = extract_text(make_pdf(["Invoice 2026-114", "Total due: 420 EUR"]), PDF)
    assert result.text == "Invoice 2026-114\n\nTotal due: 420 EUR"
    assert (result.pages, result.truncated) == (2, False)


def test_ten_thousand_page_pdf_reads_only_the_first_pages() -> None:
    """Pages 20-29 carry text too: had they been extracted, the text would not end at page 19.

    (How long the page-tree walk takes is a benchmark question, not a test's: no clock here.)
    """
    big = make_pdf([f"page {i}" if i < 30 else "filler" for i in range(10_000)])
    result = extract_text(big, PDF, max_pages=20)
    assert result.pages == 10_000 and result.truncated
    assert result.text.splitlines()[-1] == "page 19"


def test_character_limit_cuts_and_says_so() -> None:
    result = extract_text(make_pdf(["A" * 80] * 30), PDF, max_chars=500)
    assert len(result.text) == 500 and result.truncated


def test_encrypted_pdf_is_one_clear_line() -> None:
    with pytest.raises(MediaError) as info:
        extract_text(make_pdf(["secret"], password="hunter2"), PDF)
    assert str(info.value) == "the PDF is password-protected; send a copy without the password"


def test_pdf_locked_only_against_copying_opens() -> None:
    writer_pdf = make_pdf(["open to all"], password="")
    assert extract_text(writer_pdf, PDF).text == "open to all"


@pytest.mark.parametrize(
    "data",
    [b"%PDF-1.7\n1 0 obj\n<<>>\nstream\n\xff\xfe garbage", b"not a pdf at all", b""],
)
def test_damaged_pdf_is_refused(data: bytes) -> None:
    with pytest.raises(MediaError, match=r"^the PDF is damaged and cannot be read \("):
        extract_text(data, PDF)


def test_docx_paragraphs_and_tables() -> None:
    data = make_docx(
        ["Minutes of the meeting", "Decided: ship it"], [["who", "what"], ["Ana", "QA"]]
    )
    assert extract_text(data, DOCX_MIME).text == (
        "Minutes of the meeting\nDecided: ship it\nwho\twhat\nAna\tQA"
    )


def test_docx_zip_bomb_is_refused_before_inflating() -> None:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        with archive.open("word/document.xml", "w", force_zip64=True) as part:
            zeros = b"\0" * 2**20
            for _ in range(64):  # 64 MB of zeros, about 64 KB compressed
                part.write(zeros)
    bomb = out.getvalue()
    assert len(bomb) < 200_000
    with pytest.raises(MediaError) as info:
        extract_text(bomb, DOCX_MIME)
    assert str(info.value) == (
        "the DOCX file unpacks to 64 MB in 2 parts, over the 50 MB limit (a zip bomb?)"
    )


def test_docx_with_entity_bomb_is_not_expanded() -> None:
    good = make_docx(["x"])
    laughs = (
        '<?xml version="1.0"?><!DOCTYPE w [<!ENTITY a "lol"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">'
        '<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;"><!ENTITY d "&c;&c;&c;&c;&c;&c;&c;&c;">]>'
    )
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(good)) as src, zipfile.ZipFile(out, "w") as dst:
        for item in src.infolist():
            body = src.read(item.filename)
            if item.filename == "word/document.xml":
                body = body.replace(b"<?xml version='1.0' encoding='UTF-8' standalone='yes'?>", b"")
                body = laughs.encode() + body.replace(b"<w:t>x</w:t>", b"<w:t>&d;</w:t>")
            dst.writestr(item, body)
    assert "lol" not in extract_text(out.getvalue(), DOCX_MIME).text


def test_zip_that_is_not_a_word_document() -> None:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("evil.exe", b"MZ")
    with pytest.raises(MediaError, match="not a Word document"):
        extract_text(out.getvalue(), DOCX_MIME)


@pytest.mark.parametrize(
    ("data", "mime", "expected"),
    [
        (b"# Title\n\nSome *markdown*", "text/markdown", "# Title\n\nSome *markdown*"),
        (b"name,qty\nApfel,3\n", "text/csv", "name,qty\nApfel,3\n"),
        (b"\xef\xbb\xbfdef f():\n    return 1\n", "text/x-python", "def f():\n    return 1\n"),
        ("Grüße aus Köln, schöne Straße".encode("cp1252"), "text/plain", "Grüße aus Köln"),
        (b'{"a": 1}', "application/json", '{"a": 1}'),
    ],
)
def test_text_files_and_their_charsets(data: bytes, mime: str, expected: str) -> None:
    assert extract_text(data, mime).text.startswith(expected)


def test_binary_posing_as_text_and_unknown_types_are_refused() -> None:
    with pytest.raises(MediaError, match="binary, not text"):
        extract_text(b"\x7fELF\x02\x01\x01\0\0\0" * 10, "text/plain")
    with pytest.raises(MediaError, match="application/x-msdownload cannot be read"):
        extract_text(b"MZ", "application/x-msdownload")


def test_pdf_claiming_a_million_pages_is_refused_without_walking_them() -> None:
    data = make_pdf(["one"]).replace(b"/Count 1", b"/Count 1000000")
    with pytest.raises(MediaError, match="has 1,000,000 pages, more than 20,000"):
        extract_text(data, PDF)
