"""The pipeline calls that test_pipeline.py makes both here and in a process without gpt_scratch.

Imports only transformers: the remote-code subprocess imports this module where gpt_scratch is blocked.
"""

PROMPTS = ["Hello", "Every effort moves you", "It had always been my fancy to"]

CALLS = {
    "single": (PROMPTS[1], dict(max_new_tokens=8, do_sample=False)),
    "batch": (PROMPTS, dict(batch_size=2, max_new_tokens=8, do_sample=False)),
    "sampled": (PROMPTS[0], dict(do_sample=True, temperature=0.7, top_k=50, top_p=0.9, repetition_penalty=1.3,
                                 num_return_sequences=2, max_new_tokens=8)),
    "new_text_only": (PROMPTS[2], dict(max_new_tokens=8, do_sample=False, return_full_text=False)),
}


def run_calls(generator) -> dict:
    from transformers import TextIteratorStreamer, set_seed

    results = {}
    for name, (prompt, kwargs) in CALLS.items():
        set_seed(0)
        results[name] = generator(prompt, **kwargs)
    free = results["new_text_only"][0]["generated_text"]
    stop = free[len(free) // 2:len(free) // 2 + 2]
    results["stopped"] = generator(PROMPTS[2], max_new_tokens=8, do_sample=False, stop_sequence=stop,
                                   return_full_text=False)
    streamer = TextIteratorStreamer(generator.tokenizer, skip_prompt=True)
    generator(PROMPTS[1], max_new_tokens=8, do_sample=False, streamer=streamer)
    results["streamed"] = "".join(streamer)
    return results
