"""The model's own contract: outputs, loss, init, checkpointing, registration and clear input errors."""

import math

import pytest
import torch
from conftest import CACHE_NAME, tiny_config
from torch.nn import functional as F
from torch.testing import assert_close
from transformers import AutoModel, AutoModelForCausalLM, DynamicCache

import gpt_scratch
from gpt_scratch import GPTScratchConfig, GPTScratchForCausalLM, GPTScratchModel


def test_book_module_names():
    model = GPTScratchForCausalLM(tiny_config(qkv_bias=True))
    names = set(model.state_dict())
    for name in ["model.tok_emb.weight", "model.pos_emb.weight", "model.trf_blocks.1.norm1.scale",
                 "model.trf_blocks.1.norm2.shift", "model.trf_blocks.0.att.W_query.weight",
                 "model.trf_blocks.0.att.W_key.bias", "model.trf_blocks.0.att.W_value.weight",
                 "model.trf_blocks.0.att.out_proj.weight", "model.trf_blocks.0.ff.layers.expand.weight",
                 "model.trf_blocks.0.ff.layers.project.bias", "model.final_norm.scale", "lm_head.weight"]:
        assert name in names
    assert isinstance(model.model.drop_emb, torch.nn.Dropout)
    assert isinstance(model.model.trf_blocks[0].drop_shortcut, torch.nn.Dropout)


def test_loss_is_shifted_next_token_cross_entropy(tiny_model):
    input_ids = torch.randint(0, 50257, (2, 10))
    labels = input_ids.clone()
    labels[0, :3] = -100
    out = tiny_model(input_ids, labels=labels)
    expected = F.cross_entropy(out.logits[:, :-1].reshape(-1, 50257), labels[:, 1:].reshape(-1), ignore_index=-100)
    assert_close(out.loss, expected)


def test_logits_to_keep_return_dict_false_and_base_model(tiny_model):
    input_ids = torch.randint(0, 50257, (2, 10))
    full = tiny_model(input_ids).logits
    assert_close(tiny_model(input_ids, logits_to_keep=1).logits, full[:, -1:])
    as_tuple = tiny_model(input_ids, return_dict=False, use_cache=False)
    assert isinstance(as_tuple, tuple)
    assert_close(as_tuple[0], full)
    hidden = tiny_model.model(input_ids).last_hidden_state
    assert hidden.shape == (2, 10, 32)
    assert_close(tiny_model.lm_head(hidden), full)


def test_inputs_embeds_equal_input_ids(tiny_model):
    input_ids = torch.randint(0, 50257, (2, 10))
    embeds = tiny_model.get_input_embeddings()(input_ids)
    assert_close(tiny_model(inputs_embeds=embeds).logits, tiny_model(input_ids).logits)


def test_cache_is_created_when_use_cache(tiny_model):
    out = tiny_model(torch.randint(0, 50257, (1, 5)), use_cache=True)
    assert isinstance(out[CACHE_NAME], DynamicCache)
    assert out[CACHE_NAME].get_seq_length() == 5
    assert getattr(tiny_model(torch.randint(0, 50257, (1, 5)), use_cache=False), CACHE_NAME) is None


def test_output_attentions_are_causal_probabilities():
    model = GPTScratchForCausalLM._from_config(tiny_config(), attn_implementation="eager").eval()
    out = model(torch.randint(0, 50257, (2, 6)), output_attentions=True)
    assert len(out.attentions) == 2
    weights = out.attentions[0]
    assert weights.shape == (2, 4, 6, 6)
    assert_close(weights.sum(-1), torch.ones(2, 4, 6))
    assert torch.all(weights.triu(diagonal=1) == 0)


def test_tied_and_untied_heads():
    tied = GPTScratchForCausalLM(tiny_config(tie_word_embeddings=True))
    assert tied.lm_head.weight is tied.model.tok_emb.weight
    untied = GPTScratchForCausalLM(tiny_config())
    assert untied.lm_head.weight is not untied.model.tok_emb.weight


def test_gpt2_initialisation():
    config = tiny_config(emb_dim=256, n_heads=4, n_layers=8, qkv_bias=True)
    model = GPTScratchForCausalLM(config)
    block = model.model.trf_blocks[3]
    residual_std = 0.02 / math.sqrt(2 * 8)
    assert block.att.out_proj.weight.std().item() == pytest.approx(residual_std, rel=0.05)
    assert block.ff.layers[2].weight.std().item() == pytest.approx(residual_std, rel=0.05)
    assert block.att.W_query.weight.std().item() == pytest.approx(0.02, rel=0.05)
    assert block.ff.layers[0].weight.std().item() == pytest.approx(0.02, rel=0.05)
    assert model.model.tok_emb.weight.std().item() == pytest.approx(0.02, rel=0.05)
    assert torch.all(block.norm1.scale == 1) and torch.all(block.norm1.shift == 0)
    assert torch.all(block.att.W_key.bias == 0) and torch.all(block.ff.layers[0].bias == 0)


