"""GPTScratchForSequenceClassification: parity with transformers' GPT2ForSequenceClassification, the Auto classes,
pipeline("text-classification"), remote code, and the book's chapter-6 example."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import run_without_gpt_scratch, sharpen, tiny_config
from transformers import AutoModelForSequenceClassification, AutoTokenizer, GPT2ForSequenceClassification, pipeline

from gpt_scratch import GPTScratchForCausalLM, GPTScratchForSequenceClassification, load_tokenizer
from gpt_scratch.convert import config_to_hf_gpt2, from_hf_gpt2, to_hf_gpt2

PAD = 50256


def classifier_pair(num_labels: int, qkv_bias: bool, problem_type: str | None = None):
    """GPT2ForSequenceClassification and ours with the same (sharpened, biases randomised) weights, converted with the
    production maps: GPT-2 -> ours with query/key/value biases, ours -> GPT-2 without them."""
    config = tiny_config(qkv_bias=qkv_bias, num_labels=num_labels, problem_type=problem_type)
    hf_config = config_to_hf_gpt2(config)
    hf_config.num_labels, hf_config.problem_type, hf_config._attn_implementation = num_labels, problem_type, "eager"
    hf = GPT2ForSequenceClassification(hf_config).eval()
    ours = GPTScratchForSequenceClassification._from_config(config, attn_implementation="eager").eval()
    source = hf if qkv_bias else ours
    sharpen(source, config.emb_dim)
    with torch.no_grad():
        for p in source.parameters():
            if p.ndim == 1:
                p.add_(torch.randn_like(p) * 0.1)
    if qkv_bias:
        ours.load_state_dict(from_hf_gpt2(hf.state_dict()), strict=True)
    else:
        hf.load_state_dict(to_hf_gpt2(ours.state_dict()), strict=True)
    return hf, ours


def padded_batch(side: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Three texts of 7, 4 and 2 tokens, padded with <|endoftext|> on `side`."""
    texts = [torch.randint(0, PAD, (n,)) for n in (7, 4, 2)]
    ids = torch.full((3, 7), PAD)
    for row, text in enumerate(texts):
        if side == "left":
            ids[row, 7 - len(text):] = text
        else:
            ids[row, :len(text)] = text
    return ids, (ids != PAD).long()


PROBLEMS = {  # problem type: (num_labels, labels for the 3-text batch)
    "single_label_classification": (3, torch.tensor([0, 2, 1])),
    "multi_label_classification": (3, torch.tensor([[1.0, 0.0, 1.0], [0.0, 0.0, 1.0], [1.0, 1.0, 0.0]])),
    "regression": (1, torch.tensor([0.5, -1.0, 2.0])),
}


