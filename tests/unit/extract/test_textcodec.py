# ruff: noqa: RUF001  (the Cyrillic in the test texts is meant)
from __future__ import annotations

import codecs
from pathlib import Path

import pytest

from docmill.extract.pipeline import extract_path
from docmill.extract.textcodec import DecodedText, decode, detect_bom, looks_like_text

RUSSIAN = (
    "В гимназии он не был в числе первых учеников, но учился прилежно и "
    "прочитал всё, что было в библиотеке его отца. "
) * 4
FRENCH = (
    "Le théâtre de Molière est joué partout en Europe ; ses comédies, écrites "
    "en français élégant, décrivent les mœurs d'une époque révolue. "
) * 3
JAPANESE = "コンソール アプリケーションを作成して、ファイルの内容を表示します。" * 3


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        pytest.param(
            codecs.BOM_UTF32_LE + "hi".encode("utf-32-le"), "utf-32-le", id="utf-32-le"
        ),
        pytest.param(
            codecs.BOM_UTF16_LE + "hi".encode("utf-16-le"), "utf-16-le", id="utf-16-le"
        ),
        pytest.param(
            codecs.BOM_UTF16_BE + "hi".encode("utf-16-be"), "utf-16-be", id="utf-16-be"
        ),
        pytest.param(codecs.BOM_UTF8 + b"hi", "utf-8", id="utf-8"),
    ],
)
def test_bom_decides_the_encoding_and_is_not_part_of_the_text(
    data: bytes, expected: str
) -> None:
    assert decode(data) == DecodedText("hi", expected, bom=expected)


def test_utf32_mark_is_preferred_to_the_utf16_mark_it_begins_with() -> None:
    assert detect_bom(codecs.BOM_UTF32_LE + b"a\x00\x00\x00") == ("utf-32-le", "utf-32")


def test_utf8_is_taken_without_detection() -> None:
    assert decode("naïve café".encode()) == DecodedText("naïve café", "utf-8")


@pytest.mark.parametrize("codec", ["utf-16-le", "utf-16-be", "utf-32-le", "utf-32-be"])
def test_wide_text_without_a_mark_is_known_by_its_nul_pattern(codec: str) -> None:
    text = "This is a test document to use for unit tests.\n"
    assert decode(text.encode(codec)) == DecodedText(text, codec)


def test_iso2022_jp_is_decoded_although_it_is_valid_ascii() -> None:
    assert decode(JAPANESE.encode("iso2022_jp")) == DecodedText(JAPANESE, "iso2022_jp")


@pytest.mark.parametrize(
    ("text", "codec"),
    [
        pytest.param(FRENCH, "cp1252", id="cp1252"),
        pytest.param(RUSSIAN, "koi8_r", id="koi8-r"),
        pytest.param(RUSSIAN, "cp1251", id="cp1251"),
        pytest.param(JAPANESE, "shift_jis", id="shift-jis"),
    ],
)
def test_legacy_encodings_are_detected(text: str, codec: str) -> None:
    assert decode(text.encode(codec)) == DecodedText(text, codec)


# One sentence or two of each language, as a short upload would hold them.
LATIN_AND_OTHER_SCRIPTS = [
    pytest.param(
        "Le garçon mangeait une crème brûlée à côté de la fenêtre.\n"
        "Il était très content et avait déjà fini son café.\n",
        "cp1252",
        id="french-cp1252",
    ),
    pytest.param(
        "Perché è così difficile trovare la città più bella? "
        "Non lo so, ma è già tardi e domani partirò.\n",
        "cp1252",
        id="italian-cp1252",
    ),
    pytest.param(
        "Það er gott að búa á Íslandi þegar sólin skín og fólkið er glaðt.\n",
        "cp1252",
        id="icelandic-cp1252",
    ),
    pytest.param(
        "Naše babička vařila každou neděli výborný oběd a děti se na něj "
        "vždycky těšily.\n",
        "cp1250",
        id="czech-cp1250",
    ),
    pytest.param(
        "Zażółć gęślą jaźń. Wczoraj poszliśmy do kina, a potem jedliśmy "
        "pierogi u babci.\n",
        "cp1250",
        id="polish-cp1250",
    ),
    pytest.param(
        "Bunica mea făcea în fiecare duminică plăcinte şi ne povestea despre "
        "ţara ei natală.\n",
        "cp1250",
        id="romanian-cp1250",
    ),
    pytest.param(
        "Jučer smo šetali uz more i jeli ćevape u malom restoranu blizu luke; "
        "bilo je lijepo.\n",
        "cp1250",
        id="croatian-cp1250",
    ),
    pytest.param(
        "Vakar mes ėjome į parką ir matėme daug žmonių, kurie šoko ir dainavo "
        "lietuviškas dainas.\n",
        "cp1257",
        id="lithuanian-cp1257",
    ),
    pytest.param(
        "Vakar mēs gājām uz parku un redzējām daudz cilvēku, kuri dziedāja "
        "latviešu tautasdziesmas.\n",
        "cp1257",
        id="latvian-cp1257",
    ),
    pytest.param(
        "Dün akşam arkadaşlarımızla birlikte güzel bir lokantada yemek yedik "
        "ve çok eğlendik.\n",
        "cp1254",
        id="turkish-cp1254",
    ),
    pytest.param(RUSSIAN, "cp1251", id="russian-cp1251"),
    pytest.param(RUSSIAN, "koi8_r", id="russian-koi8-r"),
    pytest.param(
        "Η ελληνική γλώσσα είναι μία από τις αρχαιότερες γλώσσες της Ευρώπης.\n",
        "cp1253",
        id="greek-cp1253",
    ),
]


