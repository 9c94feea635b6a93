"""ONNX export (`gpt-scratch export onnx`) run in ONNX Runtime: logits, the KV cache, greedy decoding = generate().

The dynamo exporter takes ~15 s even for a tiny model, so the module exports once (through the command line)."""

import numpy as np
import onnxruntime
import pytest
import torch
from conftest import GREEDY, assert_uses_whole_prompt, sharpen, tiny_config

from gpt_scratch import GPTScratchForCausalLM
from gpt_scratch.cli import main
from gpt_scratch.onnx_export import ONNX_FILE, greedy_onnxruntime

PAD = 50256


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    folder = tmp_path_factory.mktemp("onnx")
    torch.manual_seed(0)
    model = GPTScratchForCausalLM(tiny_config(qkv_bias=True))
    sharpen(model, 32)  # a continuation that depends on the whole prompt
    model.save_pretrained(folder / "model")
    assert main(["export", "onnx", str(folder / "model"), str(folder / "onnx")]) == 0
    return model.eval(), folder / "onnx"


def left_padded(lengths: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(lengths)
    ids = torch.full((len(lengths), width), PAD)
    for row, n in enumerate(lengths):
        ids[row, width - n:] = torch.randint(0, PAD, (n,))
    return ids, (ids != PAD).long()


def test_the_folder_has_the_graph_config_and_tokenizer_with_dynamic_axes(exported):
    _, folder = exported
    assert {ONNX_FILE, "config.json", "generation_config.json", "tokenizer.json"} <= {p.name for p in folder.iterdir()}
    session = onnxruntime.InferenceSession(str(folder / ONNX_FILE), providers=["CPUExecutionProvider"])
    inputs = {i.name: i.shape for i in session.get_inputs()}
    assert inputs["input_ids"] == ["batch", "sequence"] and inputs["position_ids"] == ["batch", "sequence"]
    assert inputs["past_key_values.1.value"] == ["batch", 4, "past_sequence", 8] and len(inputs) == 3 + 4
    outputs = {o.name: o.shape for o in session.get_outputs()}
    assert outputs["logits"] == ["batch", "sequence", 50257] and outputs["present.0.key"][2] == (
        "past_sequence + sequence")


@pytest.mark.parametrize("lengths", [[7], [6, 3, 5]])
def test_logits_with_and_without_past_match_torch(exported, lengths):
    model, folder = exported
    session = onnxruntime.InferenceSession(str(folder / ONNX_FILE), providers=["CPUExecutionProvider"])
    ids, mask = left_padded(lengths)
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    empty = np.zeros((len(lengths), 4, 0, 8), dtype=np.float32)
    past = {f"past_key_values.{i}.{kind}": empty for i in range(2) for kind in ("key", "value")}
    # The prompt but its last token with no past, then the last token with the first step's keys and values.
    first, *present = session.run(None, {"input_ids": ids[:, :-1].numpy(), "attention_mask": mask[:, :-1].numpy(),
                                         "position_ids": positions[:, :-1].numpy(), **past})
    second, *_ = session.run(None, {"input_ids": ids[:, -1:].numpy(), "attention_mask": mask.numpy(),
                                    "position_ids": positions[:, -1:].numpy(), **dict(zip(past, present))})
    with torch.no_grad():
        expected = model(ids, attention_mask=mask, position_ids=positions).logits
    real = mask.bool()  # padding positions' logits are meaningless on both sides
    onnx_logits = torch.from_numpy(np.concatenate([first, second], axis=1))
    torch.testing.assert_close(onnx_logits[real], expected[real], rtol=0, atol=1e-4)


def test_greedy_loop_in_onnxruntime_equals_generate(exported):
    model, folder = exported
    ids, mask = left_padded([6, 4])
    assert_uses_whole_prompt(model, ids[:1])
    expected = model.generate(ids, attention_mask=mask, max_new_tokens=10, **GREEDY)[:, ids.shape[1]:]
    assert greedy_onnxruntime(folder, ids.numpy(), mask.numpy(), max_new_tokens=10).tolist() == expected.tolist()
    with pytest.raises(ValueError, match="longer than the context length 64"):
        greedy_onnxruntime(folder, ids.numpy(), mask.numpy(), max_new_tokens=60)


def test_an_existing_folder_is_refused(exported, capsys):
    _, folder = exported
    assert main(["export", "onnx", str(folder.parent / "model"), str(folder)]) == 1
    assert "exists; pass --overwrite" in capsys.readouterr().err
