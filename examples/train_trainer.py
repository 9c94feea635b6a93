"""Train with transformers' Trainer on a text file: tiktoken ids, the book's sliding windows, our collate.

    python examples/train_trainer.py                           # a few steps on the shipped the-verdict.txt
    python examples/train_trainer.py --text my.txt --steps 500 --out my-gpt
"""

import argparse
from pathlib import Path

from transformers import Trainer, TrainingArguments

from gpt_scratch import GPTScratchConfig, GPTScratchForCausalLM, TokenWindowDataset, collate_windows, load_tokenizer
from gpt_scratch.data import THE_VERDICT

DEFAULT_TEXT = THE_VERDICT  # the book's training text, shipped with gpt_scratch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--text", type=Path, default=DEFAULT_TEXT)
    parser.add_argument("--out", type=Path, default=Path("out/trainer"))
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--context-length", type=int, default=64)
    args = parser.parse_args()
    if not args.text.is_file():
        parser.error(f"training text {args.text} not found; pass --text PATH to a plain-text file")

    config = GPTScratchConfig(context_length=args.context_length, emb_dim=64, n_heads=4, n_layers=2, drop_rate=0.1,
                              tie_word_embeddings=True)
    model = GPTScratchForCausalLM(config)
    # Overlapping windows (stride half the context), as in the book's GPTDatasetV1.
    dataset = TokenWindowDataset.from_file(args.text, config.context_length, stride=config.context_length // 2)
    print(f"{len(dataset)} windows of {config.context_length} tokens from {args.text.name}")

    training_args = TrainingArguments(output_dir=str(args.out), max_steps=args.steps, per_device_train_batch_size=8,
                                      learning_rate=2e-3, warmup_steps=2, logging_steps=5, save_strategy="no",
                                      report_to=[], use_cpu=True)
    trainer = Trainer(model=model, args=training_args, train_dataset=dataset, data_collator=collate_windows)
    result = trainer.train()
    print(f"final training loss {result.training_loss:.3f}")
    trainer.save_model(args.out)
    load_tokenizer(model_max_length=config.context_length).save_pretrained(args.out)
    print(f"saved to {args.out}")


if __name__ == "__main__":
    main()
