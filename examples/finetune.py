"""Fine-tune a model on a text file with transformers' Trainer: any GPT-2 checkpoint (converted on the fly), one of
our folders, or the book's weights converted with `gpt-scratch convert`.

    python examples/finetune.py openai-community/gpt2 my.txt --out gpt2-my --steps 200   # downloads GPT-2 once
    python examples/finetune.py out/chapter5                                              # the-verdict.txt

The text is tokenized with tiktoken (streamed), cut into overlapping windows (stride half the window, as the
book's GPTDatasetV1 with stride < max_length), split 90/10; Trainer runs AdamW with warmup and cosine decay and
reports the validation loss before and after. `gpt-scratch train TEXT OUT --init MODEL` does the same from the
command line.
"""

import argparse
import math
from pathlib import Path

import torch
from transformers import Trainer, TrainingArguments

from gpt_scratch import GPTScratchForCausalLM, TokenWindowDataset, collate_windows, load_tokenizer, tokenize_file
from gpt_scratch.data import THE_VERDICT


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", help="a GPT-2 folder or Hub id, or a gpt_scratch folder")
    parser.add_argument("text", nargs="?", type=Path, default=THE_VERDICT, help="default: the-verdict.txt")
    parser.add_argument("--out", type=Path, default=Path("out/finetuned"))
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--lr", type=float, default=5e-5)
    parser.add_argument("--context-length", type=int, help="training window (default: the model's, at most 256)")
    args = parser.parse_args()
    if not args.text.is_file():
        parser.error(f"{args.text} not found: pass a text file")

    model = GPTScratchForCausalLM.from_pretrained(args.model)  # a GPT-2 checkpoint is converted as it loads
    window = args.context_length or min(model.config.context_length, 256)
    ids = tokenize_file(args.text)
    split = int(0.9 * len(ids))
    train_set = TokenWindowDataset(ids[:split], window, stride=window // 2)
    val_set = TokenWindowDataset(ids[split:], window, stride=window)
    print(f"{args.model}: {model.num_parameters():,} parameters; {len(train_set)} training and {len(val_set)} "
          f"validation windows of {window} tokens from {args.text.name}")

    training_args = TrainingArguments(
        output_dir=str(args.out), max_steps=args.steps, per_device_train_batch_size=4, per_device_eval_batch_size=4,
        learning_rate=args.lr, lr_scheduler_type="cosine", warmup_steps=max(1, args.steps // 10), weight_decay=0.1,
        eval_strategy="steps", eval_steps=max(1, args.steps // 2), logging_steps=max(1, args.steps // 10),
        prediction_loss_only=True, save_strategy="no", report_to="none",
        dataloader_pin_memory=torch.cuda.is_available(),  # pinned memory only helps copies to a GPU
    )
    trainer = Trainer(model=model, args=training_args, train_dataset=train_set, eval_dataset=val_set,
                      data_collator=collate_windows)
    before = trainer.evaluate()["eval_loss"]
    trainer.train()
    after = trainer.evaluate()["eval_loss"]
    print(f"validation loss {before:.3f} -> {after:.3f} (perplexity {math.exp(before):,.1f} -> {math.exp(after):,.1f})")
    trainer.save_model(args.out)
    load_tokenizer(model_max_length=model.config.context_length).save_pretrained(args.out)
    print(f"saved to {args.out}")


if __name__ == "__main__":
    main()
