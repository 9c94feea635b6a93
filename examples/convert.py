"""Convert a transformers GPT-2 checkpoint to gpt_scratch and back, and check both against transformers' own
GPT2LMHeadModel: the same logits, the same greedy tokens, the same perplexity.

    python examples/convert.py openai-community/gpt2 gpt2-scratch       # downloads GPT-2 once
    python examples/convert.py my-gpt2-folder my-gpt                    # any GPT-2 folder

The same from the command line: `gpt-scratch convert SRC DST`, `gpt-scratch convert DST DST-hf --to hf-gpt2`,
`gpt-scratch eval DST DST-hf TEXT`. To publish DST: examples/push_to_hub.py or `gpt-scratch push DST REPO_ID`.
"""

import argparse
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, GPT2LMHeadModel

from gpt_scratch import load_tokenizer
from gpt_scratch.checkpoint import convert_checkpoint
from gpt_scratch.data import THE_VERDICT
from gpt_scratch.evaluation import evaluate_text
from gpt_scratch.models import load_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("src", help="a transformers GPT-2 folder or Hub id")
    parser.add_argument("dst", type=Path, help="the gpt_scratch folder to write (DST-hf gets the round trip)")
    parser.add_argument("--text", type=Path, default=THE_VERDICT, help="text for the perplexity check")
    args = parser.parse_args()

    converted = convert_checkpoint(args.src, args.dst, overwrite=True)  # one tensor at a time
    load_tokenizer(model_max_length=1024).save_pretrained(args.dst)    # convert writes weights and config only
    print(f"{args.src} -> {args.dst}: {converted.tensors} tensors, {converted.bytes:,} bytes")
    back = convert_checkpoint(args.dst, args.dst.with_name(f"{args.dst.name}-hf"), dst_format="hf-gpt2",
                              overwrite=True)
    print(f"{args.dst} -> {back.path}: a folder GPT2LMHeadModel.from_pretrained reads")

    # The same logits and the same greedy tokens as transformers' own GPT-2.
    reference = GPT2LMHeadModel.from_pretrained(args.src).eval()
    ours = AutoModelForCausalLM.from_pretrained(args.dst).eval()
    inputs = load_tokenizer()("Every effort moves you", return_tensors="pt")
    greedy = dict(max_new_tokens=10, do_sample=False, pad_token_id=50256)
    with torch.no_grad():
        difference = (ours(**inputs).logits - reference(**inputs).logits).abs().max().item()
        same = torch.equal(ours.generate(**inputs, **greedy), reference.generate(**inputs, **greedy))
    print(f"logits differ from GPT2LMHeadModel's by at most {difference:.1e}; greedy tokens "
          f"{'identical' if same else 'DIFFERENT'}")

    scores = {name: evaluate_text(load_model(name), args.text, progress=False) for name in (args.dst, back.path)}
    for name, score in scores.items():
        print(f"{name}: perplexity {score.perplexity:,.3f}, {score.bits_per_byte:.4f} bits per byte on "
              f"{args.text.name}")


if __name__ == "__main__":
    main()