def test_gradient_checkpointing_gives_the_same_gradients():
    config = tiny_config()
    plain = GPTScratchForCausalLM(config).train()
    checkpointed = GPTScratchForCausalLM(config).train()
    checkpointed.load_state_dict(plain.state_dict())
    checkpointed.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    assert checkpointed.model.trf_blocks[0].gradient_checkpointing
    input_ids = torch.randint(0, 50257, (2, 12))
    for model in (plain, checkpointed):
        model(input_ids, labels=input_ids, use_cache=False).loss.backward()
    for (name, a), (_, b) in zip(plain.named_parameters(), checkpointed.named_parameters()):
        assert_close(a.grad, b.grad, msg=name)


def test_dropout_is_active_only_in_training():
    model = GPTScratchForCausalLM(tiny_config(drop_rate=0.5))
    input_ids = torch.randint(0, 50257, (1, 8))
    model.eval()
    assert torch.equal(model(input_ids).logits, model(input_ids).logits)
    model.train()
    assert not torch.equal(model(input_ids, use_cache=False).logits, model(input_ids, use_cache=False).logits)


def test_no_split_modules_and_attention_backends():
    assert GPTScratchForCausalLM._no_split_modules == ["TransformerBlock"]
    assert GPTScratchForCausalLM._supports_attention_backend
    assert GPTScratchForCausalLM._tied_weights_keys == {"lm_head.weight": "model.tok_emb.weight"}
    for attn in ("eager", "sdpa"):
        model = AutoModelForCausalLM.from_config(tiny_config(), attn_implementation=attn)
        assert model.config._attn_implementation == attn


def test_registration_is_idempotent_and_auto_classes_resolve():
    gpt_scratch.register()
    gpt_scratch.register()
    assert type(AutoModel.from_config(tiny_config())) is GPTScratchModel
    assert type(AutoModelForCausalLM.from_config(tiny_config())) is GPTScratchForCausalLM


# ----- bad input: a ValueError naming the limit, never an IndexError from inside torch ---------------


@pytest.mark.parametrize("bad_id", [-1, 50257, 10**6])
def test_token_id_outside_vocabulary(tiny_model, bad_id):
    input_ids = torch.tensor([[1, 2, bad_id]])
    with pytest.raises(ValueError, match=rf"token id {bad_id} is outside the vocabulary \[0, 50257\)"):
        tiny_model(input_ids)


def test_sequence_longer_than_context(tiny_model):
    with pytest.raises(ValueError, match="65 tokens .* longer than the context length 64"):
        tiny_model(torch.zeros(1, 65, dtype=torch.long))
    out = tiny_model(torch.zeros(1, 60, dtype=torch.long), use_cache=True)
    with pytest.raises(ValueError, match=r"65 tokens \(60 cached \+ 5 new\)"):
        tiny_model(torch.zeros(1, 5, dtype=torch.long), **{CACHE_NAME: out[CACHE_NAME]})


def test_position_ids_outside_context(tiny_model):
    with pytest.raises(ValueError, match=r"position ids must lie in \[0, 64\)"):
        tiny_model(torch.zeros(1, 3, dtype=torch.long), position_ids=torch.tensor([[62, 63, 64]]))


@pytest.mark.parametrize(
    "input_ids,message",
    [
        (torch.zeros(1, 4), "input_ids must be an integer tensor"),
        (torch.zeros(1, 4, dtype=torch.bool), "input_ids must be an integer tensor"),
        (torch.zeros(4, dtype=torch.long), r"shape \(batch, seq_len\), got shape \(4,\)"),
        (torch.zeros(1, 2, 4, dtype=torch.long), r"shape \(batch, seq_len\), got shape \(1, 2, 4\)"),
        ([[1, 2, 3]], "input_ids must be a torch.Tensor, got list"),
    ],
)
def test_wrong_dtype_or_rank(tiny_model, input_ids, message):
    with pytest.raises(ValueError, match=message):
        tiny_model(input_ids)


def test_inputs_embeds_of_wrong_width(tiny_model):
    with pytest.raises(ValueError, match=r"inputs_embeds must have shape \(batch, seq_len, 32\)"):
        tiny_model(inputs_embeds=torch.zeros(1, 3, 16))
    with pytest.raises(ValueError, match="exactly one of input_ids or inputs_embeds"):
        tiny_model()


def test_generate_past_context_fails_before_any_work(tiny_model, monkeypatch):
    calls = []
    monkeypatch.setattr(tiny_model.model, "forward", lambda *a, **k: calls.append(1))
    with pytest.raises(ValueError, match=r"reach 70 tokens, longer than the context length 64; lower "
                                         r"max_new_tokens to at most 54"):
        tiny_model.generate(torch.zeros(1, 10, dtype=torch.long), max_new_tokens=60, pad_token_id=50256)
    assert calls == []


