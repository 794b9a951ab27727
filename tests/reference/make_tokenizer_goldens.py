#!/usr/bin/env python3
"""Writes the HF reference ids that tests/test_tokenizer.c must reproduce exactly.

For each mode (a tokenizer_config.json next to models/bert-base-uncased/vocab.txt, loaded
by transformers' AutoTokenizer, i.e. BertTokenizerFast) and max_length, it encodes with
add_special_tokens=True, truncation=True:
  1. every sentence of data/stsbenchmark.tsv.gz (sentence1 then sentence2, file order),
  2. every distinct sentence of data/snli_dev_test.tsv.gz (first appearance order),
  3. the stress texts written to tests/data/tokenizer/stress.hex.gz (one hex-encoded text of
     raw bytes per line: invalid UTF-8 is decoded with errors="replace", as the C side must),
  4. for every block of 64 code points up to U+2FFFF and in
     plane 14, the text "a<cp>b " for each code point (surrogates skipped), which the C
     test builds the same way, so every code point's normalization is compared.
Output: tests/data/tokenizer/<mode>.ids.gz, a header line
  "# <tokenizer_config json> max_len=N stsb=N snli=N stress=N sweep=N"
then one line per text, in that order: the space-separated ids (stress, sweep) or the
CRC-32 of that id line as 8 hex digits (STSb, SNLI); "=" when the line is the same as in
the first mode (uncased_512), which keeps the committed files small.

    python3 tests/reference/make_tokenizer_goldens.py      # from the repository root
"""
import gzip
import json
import os
import random
import shutil
import tempfile
import zlib

from transformers import AutoTokenizer

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
VOCAB = os.path.join(ROOT, "models", "bert-base-uncased", "vocab.txt")
OUT = os.path.join(ROOT, "tests", "data", "tokenizer")

MODES = [  # name (the first is the one others refer to with "="), tokenizer_config.json, max_length
    ("uncased_512", {"tokenizer_class": "BertTokenizer", "do_lower_case": True}, 512),
    ("uncased_75", {"tokenizer_class": "BertTokenizer", "do_lower_case": True}, 75),
    ("cased_512", {"tokenizer_class": "BertTokenizer", "do_lower_case": False}, 512),
    ("lower_keep_accents_512", {"tokenizer_class": "BertTokenizer", "do_lower_case": True, "strip_accents": False},
     512),
]


def tsv_rows(path):
    """Rows of a gzip TSV as the C LineReader splits them: on \\n, one trailing \\r dropped."""
    data = gzip.open(path, "rb").read()
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    header = lines[0].rstrip(b"\r").split(b"\t")
    for line in lines[1:]:
        yield dict(zip(header, line.rstrip(b"\r").split(b"\t")))


def stsb_texts():
    out = []
    for row in tsv_rows(os.path.join(ROOT, "data", "stsbenchmark.tsv.gz")):
        out += [row[b"sentence1"], row[b"sentence2"]]
    return out


def snli_texts():
    seen, out = set(), []
    for row in tsv_rows(os.path.join(ROOT, "data", "snli_dev_test.tsv.gz")):
        for s in (row[b"sentence1"], row[b"sentence2"]):
            if s not in seen:
                seen.add(s)
                out.append(s)
    return out


