"""The GPT-2 tokenizer: tiktoken's ids, GPT-2's special tokens, a save that loads without our code.

References: tiktoken's "gpt2" encoding (the source of truth) and transformers' own GPT2Tokenizer, both built
from OpenAI's encoder.json + vocab.bpe, which `write_gpt2_vocab_files` rebuilds from the packaged ranks byte for
byte (tiktoken checks them against the sha256 hashes it pins for OpenAI's files).
"""

import hashlib
import inspect
import json
import os
import random
import shutil
from pathlib import Path

import pytest
import regex
import tiktoken
from conftest import CORPORA, THE_VERDICT, run_without_gpt_scratch
from tiktoken_ext.openai_public import r50k_pat_str
from tokenizers import Regex, Tokenizer, pre_tokenizers
from transformers import AutoTokenizer, GPT2Tokenizer, TokenizersBackend
from transformers.convert_slow_tokenizer import TikTokenConverter, bytes_to_unicode
from transformers.models.auto.tokenization_auto import TOKENIZER_MAPPING

import gpt_scratch
from gpt_scratch import GPTScratchConfig
from gpt_scratch.tokenization_gpt_scratch import (
    ENDOFTEXT,
    GPT2_SPLIT_PATTERN,
    GPT2_TIKTOKEN_SHA256,
    load_tokenizer,
    register_auto_tokenizer,
    write_gpt2_vocab_files,
)

EOT_ID = 50256

# Hand-picked cases: each line names what it probes.
EDGE_CASES = [
    "",
    "a",
    # whitespace: runs, tabs, CRLF, leading/trailing, GPT-2's "\s+(?!\S)" split before a word
    " ",
    "  ",
    "\t",
    "\n",
    "\r\n",
    "\n\n\n",
    " \n",
    "\n ",
    "hello\r\nworld\r\n",
    "a\r\n\r\n\r\nb",
    "trailing spaces   ",
    "   leading spaces",
    " \t \n mixed \t\n x",
    "tabs\tand\t\ttabs",
    "a  b   c    d",
    "    indented code\n\tand a tab\n",
    "\u00a0nbsp\u00a0x",
    "\u3000ideographic\u3000space",
    "line\u2028sep\u2029p",
    "\x0b\x0c\x1c\x1d\x85 odd spaces",
    "\u200bzero\u200dwidth\ufeff",
    # digits: GPT-2 keeps a whole run of digits together (cl100k splits them in threes)
    "1234567890123456789012345678901234567890",
    "3.14159 2,718 1e-10 -42 0x1F 007",
    "year 2024, 10000000 people",
    "\u0967\u0968\u0969 \u0663\u0664\u0665 \u2167 \u00bd",
    # contractions: GPT-2 matches them lower case only, so "DON'T" splits as "DON", "'", "T"
    "I'm you're we've they'll she'd it's don't",
    "DON'T I'M YOU'RE WE'VE THEY'LL SHE'D IT'S",
    "Don'T It'S We'Ve",
    "'s's'tt 'll've 'd'm",
    "rock'n'roll ma'am o'clock",
    "'S 'T 'RE 'VE 'M 'LL 'D",
    "O'Sullivan 'Tis D'Angelo",
    # punctuation, symbols, code
    "Hello, world! How are you?",
    "spaced , out . text ? !",
    "$hello @user #tag",
    "!!!\n\n???\n",
    "a--b...c;;d",
    "ALLCAPS MiXeD CaSe",
    "def f(x):\n    return x**2  # square\n",
    '{"key": [1, 2, 3], "b": null}',
    "https://example.com/path?q=1&r=2#frag",
    # scripts
    "日本語のテキストと漢字とカタカナ",
    "中文分词测试，标点。",
    "한국어 문장입니다",
    "مرحبا بالعالم",
    "नमस्ते दुनिया",
    "Привет, мир!",
    "Γειά σου Κόσμε",
    "שָׁלוֹם עולם",
    "สวัสดีชาวโลก",
    "Tiếng Việt có dấu",
    "ﬁ ligature ẞ ß",
    # combining marks, composed and decomposed
    "e\u0301 n\u0303 a\u0308\u0304",
    "Z\u0351\u0352\u0353\u0354algo",
    "caf\u00e9 vs cafe\u0301",
    # emoji: modifiers, ZWJ sequences, flags, keycaps
    "👍🏽",
    "👨‍👩‍👧‍👦 family",
    "🏳️‍🌈 flag",
    "🇺🇸🇯🇵🇫🇷",
    "❤️‍🔥 ok",
    "1️⃣ #️⃣",
    "😀😃😄 smile",
    # control characters and the byte-level fallback
    "\x00\x01\x7f",
    "\ud7ff\ue000\uffff\U0010ffff",
    # <|endoftext|> as text: a special token only when special tokens are allowed
    ENDOFTEXT,
    f"a{ENDOFTEXT}b",
    f" {ENDOFTEXT} ",
    ENDOFTEXT * 2,
    f"{ENDOFTEXT}\n",
    "<|endoftext",
    "<|endoftext|",
]