@pytest.mark.parametrize("qkv_bias", [True, False], ids=["from-gpt2", "to-gpt2"])
@pytest.mark.parametrize("problem_type", list(PROBLEMS))
def test_logits_and_loss_match_gpt2_for_sequence_classification(problem_type, qkv_bias):
    num_labels, labels = PROBLEMS[problem_type]
    hf, ours = classifier_pair(num_labels, qkv_bias)  # problem_type unset: both infer it from the labels' dtype
    for side in ("left", "right"):
        ids, mask = padded_batch(side)
        # GPT-2 counts positions 0..T-1 through the padding; ours counts them from the mask (no change on the right).
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        expected = hf(ids, attention_mask=mask, position_ids=positions, labels=labels)
        got = ours(ids, attention_mask=mask, labels=labels)
        torch.testing.assert_close(got.logits, expected.logits, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(got.loss, expected.loss, rtol=1e-5, atol=1e-5)
    assert ours.config.problem_type == hf.config.problem_type == problem_type


def test_each_text_is_read_at_its_last_real_token_whatever_the_padding():
    _, ours = classifier_pair(3, qkv_bias=True)
    logits = {}
    for side in ("left", "right"):
        torch.manual_seed(1)  # the same three texts
        ids, mask = padded_batch(side)
        logits[side] = ours(ids, attention_mask=mask).logits
        alone = torch.cat([ours(ids[i:i + 1][mask[i:i + 1].bool()].view(1, -1)).logits for i in range(3)])
        torch.testing.assert_close(logits[side], alone, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(logits["left"], logits["right"], rtol=1e-5, atol=1e-5)
    assert not torch.allclose(logits["left"][0], logits["left"][1], atol=1e-3)  # the texts do differ


def test_a_batch_without_a_pad_token_is_refused():
    model = GPTScratchForSequenceClassification(tiny_config(pad_token_id=None)).eval()
    assert model(torch.randint(0, PAD, (1, 5))).logits.shape == (1, 2)
    with pytest.raises(ValueError, match="2 padded texts: the config has no pad_token_id"):
        model(torch.randint(0, PAD, (2, 5)))


def test_a_causal_lm_folder_starts_a_classifier_with_a_fresh_head(tmp_path):
    lm = GPTScratchForCausalLM(tiny_config())
    lm.save_pretrained(tmp_path)
    classifier = AutoModelForSequenceClassification.from_pretrained(tmp_path, num_labels=4)
    assert type(classifier) is GPTScratchForSequenceClassification and classifier.score.weight.shape == (4, 32)
    assert torch.equal(classifier.model.tok_emb.weight, lm.model.tok_emb.weight)


def test_auto_class_pipeline_and_remote_code(tmp_path):
    folder = tmp_path / "model"
    labels = {"id2label": {0: "no", 1: "yes"}, "label2id": {"no": 0, "yes": 1}}
    model = GPTScratchForSequenceClassification(tiny_config(**labels)).eval()
    sharpen(model, 32)
    model.save_pretrained(folder)
    load_tokenizer(model_max_length=64).save_pretrained(folder)
    config = json.loads((folder / "config.json").read_text())
    assert config["architectures"] == ["GPTScratchForSequenceClassification"]
    assert config["auto_map"]["AutoModelForSequenceClassification"] == (
        "modeling_gpt_scratch.GPTScratchForSequenceClassification")

    texts = ["I had always thought Jack Gisburn rather a cheap genius.", "Poor Jack Gisburn!"]
    tokenizer = AutoTokenizer.from_pretrained(folder)
    batch = tokenizer(texts, return_tensors="pt", padding=True)
    with torch.no_grad():
        logits = model(**batch).logits
    loaded = AutoModelForSequenceClassification.from_pretrained(folder)
    assert type(loaded) is GPTScratchForSequenceClassification
    classifier = pipeline("text-classification", model=loaded, tokenizer=tokenizer)
    results = classifier(texts, batch_size=2, top_k=None)
    for row, result in zip(logits.softmax(-1), results):
        assert {r["label"]: round(r["score"], 5) for r in result} == {
            "no": round(row[0].item(), 5), "yes": round(row[1].item(), 5)}

    script = """
        import json, sys
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer, pipeline
        folder, texts = sys.argv[1], json.loads(sys.argv[2])
        model = AutoModelForSequenceClassification.from_pretrained(folder, trust_remote_code=True).eval()
        tokenizer = AutoTokenizer.from_pretrained(folder, trust_remote_code=True)
        with torch.no_grad():
            logits = model(**tokenizer(texts, return_tensors="pt", padding=True)).logits
        labels = [r["label"] for r in pipeline("text-classification", model=model, tokenizer=tokenizer)(texts)]
        print(json.dumps({"class": type(model).__name__, "logits": logits.tolist(), "labels": labels}))
    """
    env = {**os.environ, "HF_HOME": str(tmp_path / "hf_home"), "PYTHONPATH": "", "HF_HUB_OFFLINE": "1"}
    result = run_without_gpt_scratch(script, folder, json.dumps(texts), cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    remote = json.loads(result.stdout.strip().splitlines()[-1])
    assert remote["class"] == "GPTScratchForSequenceClassification"
    torch.testing.assert_close(torch.tensor(remote["logits"]), logits, rtol=1e-5, atol=1e-5)
    assert remote["labels"] == [["no", "yes"][i] for i in logits.argmax(-1).tolist()]


def test_the_chapter_6_example_fine_tunes_a_classifier_on_the_verdict(tmp_path):
    example = Path(__file__).resolve().parents[1] / "examples" / "classify.py"
    out = tmp_path / "classifier"
    result = subprocess.run([sys.executable, str(example), "--steps", "30", "--out", str(out)],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "217 sentences, 30 exclaim or ask; 173 to train on, 44 held out" in result.stdout
    accuracy, majority = (float(x) for x in
                          result.stdout.split("held-out accuracy ")[1].split(")")[0].replace(
                              "(always guessing the commoner label:", "").split())
    assert majority == pytest.approx(35 / 44, abs=1e-3) and accuracy >= 0.9, result.stdout
    assert (tmp_path / "classifier.csv").read_text().startswith("text,label\n")
    assert {"model.safetensors", "config.json", "tokenizer.json", "modeling_gpt_scratch.py"} <= {
        p.name for p in out.iterdir()}