def stress_texts():
    t = [
        "", " ", "   \t  ", "\t\r\n", "\n", "\r", "\x00", "\x00abc\x00", "a\x01b\x02c\x7f", "\x0b\x0c\x1c\x1d\x1e\x1f",
        "Hello, World!", "HELLO world", "don't stop-believing... (really?) [yes]", "a.b,c;d:e!f?g",
        "$100.00 + 5% = €105,50 ~ 3^2 | a<b>c `x` {y} \\z", "3.14159 1,000,000 2023-10-05 12:30:45 +1-800-555-0199",
        "e-mail: john.doe@example.com, url: https://www.example.org/path?q=1&r=2#frag",
        "café naïve résumé coöperate façade jalapeño", "CAFÉ NAÏVE RÉSUMÉ", "Crème brûlée à la mode",
        "e\u0301 a\u0300 o\u0308 n\u0303 c\u0327", "a\u0323\u0301 a\u0301\u0323 q\u0307\u0323 q\u0323\u0307",
        "x\U0001D16D\U0001D165 x\U0001D165\U0001D16D x\u0301\U0001D165\u0316 \u0301\u0301 \u0301start",
        "\u0e01\u0e31\u0e49 \u0915\u093f\u0928\u094d\u0928 \u05e9\u05c1\u05b8\u05dc\u05d5\u05b9\u05dd",
        "İstanbul İSTANBUL istanbul ISTANBUL ı İ", "Straße STRASSE ß ẞ", "ΣΊΣΥΦΟΣ Σίσυφος ὈΔΥΣΣΕΎΣ ς σ Σ",
        "ǅ ǈ ǋ ǲ Ǆ ǆ", "ﬁ ﬂ ﬀ ﬃ ﬄ ﬅ ﬆ", "Ⅻ ⅻ ① ⑴ ⒜ Ⓐ ⓐ", "Ａ ｂ Ｃ ｄ １２３ ！？ （ｘ） ｢ｶﾀｶﾅ｣",
        "東京は日本の首都です。", "中文分词测试：你好，世界！", "漢字かなカナ混じり文", "한국어 텍스트 처리 테스트",
        "\U00020000\U0002A6D6 \U0002A700 \U0002B740 \U0002B820\U0002B91F \U0002B920 \U0002CEAF \U0002F800 \U00030000",
        "\uF900\uFA0E\uFAD9 豈 丽", "⺀ ⼀ ㇀ 〇 々 〆 ゝ ヽ ー", "\u3000全角\u3000スペース\u3000",
        "emoji 😀😃😄 👍🏽 👨‍👩‍👧‍👦 🏳️‍🌈 ❤️ ☺ ✈️ 🇩🇪🇫🇷", "🥰🫠🪿 (new emoji)", "a😀b c😀 😀d",
        "zero\u200bwidth\u200cjoin\u200dnon\u2060word\ufeffjoiner", "\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069",
        "שלום עולם hello مرحبا بالعالم", "العَرَبِيَّة \u0640\u0640 ﷺ ﷽", "\u0890\u0891 \u08e2 \U000110cd \U00013430\U0001343f",
        "\u1734 \U00011938 \u166d \U000111c9 \u07fd \u0898 \u2e43 \u2e52 \U00016fe4", "\ua7cb\ua7cc\ua7dc \u1c89 \U00010d50\U00010d65 \U00016ea0",
        "\ue000\uf8ff \U000f0000 \U0010fffd \uffff \ufffe \ufdd0 \u0378 \U000e0001 \U000e0041",
        "\ufffd replacement \ufffd\ufffd", "\u00a0nbsp\u00a0 \u1680ogham \u2000\u2001\u2002\u200a\u2028\u2029\u202f\u205f\u0085",
        "\x1c\x1d\x1e\x1f\x85 C1\x80\x9f controls", "soft\u00adhyphen", "a\u034fb \u180e \u061c",
        "[MASK] [mask] [CLS] [SEP] [PAD] [UNK] [Mask]", "x[MASK]y[SEP]z", "[[MASK]] [MASK][MASK] [MAS K] [MASK",
        "the [MASK] sat on the [MASK]. [SEP] [CLS]", "##ing ##s ## # ### a##b", "[unused0] [unused99] <s> </s> <mask>",
        "Ⅸ ℌ ℍ ℎ ℏ K Å Ω ℮", "ｆｕｌｌｗｉｄｔｈ ＵＰＰＥＲ", "ɐ ʎ ɹ ǝ ʇ ʇ ɐ", "Ǎ ǎ Ǐ ǐ Ǒ ǒ Ǔ ǔ",
        "Ḁ ḁ Ẁ ẁ Ỳ ỳ ṩ Ṩ ǻ Ǻ", "Ωmega ohm Ω Å angstrom Å", "ﬃ ﬄ ǈ ǉ ǌ",
        "naïve-café's \"quoted\" ‘single’ “double” «guillemets» ‹x› „low“ — – ‐ ‒ … ‰ ′ ″",
        "¡Hola! ¿Qué tal? ¿¡ !¿", "a_b a__b _x_ __init__", "C++ C# F# .NET Node.js",
        "tab\tseparated\tvalues", "line\nbreak\r\nwindows\rmac", "multiple     spaces  here",
        "x" * 99, "y" * 100, "z" * 101, "ab" * 60, "é" * 100, "é" * 101, "中" * 200,
        "supercalifragilisticexpialidocious pneumonoultramicroscopicsilicovolcanoconiosis",
        "unaffable unbelievable antidisestablishmentarianism", "a" * 100 + " b", "a" * 101 + "é b",
        "ﬀ" * 60, "İ" * 60, "İ" * 101, "x" * 99 + "İ", "x" * 98 + "İ",
    ]
    long_words = " ".join(["word", "longer", "tokenization", "internationalization"] * 60)
    t += [long_words, "The quick brown fox. " * 40, "a " * 600, "中文" * 400, ". " * 300, "[MASK] " * 100,
          "x" * 5000, ("é" * 50 + " ") * 40]
    texts = [s.encode("utf-8") for s in t]
    # Invalid UTF-8: lone continuation bytes, truncated sequences, overlongs, surrogates,
    # code points above U+10FFFF, bytes that never occur in UTF-8.
    texts += [b"abc\xffdef", b"\x80\x81\x82", b"caf\xc3", b"caf\xc3 x", b"\xe2\x82", b"\xe2\x82A",
              b"\xe2\x82\xacok", b"\xc0\xaf overlong \xe0\x80\xaf", b"\xed\xa0\x80 surrogate \xed\xbf\xbf",
              b"\xf4\x90\x80\x80 too big \xf5\x80", b"\xfe\xff\xfe", b"\xf0\x9f\x98 half emoji \xf0\x9f",
              b"ok\xe0\xa4half \xe4\xb8 cjk", b"\xc3\xa9\xcc", b"[MA\xffSK] [MASK]\xff",
              b"\xe0\xa0 \xe0\x9f\xbf \xf0\x8f\xbf\xbf \xf0\x90\x80\x80", b"\xc2\x80\xc2 \xdf\xbf\xdf"]
    # Random mixes over a pool of the characters above, reproducible from the seed.
    pool = ("aAeEiIoOuU zZ09 .,;:!?'\"-()[]{}#@$%^&*_+=<>/\\|~`\t\n\r\x00\x01\x7f\x85\xa0"
            "éÉèÈëËçÇñÑßẞİıΣσςÅÅΩΩǅǈﬁﬀ\u0301\u0300\u0308\u0323\u0316\u0345\u034f\u0e31\u0e49\u093f\u094d\u05b8"
            "東京中文漢字한국어かなカナ豈丽\U00020000\U0002B920\U0002B820ＡｂＣ１！（）\u3000"
            "😀👍🏽‍❤️\ufe0f🇩🇪🥰\u200b\u200c\u200d\u2060\ufeff\u200e\u200f\u202e\u2066\u061c\u00ad"
            "\u0890\u1734\U00011938\u166d\U000111c9\ua7cb\U00010d50\ue000\uffff\u0378\ufffd\u2028\u1680"
            "—–…«»“”‘’¡¿€£¥₹°±×÷§¶©®™")
    rng = random.Random(20240601)
    for _ in range(400):
        n = rng.randint(1, 80)
        s = "".join(rng.choice(pool) for _ in range(n))
        b = bytearray(s.encode("utf-8"))
        if rng.random() < 0.2:  # corrupt a few bytes
            for _ in range(rng.randint(1, 3)):
                b[rng.randrange(len(b))] = rng.randrange(256)
        texts.append(bytes(b))
    for w in ("[MASK]", "[SEP]", "[CLS]", "[UNK]", "[PAD]"):
        texts += [f"x{w}y".encode(), f"{w.lower()} {w}".encode()]
    return texts


