"""Generation as with any transformers causal LM: AutoModelForCausalLM and pipeline (single prompt, batch),
sampling, streaming.

    python examples/generate.py                                  # the model `gpt-scratch demo` writes
    python examples/generate.py --model my-gpt --prompt "Hello, I am" --prompt "The picture"
"""

import argparse
from pathlib import Path
from threading import Thread

from transformers import AutoModelForCausalLM, AutoTokenizer, TextIteratorStreamer, pipeline, set_seed

import gpt_scratch  # noqa: F401  (registers gpt_scratch with the Auto classes)

PROMPTS = ["Every effort moves you", "I HAD always thought", "The picture"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=Path("gpt-scratch-demo"),
                        help="a saved model folder (default: what `gpt-scratch demo` writes)")
    parser.add_argument("--prompt", action="append", dest="prompts",
                        help="a prompt (repeat for a batch; default: three from the book)")
    parser.add_argument("--max-new-tokens", type=int, default=20)
    args = parser.parse_args()
    if not (args.model / "config.json").is_file():
        parser.error(f"{args.model} is not a saved model folder; run `gpt-scratch demo` or pass --model")
    prompts = args.prompts or PROMPTS

    generator = pipeline("text-generation", model=str(args.model))

    print("== one prompt, greedy")
    print(generator(prompts[0], max_new_tokens=args.max_new_tokens, do_sample=False)[0]["generated_text"])

    print("\n== a batch of prompts of different lengths (left-padded; same text as one by one)")
    for result in generator(prompts, batch_size=len(prompts), max_new_tokens=args.max_new_tokens, do_sample=False):
        print("-", result[0]["generated_text"].replace("\n", " "))

    print("\n== sampling: three continuations, only the new text")
    set_seed(0)
    for result in generator(prompts[-1], do_sample=True, temperature=0.8, top_k=40, top_p=0.95,
                            repetition_penalty=1.2, num_return_sequences=3, return_full_text=False,
                            max_new_tokens=args.max_new_tokens):
        print("-", repr(result["generated_text"]))

    print("\n== streaming, token by token")
    model = AutoModelForCausalLM.from_pretrained(args.model)
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    streamer = TextIteratorStreamer(tokenizer, skip_prompt=True)
    inputs = tokenizer(prompts[-1], return_tensors="pt")
    thread = Thread(target=model.generate, kwargs=dict(**inputs, streamer=streamer, do_sample=False,
                                                        max_new_tokens=args.max_new_tokens))
    thread.start()
    print(prompts[-1], end="", flush=True)
    for piece in streamer:
        print(piece, end="", flush=True)
    thread.join()
    print()


if __name__ == "__main__":
    main()
