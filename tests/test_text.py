from speechrnn.text import VOCAB, Tokenizer, normalize_text


def test_normalize_strips_markup_and_punctuation():
    assert normalize_text("<s> RUBOUT G M E F THREE </s> (an406-fcaw-b)") == "rubout g m e f three"
    assert normalize_text("  It's  Café-au-lait, OK?! ") == "it's cafe au lait ok"
    assert normalize_text("[noise] 42") == ""
    # Typographic apostrophes stay apostrophes; dashes and slashes part words instead of gluing them.
    assert normalize_text("It’s the dog’s bone: well—that, x–y and/or z") == "it's the dog's bone well that x y and or z"


def test_round_trip_and_vocab():
    tok = Tokenizer()
    assert len(tok) == len(VOCAB) == 29 and tok.blank == 0
    ids = tok.encode("Don't GO")
    assert 0 not in ids
    assert tok.decode(ids) == "don't go"