def sweep_texts():
    """Must match sweep_text() in tests/test_tokenizer.c."""
    blocks = list(range(0, 0x30000, 64)) + list(range(0xE0000, 0xE1000, 64))
    out = []
    for start in blocks:
        cps = [cp for cp in range(start, start + 64) if not 0xD800 <= cp <= 0xDFFF]
        if cps:
            out.append("".join(f"a{chr(cp)}b " for cp in cps).encode("utf-8", "surrogatepass"))
    return out


def load(config):
    folder = tempfile.mkdtemp()
    shutil.copy(VOCAB, os.path.join(folder, "vocab.txt"))
    with open(os.path.join(folder, "tokenizer_config.json"), "w") as f:
        json.dump(config, f)
    tok = AutoTokenizer.from_pretrained(folder)
    shutil.rmtree(folder)
    assert tok.is_fast and len(tok.get_vocab()) == 30522, "vocab.txt was not loaded"
    norm = json.loads(tok.backend_tokenizer.to_str())["normalizer"]
    assert norm["lowercase"] == config["do_lower_case"], norm
    assert norm["strip_accents"] == config.get("strip_accents"), norm
    return tok


def id_line(ids, group):
    """Full ids for the stress and sweep texts; for the (many, plain) STSb and SNLI
    sentences only the CRC-32 of the id line, to keep the committed data small."""
    line = " ".join(map(str, ids))
    return line if group in ("stress", "sweep") else "%08x" % zlib.crc32(line.encode())


def main():
    groups = [("stsb", stsb_texts()), ("snli", snli_texts()), ("stress", stress_texts()), ("sweep", sweep_texts())]
    os.makedirs(OUT, exist_ok=True)
    with gzip.GzipFile(os.path.join(OUT, "stress.hex.gz"), "wb", mtime=0) as f:
        f.write("".join(t.hex() + "\n" for t in dict(groups)["stress"]).encode())
    first_mode = None
    for name, config, max_len in MODES:
        tok = load(config)
        counts, lines = [], []
        for group, texts in groups:
            counts.append(f"{group}={len(texts)}")
            strs = [t.decode("utf-8", errors="replace") for t in texts]
            lines += [id_line(ids, group) for ids in tok(strs, truncation=True, max_length=max_len)["input_ids"]]
        # A line equal to the first mode's line for the same text is written as "=".
        written = lines if first_mode is None else ["=" if a == b else a for a, b in zip(lines, first_mode)]
        first_mode = first_mode or lines
        header = f"# {json.dumps(config)} max_len={max_len} " + " ".join(counts)
        with gzip.GzipFile(os.path.join(OUT, f"{name}.ids.gz"), "wb", mtime=0) as f:
            f.write(("\n".join([header] + written) + "\n").encode())
        print(name, header, len(lines), sum(w != "=" for w in written), "lines differ from", MODES[0][0])


if __name__ == "__main__":
    main()