# Where TikTokenConverter's default (cl100k-style) split pattern departs from GPT-2's. Upper-case
# contractions alone ("DON'T") give the same ids either way, as GPT-2 has no "'T" token, but the
# case-insensitive match also takes the first letter of a capitalised word.
DEFAULT_PATTERN_DIFFERS = [
    "O'Sullivan",  # (?i:'s) splits "'S" + "ullivan"; GPT-2 keeps "Sullivan"
    "'The end'",  # (?i:'t) likewise
    "1234567",  # digits in groups of three
    "!!!\n\nnext",  # punctuation swallows the newlines after it
    "hello\n\nworld",  # a newline run is its own piece
]

_PIECES = [case for case in EDGE_CASES if case] + [
    "the",
    " the",
    "The",
    " quick",
    "brown",
    "fox",
    "can't",
    "won't",
    "O'Neil's",
    "naïve",
    "façade",
    " über",
    "東京",
    " Москва",
    " القاهرة",
    " दिल्ली",
    " Αθήνα",
    " ירושלים",
    " กรุงเทพ",
    "🙂",
    "🇩🇪",
    "👩🏾‍💻",
]
_WHITESPACE = [" ", "  ", "\t", "\n", "\r\n", "\u00a0", "\u3000", " \n"]
_CODE_POINT_RANGES = [
    (0x20, 0x7E),
    (0xA0, 0x24F),
    (0x300, 0x36F),
    (0x370, 0x3FF),
    (0x400, 0x4FF),
    (0x590, 0x5FF),
    (0x600, 0x6FF),
    (0x900, 0x97F),
    (0xE00, 0xE7F),
    (0x1100, 0x11FF),
    (0x2000, 0x206F),
    (0x3040, 0x30FF),
    (0x4E00, 0x9FFF),
    (0xAC00, 0xD7A3),
    (0xFE00, 0xFE0F),
    (0x1F300, 0x1FAFF),
    (0x10000, 0x1034F),
]


def _random_strings(count: int, seed: int = 0) -> list[str]:
    """Seeded mixes of the pieces above, whitespace runs and random code points from many blocks."""
    rng = random.Random(seed)
    strings = []
    for _ in range(count):
        parts = []
        for _ in range(rng.randint(1, 8)):
            draw = rng.random()
            if draw < 0.55:
                parts.append(rng.choice(_PIECES))
            elif draw < 0.75:
                parts.append(rng.choice(_WHITESPACE) * rng.randint(1, 4))
            elif draw < 0.85:
                parts.append(str(rng.randint(0, 10 ** rng.randint(1, 15))))
            else:
                lo, hi = rng.choice(_CODE_POINT_RANGES)
                parts.append("".join(chr(rng.randint(lo, hi)) for _ in range(rng.randint(1, 6))))
        strings.append("".join(parts))
    return strings


CASES = EDGE_CASES + _random_strings(300)


def _mismatches(texts: list[str], got: list[list[int]], want: list[list[int]]) -> list[tuple]:
    return [(text, a, b) for text, a, b in zip(texts, got, want, strict=True) if a != b]