def test_config_preset_builds_on_meta_for_all_sizes():
    with torch.device("meta"):
        model = GPTScratchForCausalLM(GPTScratchConfig.from_preset("gpt2-xl"))
    assert len(model.model.trf_blocks) == 48


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("bias", [True, False])
def test_linear_cpu_kernels_equal_f_linear(dtype, bias):
    # Each CPU kernel Linear may take (oneDNN's inner product, with and without gradients; addmv for one row) and
    # Linear itself give F.linear's numbers and gradients up to rounding, in every shape a caller may pass.
    from gpt_scratch.modeling_gpt_scratch import Linear, _matrix_vector, _onednn, _OneDNNLinear

    torch.manual_seed(0)
    layer = Linear(48, 80, bias=bias).to(dtype)
    tolerance = 1e-5 if dtype == torch.float32 else 2e-2
    for shape in ((1, 1, 48), (1, 48), (48,), (3, 1, 48), (1, 5, 48), (2, 40, 48)):
        x = torch.randn(shape, dtype=dtype, requires_grad=True)
        expected = F.linear(x, layer.weight, layer.bias)
        grads = torch.autograd.grad(expected.float().square().sum(), [x, *layer.parameters()])
        kernels = [_onednn] + ([_matrix_vector] if x.shape[:-1].numel() == 1 else [])
        with torch.no_grad():
            for kernel in kernels:
                assert_close(kernel(x, layer.weight, layer.bias), expected, atol=tolerance, rtol=tolerance)
            assert_close(layer(x), expected, atol=tolerance, rtol=tolerance)
        for product in (layer, lambda x: _OneDNNLinear.apply(x, layer.weight, layer.bias)):
            out = product(x)
            assert out.shape == expected.shape == (*shape[:-1], 80)
            assert_close(out, expected, atol=tolerance, rtol=tolerance)
            for grad, want in zip(torch.autograd.grad(out.float().square().sum(), [x, *layer.parameters()]), grads):
                assert_close(grad, want, atol=tolerance * 10, rtol=tolerance)


def test_linear_picks_its_cpu_kernel_by_dtype_rows_and_cpu(monkeypatch):
    # float32 on a CPU: oneDNN (in training too); one bf16 row: addmv on a CPU with AMX, else F.linear; autocast,
    # use_cpu_kernels=False and a CPU where oneDNN fails its check: F.linear. The choice never depends on timing.
    from gpt_scratch import modeling_gpt_scratch as modeling

    calls = []
    onednn, matrix_vector = modeling._onednn, modeling._matrix_vector
    monkeypatch.setattr(modeling, "_onednn", lambda *args: calls.append("onednn") or onednn(*args))
    monkeypatch.setattr(modeling, "_matrix_vector", lambda *args: calls.append("addmv") or matrix_vector(*args))
    has = {"onednn": True, "amx": False}
    monkeypatch.setattr(modeling, "_onednn_runs", lambda: has["onednn"])
    monkeypatch.setattr(modeling, "_has_amx", lambda: has["amx"])
    layer = modeling.Linear(48, 80)
    row, rows = torch.randn(1, 48), torch.randn(7, 48)

    def kernels(layer, x, **autocast):
        calls.clear()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bool(autocast)):
            layer(x)
        return calls[:]

    assert kernels(layer, row) == kernels(layer, rows) == ["onednn"]  # the weight wants gradients: training
    with torch.no_grad():
        assert kernels(layer, rows) == ["onednn"]
        assert kernels(layer, row, autocast=True) == []
        bf16 = modeling.Linear(48, 80).to(torch.bfloat16)
        assert kernels(bf16, row.bfloat16()) == kernels(bf16, rows.bfloat16()) == []
        has["amx"] = True
        assert kernels(bf16, row.bfloat16()) == ["addmv"] and kernels(bf16, rows.bfloat16()) == []
        has["onednn"] = False
        assert kernels(layer, rows) == []
        has["onednn"] = True
        monkeypatch.setattr(modeling.Linear, "use_cpu_kernels", False)
        assert kernels(layer, row) == kernels(bf16, row.bfloat16()) == []


def test_onednn_is_used_only_where_it_runs_and_agrees(monkeypatch):
    from gpt_scratch import modeling_gpt_scratch as modeling

    assert modeling._onednn_runs() == torch.backends.mkldnn.is_available()  # this machine's torch has it
    for fake in (lambda *args: torch.zeros(3, 8), lambda *args: (_ for _ in ()).throw(RuntimeError("no primitive"))):
        modeling._onednn_runs.cache_clear()
        monkeypatch.setattr(modeling, "_onednn", fake)
        assert not modeling._onednn_runs()
    monkeypatch.undo()
    modeling._onednn_runs.cache_clear()