@pytest.mark.parametrize(("text", "codec"), LATIN_AND_OTHER_SCRIPTS)
def test_a_short_text_is_read_in_the_code_page_of_its_language(
    text: str, codec: str
) -> None:
    # charset-normalizer took French for Baltic (cp1257: "garēon", "ą cōté")
    # and Italian for Central European (cp1250: "Perché č cosě").
    assert decode(text.encode(codec)) == DecodedText(text, codec)


@pytest.mark.parametrize(
    ("text", "codec"),
    [param for param in LATIN_AND_OTHER_SCRIPTS if param.id != "greek-cp1253"],
)
def test_a_longer_text_is_read_in_the_code_page_of_its_language(
    text: str, codec: str
) -> None:
    assert decode((text * 200).encode(codec)) == DecodedText(text * 200, codec)


GREEK_WITH_PRICES = (
    "Η Αθήνα είναι η πρωτεύουσα και η μεγαλύτερη πόλη της Ελλάδας, με ιστορία "
    "που ξεπερνά τα τρεις χιλιάδες χρόνια.\n"
    "Το εισιτήριο κοστίζει 25 € για τους ενήλικες και 12 € για τα παιδιά.\n"
    "Ένας καφές στην πλατεία κοστίζει πια 4 €, σχεδόν διπλάσια από πέρσι.\n"
)


@pytest.mark.parametrize("copies", [1, 30], ids=["249-bytes", "7-kb"])
def test_greek_stays_greek_when_cyrillic_reads_it_coherently(copies: int) -> None:
    # Read as cp1251 this passes for Bulgarian (coherence 0.55), and
    # charset-normalizer then skipped every later code page of another
    # language family, cp1253 included: the text came out as Cyrillic.
    text = GREEK_WITH_PRICES * copies
    assert decode(text.encode("cp1253")) == DecodedText(text, "cp1253")


def test_greek_stays_greek_whatever_its_length_modulo_five() -> None:
    # 5,231 bytes: charset-normalizer's sixth "chunk" was the last byte of
    # "«Τέλος»"; scored as chaos 1.0, it made cp1253 give up twice with the
    # price list's chunk, and the text came out as Mac Greek.
    lines = [
        "Η Αθήνα είναι η πρωτεύουσα και η μεγαλύτερη πόλη της Ελλάδας, με "
        "ιστορία που ξεπερνά τα τρεις χιλιάδες χρόνια.",
        "Ο Παρθενώνας, ναός αφιερωμένος στη θεά Αθηνά, χτίστηκε τον πέμπτο "
        "αιώνα προ Χριστού πάνω στον βράχο της Ακρόπολης.",
        "Άνοιξη, καλοκαίρι, φθινόπωρο και χειμώνας: οι τέσσερις εποχές του "
        "χρόνου φέρνουν διαφορετικά χρώματα στα νησιά.",
        "Στο χωριό μας οι γέροι κάθονται κάθε απόγευμα στο καφενείο, πίνουν "
        "ελληνικό καφέ και συζητούν για την πολιτική.",
        "Η γιαγιά μου έφτιαχνε πίτες με σπανάκι και φέτα, ενώ ο παππούς "
        "φρόντιζε τον κήπο με τις ντομάτες και τα αγγούρια.",
    ] * 9
    lines.insert(
        6,
        "Τιμοκατάλογος: καφές 4€, τσάι 3€, χυμός 5€, νερό 1€, τυρόπιτα 3€, "
        "σπανακόπιτα 3€, σάντουιτς 5€, σαλάτα 8€, μπίρα 6€, κρασί 7€, γλυκό 4€, "
        "παγωτό 3€.",
    )
    text = "\n".join(lines) + "\n«Τέλος»"
    data = text.encode("cp1253")
    assert len(data) % 5 == 1
    assert decode(data) == DecodedText(text, "cp1253")


def test_finnish_with_only_a_umlaut_and_o_umlaut_is_cp1252() -> None:
    # charset-normalizer takes the doubled "ää" for mojibake and preferred
    # Mac Icelandic, which reads both letters as symbols: "Hyv‰‰ p‰iv‰‰".
    text = "Hyvää päivää! Tänään on kaunis sää ja menemme järvelle.\n"
    assert decode(text.encode("cp1252")) == DecodedText(text, "cp1252")