@pytest.fixture(scope="module")
def bpe_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """OpenAI's GPT-2 files under their own names: encoder.json and vocab.bpe (rebuilt from the ranks), and
    gpt2.tiktoken (the packaged ranks)."""
    folder = tmp_path_factory.mktemp("gpt2-bpe")
    vocab, merges = write_gpt2_vocab_files(folder)
    vocab.rename(folder / "encoder.json")
    merges.rename(folder / "vocab.bpe")
    shutil.copy(Path(gpt_scratch.__file__).with_name("gpt2.tiktoken"), folder)
    return folder


@pytest.fixture(scope="module")
def enc(bpe_dir: Path) -> tiktoken.Encoding:
    """tiktoken's "gpt2" encoding, made by tiktoken's own recipe (tiktoken_ext.openai_public.gpt2, which checks the
    files against its pinned hashes) from the local files instead of a download."""
    import tiktoken_ext.openai_public as openai_public

    def from_local_files(vocab_bpe_file: str, encoder_json_file: str, **hashes) -> dict[bytes, int]:
        assert vocab_bpe_file.endswith("/vocab.bpe") and encoder_json_file.endswith("/encoder.json")
        return tiktoken.load.data_gym_to_mergeable_bpe_ranks(str(bpe_dir / "vocab.bpe"),
                                                             str(bpe_dir / "encoder.json"), **hashes)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(openai_public, "data_gym_to_mergeable_bpe_ranks", from_local_files)
        return tiktoken.Encoding(**openai_public.gpt2())


@pytest.fixture(scope="module")
def tok() -> TokenizersBackend:
    return load_tokenizer()


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> GPT2Tokenizer:
    """transformers' GPT2Tokenizer from OpenAI's files, under the names it loads (vocab.json, merges.txt)."""
    folder = tmp_path_factory.mktemp("gpt2_reference")
    write_gpt2_vocab_files(folder)
    return GPT2Tokenizer.from_pretrained(folder)


@pytest.fixture(scope="module")
def corpora(enc: tiktoken.Encoding) -> dict[str, tuple[str, list[int]]]:
    """Each whole corpus with tiktoken's ids, encoded once per module."""
    texts = {name: path.read_text(encoding="utf-8") for name, path in CORPORA.items()}
    return {name: (text, enc.encode_ordinary(text)) for name, text in texts.items()}


# --- ids: tiktoken and transformers' GPT2Tokenizer -------------------------------------------------


@pytest.mark.parametrize("name", CORPORA)
def test_corpus_ids_match_tiktoken_and_gpt2tokenizer(name, corpora, tok, reference):
    text, want = corpora[name]
    assert len(want) > 1000
    assert tok.encode(text) == want
    assert reference.encode(text) == want
    assert tok.decode(want) == text


def test_special_tokens_allowed_match_tiktoken(tok, reference, enc):
    # By default <|endoftext|> in the text is the special token, as tiktoken's allowed_special="all".
    want = [enc.encode(text, allowed_special="all") for text in CASES]
    assert not _mismatches(CASES, tok(CASES)["input_ids"], want)
    assert not _mismatches(CASES, reference(CASES)["input_ids"], want)


def test_special_tokens_as_text_match_tiktoken(tok, reference, enc):
    # split_special_tokens=True encodes <|endoftext|> as ordinary text, as tiktoken's disallowed_special=().
    want = [enc.encode(text, disallowed_special=()) for text in CASES]
    assert not _mismatches(CASES, tok(CASES, split_special_tokens=True)["input_ids"], want)
    assert not _mismatches(CASES, reference(CASES, split_special_tokens=True)["input_ids"], want)


def test_endoftext_literal_both_ways(tok, enc):
    as_text = enc.encode_ordinary(ENDOFTEXT)
    assert len(as_text) > 1 and EOT_ID not in as_text
    assert tok(ENDOFTEXT)["input_ids"] == [EOT_ID]
    assert tok(ENDOFTEXT, split_special_tokens=True)["input_ids"] == as_text
    # The flag holds for that call only.
    assert tok(f"x{ENDOFTEXT}")["input_ids"] == [enc.encode_ordinary("x")[0], EOT_ID]


