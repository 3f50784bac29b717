from speechrnn.text import VOCAB, Tokenizer, normalize_text, unspellable


def test_normalize_strips_markup_and_punctuation():
    assert normalize_text("<s> RUBOUT G M E F THREE </s> (an406-fcaw-b)") == "rubout g m e f three"
    assert normalize_text("  It's  Café-au-lait, OK?! ") == "it's cafe au lait ok"
    assert normalize_text("[noise] 42") == ""
    # Typographic apostrophes stay apostrophes; dashes and slashes part words instead of gluing them.
    assert normalize_text("It’s the dog’s bone: well—that, x–y and/or z") == "it's the dog's bone well that x y and or z"
    # Any whitespace, a zero-width space or an ellipsis parts words; none glues them.
    assert normalize_text("go\tforward\nten\u200bmore\u2026now\u00a0ok") == "go forward ten more now ok"
    # Apostrophes within words are spelled; quotation marks around words are not.
    assert normalize_text("He said ‘yes’, 'twas the students' o'clock 'n' don't") == "he said yes twas the students o'clock n don't"
    # Letters that stripping accents would lose are spelled in a-z.
    assert normalize_text("Straße, Ærø, Œuvre, Łódź") == "strasse aero oeuvre lodz"


def test_unspellable_names_what_normalising_drops():
    assert unspellable("Café, straße, don't stop!") == []
    assert unspellable("Room 101 & 50% off at 東京 (an406-fcaw-b) <s>") == ["%", "&", "0", "1", "5", "京", "東"]


def test_round_trip_and_vocab():
    tok = Tokenizer()
    assert len(tok) == len(VOCAB) == 29 and tok.blank == 0
    ids = tok.encode("Don't GO")
    assert 0 not in ids
    assert tok.decode(ids) == "don't go"