def test_a_text_in_several_western_languages_stays_cp1252() -> None:
    # No one language spells all its letters, and read as cp1250 ("trčs",
    # "nińo") Slovak would spell more of them than any language does right.
    text = (
        "Die Kinder spielen draußen im Garten, während die Großmutter schläft.\n"
        "L'été était très chaud ; nous avons mangé une crème brûlée.\n"
        "El niño comió paella con ñoquis y dijo: ¡Qué rico!\n"
        "Kvinnan åt köttbullar och frågade om det fanns mer.\n"
        "O João comprou um café e disse que estava ótimo.\n"
    )
    assert decode(text.encode("cp1252")) == DecodedText(text, "cp1252")


def test_a_text_whose_only_bytes_past_ascii_are_punctuation_stays_cp1252() -> None:
    text = "The price rose to £45 – about “twice” what we paid last year … really.\n"
    assert decode(text.encode("cp1252")) == DecodedText(text, "cp1252")


def test_a_declared_encoding_is_kept_when_it_decodes_strictly() -> None:
    data = "Ελληνικά".encode("iso8859_7")
    assert decode(data, declared="ISO-8859-7") == DecodedText("Ελληνικά", "iso8859_7")


def test_a_declared_encoding_that_fails_is_ignored() -> None:
    assert decode(FRENCH.encode("cp1252"), declared="utf-8").text == FRENCH


def test_a_head_cut_inside_a_character_still_reads_as_utf8() -> None:
    data = "prix: 5 €".encode()[:-1]
    assert decode(data, truncated=True) == DecodedText("prix: 5 ", "utf-8")


def test_a_stray_latin1_byte_leaves_a_utf8_text_utf8() -> None:
    # Detection used to read the whole file as a single-byte code page
    # (iso8859_10 here): every accented letter became mojibake, silently.
    data = FRENCH.encode() + b" caf\xe9 " + RUSSIAN.encode()
    decoded = decode(data)
    assert decoded.encoding == "utf-8"
    assert decoded.text == FRENCH + " caf\ufffd " + RUSSIAN
    assert (decoded.confident, decoded.replaced) == (False, 1)


def test_a_stray_past_the_detection_sample_is_found_too() -> None:
    data = FRENCH.encode() * 400 + b" \xe9 " + FRENCH.encode()
    assert len(data) > 64 * 1024
    decoded = decode(data)
    assert (decoded.encoding, decoded.replaced) == ("utf-8", 1)


def test_a_stray_byte_is_warned_about(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_bytes(FRENCH.encode() + b"\x96 fin")
    result = extract_path(path)
    assert result.text == FRENCH + "\ufffd fin"
    assert result.metadata["encoding"] == "utf-8"
    assert result.warnings == [
        "read as utf-8; 1 byte sequence(s) that are not UTF-8 became U+FFFD"
    ]


@pytest.mark.parametrize(
    ("text", "codec"),
    [
        pytest.param("Grüße aus Köln, schöne Tage.", "latin-1", id="few-latin1"),
        pytest.param(JAPANESE * 3, "gb18030", id="gb18030"),
        pytest.param(JAPANESE * 3, "euc_jp", id="euc-jp"),
        pytest.param(RUSSIAN, "cp1251", id="cp1251"),
    ],
)
def test_legacy_text_is_not_taken_for_utf8_with_strays(text: str, codec: str) -> None:
    decoded = decode(text.encode(codec))
    assert decoded.encoding != "utf-8"
    assert decoded.replaced == 0


def test_random_bytes_do_not_look_like_text() -> None:
    assert looks_like_text(bytes(range(256)) * 4) is False


def test_utf16_without_a_mark_looks_like_text() -> None:
    assert looks_like_text("plain words".encode("utf-16-le")) is True


def test_a_document_needing_detection_is_scored_once_per_reading(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Sniffing (is it text, what shape) and extracting ask about the same
    # bytes; charset-normalizer is the costly part and runs once for them.
    import charset_normalizer

    from docmill.extract.pipeline import extract_path

    calls: list[int] = []
    real = charset_normalizer.from_bytes

    def counting(
        sample: bytes, **options: list[str] | None
    ) -> charset_normalizer.CharsetMatches:
        calls.append(len(sample))
        return real(sample, **options)  # type: ignore[arg-type]

    monkeypatch.setattr(charset_normalizer, "from_bytes", counting)
    path = tmp_path / "note.txt"
    path.write_bytes(FRENCH.encode("cp1252"))
    assert extract_path(path).metadata["encoding"] == "cp1252"
    assert len(calls) == 1
    # A second reading of the same document detects again.
    extract_path(path)
    assert len(calls) == 2


@pytest.mark.parametrize("codec", ["cp1252", "cp1250", "iso8859_2", "mac_roman"])
def test_a_code_page_tallies_one_field_per_language_of_each_letter(codec: str) -> None:
    from docmill.extract import textcodec

    page = textcodec._code_page(codec)
    assert page is not None
    fields = len(textcodec._ALPHABETS)
    for languages, tally in zip(page.languages, page.tallies, strict=True):
        wanted = sum(
            1 << index * textcodec._TALLY_BITS
            for index in range(fields)
            if languages >> index & 1
        )
        assert tally == wanted
    # Letters that several languages write are among them.
    assert any(bin(languages).count("1") > 1 for languages in page.languages)