def test_decode_inverts_encode(tok):
    for split in (False, True):
        ids = tok(CASES, split_special_tokens=split)["input_ids"]
        assert [text for text, row in zip(CASES, ids) if tok.decode(row) != text] == []


def test_every_id_is_tiktokens_token(tok, enc):
    byte_of = {char: byte for byte, char in bytes_to_unicode().items()}
    tokens = tok.convert_ids_to_tokens(list(range(EOT_ID)))
    ours = [bytes(byte_of[char] for char in token) for token in tokens]
    assert ours == [enc.decode_single_token_bytes(i) for i in range(EOT_ID)]
    assert tok.convert_ids_to_tokens(EOT_ID) == ENDOFTEXT


# --- the split pattern ------------------------------------------------------------------------------


def test_split_pattern_splits_as_tiktoken():
    # GPT2_SPLIT_PATTERN is the GPT-2 release's spelling; tiktoken's r50k_pat_str is a faster equivalent.
    for text in CASES + DEFAULT_PATTERN_DIFFERS:
        assert regex.findall(GPT2_SPLIT_PATTERN, text) == regex.findall(r50k_pat_str, text), text


def test_converter_default_pattern_is_not_gpt2s(tok, enc):
    default = inspect.signature(TikTokenConverter.__init__).parameters["pattern"].default
    assert default != GPT2_SPLIT_PATTERN
    # Our backend with only the split pattern swapped for the converter's default.
    backend = Tokenizer.from_str(tok.backend_tokenizer.to_str())
    backend.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(default), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    assert backend.encode("hello world").ids == enc.encode_ordinary("hello world")
    for text in DEFAULT_PATTERN_DIFFERS:
        want = enc.encode_ordinary(text)
        assert backend.encode(text).ids != want, text
        assert tok.encode(text) == want, text


# --- special tokens, lengths, padding ---------------------------------------------------------------


def test_special_tokens_and_sizes(tok):
    for name in ("bos", "eos", "pad", "unk"):
        assert getattr(tok, f"{name}_token") == ENDOFTEXT
        assert getattr(tok, f"{name}_token_id") == EOT_ID
    assert len(tok) == 50257
    assert max(tok.get_vocab().values()) == EOT_ID
    assert tok.model_max_length == 1024
    assert tok.padding_side == "left"
    assert tok("hello")["input_ids"] == [31373]  # GPT-2 adds no bos/eos


def test_model_max_length_is_the_context_length():
    short = load_tokenizer(model_max_length=16)
    assert short.model_max_length == 16
    assert len(short("word " * 100, truncation=True)["input_ids"]) == 16


@pytest.mark.parametrize(
    "bad, error", [(0, ValueError), (-1, ValueError), ("8", TypeError), (True, TypeError), (8.0, TypeError)]
)
def test_bad_model_max_length(bad, error):
    with pytest.raises(error, match="model_max_length"):
        load_tokenizer(model_max_length=bad)


def test_batch_pads_on_the_left_with_endoftext(tok):
    batch = tok(["a longer first prompt here", "hi"], padding=True)
    long_ids, short_ids = tok("a longer first prompt here")["input_ids"], tok("hi")["input_ids"]
    pad = len(long_ids) - len(short_ids)
    assert pad > 0
    assert batch["input_ids"] == [long_ids, [EOT_ID] * pad + short_ids]
    assert batch["attention_mask"] == [[1] * len(long_ids), [0] * pad + [1] * len(short_ids)]


def test_each_call_returns_a_fresh_tokenizer(tok):
    first, second = load_tokenizer(), load_tokenizer()
    assert first is not second and first.backend_tokenizer is not second.backend_tokenizer
    first.add_tokens(["<|new|>"])
    assert len(first) == 50258
    assert len(second) == len(load_tokenizer()) == 50257


# --- other sources: folders, encoder.json + vocab.bpe -----------------------------------------------


def test_packaged_ranks_are_openais_file():
    packaged = Path(__file__).resolve().parents[1] / "gpt_scratch" / "gpt2.tiktoken"
    assert hashlib.sha256(packaged.read_bytes()).hexdigest() == GPT2_TIKTOKEN_SHA256
    notice = packaged.with_name("gpt2.tiktoken.NOTICE").read_text(encoding="utf-8")
    assert GPT2_TIKTOKEN_SHA256 in notice and "Copyright (c) 2019 OpenAI" in notice


