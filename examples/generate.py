"""Generation as with any transformers causal LM: pipeline (single, batched), sampling, streaming.

    python examples/generate.py                      # uses out/quickstart (run examples/quickstart.py first)
    python examples/generate.py --model my-gpt       # any gpt_scratch folder; add --remote-code where the
                                                     # gpt_scratch package is not installed
"""

import argparse
from pathlib import Path
from threading import Thread

from transformers import AutoModelForCausalLM, AutoTokenizer, TextIteratorStreamer, pipeline, set_seed

import gpt_scratch  # noqa: F401  (registers gpt_scratch with the Auto classes)

PROMPTS = ["Every effort moves you", "I HAD always thought", "The picture"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=Path("out/quickstart"))
    parser.add_argument("--max-new-tokens", type=int, default=20)
    args = parser.parse_args()
    if not (args.model / "config.json").is_file():
        parser.error(f"{args.model} is not a saved model folder; run examples/quickstart.py or pass --model")

    generator = pipeline("text-generation", model=str(args.model))

    print("== one prompt, greedy")
    print(generator(PROMPTS[0], max_new_tokens=args.max_new_tokens, do_sample=False)[0]["generated_text"])

    print("\n== a batch of prompts of different lengths (left-padded; same text as one by one)")
    for result in generator(PROMPTS, batch_size=len(PROMPTS), max_new_tokens=args.max_new_tokens, do_sample=False):
        print("-", result[0]["generated_text"].replace("\n", " "))

    print("\n== sampling: three continuations, only the new text")
    set_seed(0)
    for result in generator(PROMPTS[1], do_sample=True, temperature=0.8, top_k=40, top_p=0.95,
                            repetition_penalty=1.2, num_return_sequences=3, return_full_text=False,
                            max_new_tokens=args.max_new_tokens):
        print("-", repr(result["generated_text"]))

    print("\n== streaming, token by token")
    model = AutoModelForCausalLM.from_pretrained(args.model)
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    streamer = TextIteratorStreamer(tokenizer, skip_prompt=True)
    inputs = tokenizer(PROMPTS[2], return_tensors="pt")
    thread = Thread(target=model.generate, kwargs=dict(**inputs, streamer=streamer, do_sample=False,
                                                        max_new_tokens=args.max_new_tokens))
    thread.start()
    print(PROMPTS[2], end="", flush=True)
    for piece in streamer:
        print(piece, end="", flush=True)
    thread.join()
    print()


if __name__ == "__main__":
    main()
