"""Fine-tune a GPT into a classifier, as the book's chapter 6 does (spam or not), on text we ship.

The labelled data is a CSV made from the book's the-verdict.txt: each sentence is labelled "exclaims or asks" when it
ends in "!" or "?" (a closing quotation mark may follow) and "states" otherwise, 30 of 217 sentences. Every fifth
sentence is held out. The model is `GPTScratchForSequenceClassification`: the GPT, and a `score` head read at each
sentence's last token (the last that is not padding).

    python examples/classify.py                           # a small GPT from scratch, 60 steps: seconds on a CPU
    python examples/classify.py --init gpt-scratch-demo  # start from a saved causal LM (the demo's)
"""

import argparse
import csv
import re
from pathlib import Path

import torch
from torch.utils.data import Dataset
from transformers import (
    AutoModelForSequenceClassification,
    AutoTokenizer,
    DataCollatorWithPadding,
    Trainer,
    TrainingArguments,
    pipeline,
)

from gpt_scratch import GPTScratchConfig, GPTScratchForSequenceClassification, load_tokenizer
from gpt_scratch.data import THE_VERDICT

LABELS = ("states", "exclaims or asks")


def write_csv(path: Path) -> None:
    """the-verdict.txt's sentences as `text,label` rows: 1 where a sentence ends in "!" or "?", else 0."""
    text = " ".join(THE_VERDICT.read_text(encoding="utf-8").split())
    sentences = [s for s in re.split(r'(?<=[.!?])\s+', text) if s]
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["text", "label"])
        writer.writerows((s, int(s.rstrip('"').endswith(("!", "?")))) for s in sentences)


class LabelledTexts(Dataset):
    """Tokenized `text,label` rows, for Trainer with DataCollatorWithPadding."""

    def __init__(self, rows: list[dict[str, str]], tokenizer, max_length: int):
        self.items = [{**tokenizer(row["text"], truncation=True, max_length=max_length), "labels": int(row["label"])}
                      for row in rows]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict:
        return self.items[i]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("out/classifier"))
    parser.add_argument("--init", type=Path, help="a saved causal LM to start from (default: a small GPT, random)")
    parser.add_argument("--steps", type=int, default=60)
    args = parser.parse_args()

    csv_path = args.out.with_name(args.out.name + ".csv")
    write_csv(csv_path)
    with csv_path.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    train_rows = [row for i, row in enumerate(rows) if i % 5]
    test_rows = [row for i, row in enumerate(rows) if not i % 5]
    print(f"{csv_path}: {len(rows)} sentences, {sum(r['label'] == '1' for r in rows)} exclaim or ask; "
          f"{len(train_rows)} to train on, {len(test_rows)} held out")

    labels = {"id2label": dict(enumerate(LABELS)), "label2id": {name: i for i, name in enumerate(LABELS)}}
    torch.manual_seed(0)
    if args.init is not None:  # the book's way: a pretrained GPT, its LM head replaced by a fresh 2-class `score`
        model = AutoModelForSequenceClassification.from_pretrained(args.init, num_labels=2, **labels)
    else:
        config = GPTScratchConfig(context_length=128, emb_dim=64, n_heads=4, n_layers=2, drop_rate=0.0, **labels)
        model = GPTScratchForSequenceClassification(config)
    tokenizer = load_tokenizer(model_max_length=model.config.context_length)
    train = LabelledTexts(train_rows, tokenizer, model.config.context_length)
    test = LabelledTexts(test_rows, tokenizer, model.config.context_length)

    training_args = TrainingArguments(output_dir=str(args.out), max_steps=args.steps, per_device_train_batch_size=16,
                                      learning_rate=3e-3, warmup_steps=10, logging_steps=25, save_strategy="no",
                                      report_to=[], use_cpu=True, seed=0)
    trainer = Trainer(model=model, args=training_args, train_dataset=train, data_collator=DataCollatorWithPadding(
        tokenizer))
    result = trainer.train()
    predictions = trainer.predict(test)
    accuracy = float((predictions.predictions.argmax(-1) == predictions.label_ids).mean())
    positives = sum(r["label"] == "1" for r in test_rows)
    majority = max(positives, len(test_rows) - positives) / len(test_rows)
    print(f"trained {args.steps} steps, final training loss {result.training_loss:.3f}")
    print(f"held-out accuracy {accuracy:.3f} (always guessing the commoner label: {majority:.3f})")

    trainer.save_model(args.out)
    tokenizer.save_pretrained(args.out)
    classifier = pipeline("text-classification", model=AutoModelForSequenceClassification.from_pretrained(args.out),
                          tokenizer=AutoTokenizer.from_pretrained(args.out))
    for row in [r for r in test_rows if r["label"] == "1"][:2] + [r for r in test_rows if r["label"] == "0"][:2]:
        print(f"{classifier(row['text'])[0]['label']:>16}  {row['text'][:70]}")
    print(f"saved to {args.out}")


if __name__ == "__main__":
    main()