def test_rebuilt_vocab_files_are_openais_byte_for_byte(tmp_path):
    # The sha256 hashes of OpenAI's encoder.json and vocab.bpe, as tiktoken_ext/openai_public.py pins them.
    vocab, merges = write_gpt2_vocab_files(tmp_path / "new" / "folder")
    assert (vocab.name, merges.name) == ("vocab.json", "merges.txt")
    assert hashlib.sha256(vocab.read_bytes()).hexdigest() == (
        "196139668be63f3b5d6574427317ae82f612a97c5d1cdaf36ed2256dbf636783")
    assert hashlib.sha256(merges.read_bytes()).hexdigest() == (
        "1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5")


def test_encoder_json_and_vocab_bpe_give_the_same_tokenizer(tok, tmp_path, corpora, bpe_dir):
    folder = tmp_path / "data_gym"
    folder.mkdir()
    shutil.copy(bpe_dir / "encoder.json", folder)
    shutil.copy(bpe_dir / "vocab.bpe", folder)
    text, want = corpora["the-verdict.txt"]
    for source in (folder, folder / "encoder.json", bpe_dir, bpe_dir / "gpt2.tiktoken"):
        other = load_tokenizer(source)
        assert other(CASES)["input_ids"] == tok(CASES)["input_ids"], source
        assert other.encode(text) == want, source
    # The pair converts to the very same backend as the packaged ranks.
    assert load_tokenizer(folder).backend_tokenizer.to_str() == tok.backend_tokenizer.to_str()


# --- errors -----------------------------------------------------------------------------------------


def test_corrupted_ranks_name_the_file_and_the_hash(tmp_path, bpe_dir):
    corrupted = tmp_path / "gpt2.tiktoken"
    data = bytearray((bpe_dir / "gpt2.tiktoken").read_bytes())
    data[1000:1004] = b"QUJD"  # still valid base64: only the hash can tell
    corrupted.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=GPT2_TIKTOKEN_SHA256) as raised:
        load_tokenizer(corrupted, expected_sha256=GPT2_TIKTOKEN_SHA256)
    assert str(corrupted) in str(raised.value)
    # The packaged file goes through the same check.
    with pytest.raises(ValueError, match="0{64}") as raised:
        load_tokenizer(expected_sha256="0" * 64)
    assert "gpt2.tiktoken" in str(raised.value)


def test_truncated_ranks_fail_without_a_hash(tmp_path, bpe_dir):
    truncated = tmp_path / "gpt2.tiktoken"
    truncated.write_bytes(b"\n".join((bpe_dir / "gpt2.tiktoken").read_bytes().splitlines()[:-10]))
    with pytest.raises(ValueError, match="expected GPT-2's 50256 ranks") as raised:
        load_tokenizer(truncated)
    assert str(truncated) in str(raised.value)


def test_missing_file_names_the_path(tmp_path):
    missing = tmp_path / "nowhere" / "gpt2.tiktoken"
    with pytest.raises(FileNotFoundError) as raised:
        load_tokenizer(missing)
    assert str(missing) in str(raised.value)


def test_folder_without_bpe_files_says_what_was_expected(tmp_path):
    (tmp_path / "encoder.json").write_text("{}")  # half a pair is not enough
    with pytest.raises(FileNotFoundError, match=r"gpt2\.tiktoken nor encoder\.json \+ vocab\.bpe") as raised:
        load_tokenizer(tmp_path)
    assert str(tmp_path) in str(raised.value)
    with pytest.raises(FileNotFoundError, match="vocab.bpe"):
        load_tokenizer(tmp_path / "encoder.json")


def test_other_files_say_what_was_expected(tmp_path, bpe_dir):
    # Named as the caller named it, also through a symbolic link (the message must not show the resolved path).
    (tmp_path / "linked").symlink_to(THE_VERDICT.parent, target_is_directory=True)
    for text_file in (THE_VERDICT, tmp_path / "linked" / THE_VERDICT.name):
        with pytest.raises(ValueError, match="gpt2.tiktoken ranks file, or encoder.json") as raised:
            load_tokenizer(text_file)
        assert str(text_file) in str(raised.value)
    # encoder.json and vocab.bpe that do not belong together: merges out of order.
    shutil.copy(bpe_dir / "encoder.json", tmp_path)
    lines = (bpe_dir / "vocab.bpe").read_text(encoding="utf-8").splitlines()
    lines[1], lines[2] = lines[2], lines[1]
    (tmp_path / "vocab.bpe").write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(ValueError, match="matching encoder.json \\+ vocab.bpe"):
        load_tokenizer(tmp_path)


# --- saving, loading without gpt_scratch, registration ----------------------------------------------

# Runs in a fresh interpreter that cannot import gpt_scratch: AutoTokenizer must manage on its own.
_RELOAD_SCRIPT = """
import json, sys
from transformers import AutoTokenizer

texts = json.loads(open(sys.argv[2], encoding="utf-8").read())
out = []
for folder in sys.argv[1].split(","):
    tok = AutoTokenizer.from_pretrained(folder)
    out.append({
        "class": type(tok).__name__,
        "ids": tok(texts)["input_ids"],
        "split_ids": tok(texts, split_special_tokens=True)["input_ids"],
        "special": [tok.bos_token_id, tok.eos_token_id, tok.pad_token_id, tok.unk_token_id, tok.pad_token],
        "model_max_length": tok.model_max_length,
        "padding_side": tok.padding_side,
        "padded": tok(texts[:3], padding=True)["input_ids"],
    })
assert not [name for name, module in sys.modules.items() if name.startswith("gpt_scratch") and module]
open(sys.argv[3], "w", encoding="utf-8").write(json.dumps(out))
"""


def test_save_pretrained_loads_in_a_process_without_gpt_scratch(tmp_path, corpora):
    tok = load_tokenizer(model_max_length=512)
    plain, model_dir = tmp_path / "tokenizer", tmp_path / "model"
    tok.save_pretrained(plain)
    tok.save_pretrained(model_dir)
    GPTScratchConfig(context_length=512).save_pretrained(model_dir)  # as in a saved model folder
    config = json.loads((plain / "tokenizer_config.json").read_text(encoding="utf-8"))
    assert config["tokenizer_class"] == "TokenizersBackend" and "auto_map" not in config
    assert config["clean_up_tokenization_spaces"] is False  # older transformers would strip " ." on decode
    assert sorted(path.name for path in plain.iterdir()) == ["tokenizer.json", "tokenizer_config.json"]

    texts = EDGE_CASES + [corpora["the-verdict.txt"][0][:3000]]
    (tmp_path / "texts.json").write_text(json.dumps(texts), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    # stdin closed: config.json's auto_map makes AutoConfig ask whether to run custom code; the answer
    # is no, and AutoTokenizer carries on without the model's config class.
    result = run_without_gpt_scratch(_RELOAD_SCRIPT, f"{plain},{model_dir}", "texts.json", "out.json",
                                     cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    want = {
        "class": "TokenizersBackend",
        "ids": tok(texts)["input_ids"],
        "split_ids": tok(texts, split_special_tokens=True)["input_ids"],
        "special": [EOT_ID] * 4 + [ENDOFTEXT],
        "model_max_length": 512,
        "padding_side": "left",
        "padded": tok(texts[:3], padding=True)["input_ids"],
    }
    assert json.loads((tmp_path / "out.json").read_text(encoding="utf-8")) == [want, want]


def test_register_auto_tokenizer(tmp_path):
    register_auto_tokenizer()
    register_auto_tokenizer()  # idempotent
    assert TOKENIZER_MAPPING[GPTScratchConfig] is TokenizersBackend
    tok = load_tokenizer()
    tok.save_pretrained(tmp_path)
    GPTScratchConfig().save_pretrained(tmp_path)
    loaded = AutoTokenizer.from_pretrained(tmp_path, config=GPTScratchConfig())
    assert type(loaded) is TokenizersBackend
    assert loaded(CASES)["input_ids"] == tok(CASES)["input_ids"]
