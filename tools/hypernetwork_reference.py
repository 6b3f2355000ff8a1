#!/usr/bin/env python3
"""Hypernetwork references: AUTOMATIC1111's `.pt` hypernetworks on tiny-sd1.

    python tools/hypernetwork_reference.py     # writes fixtures/hypernetwork/

A1111's `modules/hypernetworks/hypernetwork.py` is transcribed here (not imported): the
`HypernetworkModule` (its `torch.nn.Sequential` is built exactly as A1111 builds it, which
decides the state-dict indices: Linear, then the activation unless it is `linear`/None or
this is the last layer and `activate_output` is off, then LayerNorm if `add_layer_norm`,
then Dropout if `dropout_structure[i + 1] > 0`), `fix_old_state_dict`,
`parse_dropout_structure`, `Hypernetwork.save` / `Hypernetwork.load` and
`apply_single_hypernetwork` / `apply_hypernetworks`.

Files (`torch.save`, default pickle protocol, zip format, exactly the dict A1111's
`Hypernetwork.save` writes: int width -> tuple of the k and v modules' `state_dict()`s, then
'step', 'name', 'layer_structure', 'activation_func', 'is_layer_norm',
'weight_initialization', 'sd_checkpoint', 'sd_checkpoint_name', 'activate_output',
'use_dropout', 'dropout_structure', 'last_layer_dropout', 'optional_info'):

* `hn-plain.pt`        widths 16 and 32, [1, 2, 1], relu, no layer norm, no dropout.
* `hn-norm-dropout.pt` widths 16 and 32, [1, 1.5, 2, 1], swish (Hardswish), layer norm,
                       dropout_structure [0, 0.1, 0.05, 0], activate_output.
* `hn-old.pt`          width 32 only, the old layout `fix_old_state_dict` renames
                       (`linear1.*`, `linear2.*`, from a module with `linear1`/`linear2`
                       attributes), no metadata keys at all (A1111's `load` defaults:
                       [1, 2, 1], activation None, no norm, no dropout), a *list* of two
                       state dicts instead of A1111's tuple.

Weights are random (seeded), larger than A1111's "Normal" init (std 0.01) so that the
effect is visible. The references are diffusers' `UNet2DConditionModel` with an attention
processor doing what A1111's hijacked attention does: `context = x` for self-attention
(attn1), the text context for cross-attention (attn2);
`context_k, context_v = apply_hypernetworks(hypernetworks, context)`;
`k = to_k(context_k)`, `v = to_v(context_v)`; the query is untouched. The module is chosen
by the context's last dimension (16 or 32 on tiny-sd1; the context is 32 wide), widths
without a module pass unchanged, modules are in eval mode with their multiplier.
Every hypernetwork is loaded back from its written file with the transcribed `load` before
use.

`reference.safetensors` (float32): `sample` [2,4,8,8], `timesteps` [2], `context` [2,77,32],
`base` (no hypernetwork), `out.<case>` per case of `cases.json`.
"""

from __future__ import annotations

import inspect
import json
import os
from collections import OrderedDict
from pathlib import Path

import torch
import torch.nn.functional as F
from diffusers import UNet2DConditionModel
from safetensors.torch import save_file

REPO = Path(__file__).resolve().parent.parent
MODEL = REPO / "fixtures" / "tiny-sd1"
OUT = REPO / "fixtures" / "hypernetwork"
WIDTHS = [16, 32]

# ---------------------------------------------------------------------------------------
# Transcribed from AUTOMATIC1111/stable-diffusion-webui modules/hypernetworks/hypernetwork.py
# (device handling, training and the random "weight_init" schemes left out).
# ---------------------------------------------------------------------------------------


class HypernetworkModule(torch.nn.Module):
    activation_dict = {
        "linear": torch.nn.Identity,
        "relu": torch.nn.ReLU,
        "leakyrelu": torch.nn.LeakyReLU,
        "elu": torch.nn.ELU,
        "swish": torch.nn.Hardswish,
        "tanh": torch.nn.Tanh,
        "sigmoid": torch.nn.Sigmoid,
    }
    activation_dict.update(
        {
            cls_name.lower(): cls_obj
            for cls_name, cls_obj in inspect.getmembers(torch.nn.modules.activation)
            if inspect.isclass(cls_obj) and cls_obj.__module__ == "torch.nn.modules.activation"
        }
    )

    def __init__(self, dim, state_dict=None, layer_structure=None, activation_func=None,
                 weight_init="Normal", add_layer_norm=False, activate_output=False,
                 dropout_structure=None):
        super().__init__()

        self.multiplier = 1.0

        assert layer_structure is not None, "layer_structure must not be None"
        assert layer_structure[0] == 1, "Multiplier Sequence should start with size 1!"
        assert layer_structure[-1] == 1, "Multiplier Sequence should end with size 1!"

        linears = []
        for i in range(len(layer_structure) - 1):
            # Add a fully-connected layer
            linears.append(torch.nn.Linear(int(dim * layer_structure[i]), int(dim * layer_structure[i + 1])))

            # Add an activation func except last layer
            if activation_func == "linear" or activation_func is None or (i >= len(layer_structure) - 2 and not activate_output):
                pass
            elif activation_func in self.activation_dict:
                linears.append(self.activation_dict[activation_func]())
            else:
                raise RuntimeError(f"hypernetwork uses an unsupported activation function: {activation_func}")

            # Add layer normalization
            if add_layer_norm:
                linears.append(torch.nn.LayerNorm(int(dim * layer_structure[i + 1])))

            # Dropout after layers, from dropout_structure
            if dropout_structure is not None and dropout_structure[i + 1] > 0:
                assert 0 < dropout_structure[i + 1] < 1, "Dropout probability should be 0 or float between 0 and 1!"
                linears.append(torch.nn.Dropout(p=dropout_structure[i + 1]))

        self.linear = torch.nn.Sequential(*linears)

        if state_dict is not None:
            self.fix_old_state_dict(state_dict)
            self.load_state_dict(state_dict)
        # (else: A1111 initialises the weights per weight_init; here random_init() does it)

    def fix_old_state_dict(self, state_dict):
        changes = {
            "linear1.bias": "linear.0.bias",
            "linear1.weight": "linear.0.weight",
            "linear2.bias": "linear.1.bias",
            "linear2.weight": "linear.1.weight",
        }

        for fr, to in changes.items():
            x = state_dict.get(fr, None)
            if x is None:
                continue

            del state_dict[fr]
            state_dict[to] = x

    def forward(self, x):
        return x + self.linear(x) * (self.multiplier if not self.training else 1)


def parse_dropout_structure(layer_structure, use_dropout, last_layer_dropout):
    if layer_structure is None:
        layer_structure = [1, 2, 1]
    if not use_dropout:
        return [0] * len(layer_structure)
    dropout_values = [0]
    dropout_values.extend([0.3] * (len(layer_structure) - 3))
    if last_layer_dropout:
        dropout_values.append(0.3)
    else:
        dropout_values.append(0)
    dropout_values.append(0)
    return dropout_values


class Hypernetwork:
    filename = None
    name = None

    def __init__(self, name=None, enable_sizes=None, layer_structure=None, activation_func=None,
                 weight_init=None, add_layer_norm=False, use_dropout=False, activate_output=False,
                 **kwargs):
        self.filename = None
        self.name = name
        self.layers = {}
        self.step = 0
        self.sd_checkpoint = None
        self.sd_checkpoint_name = None
        self.layer_structure = layer_structure
        self.activation_func = activation_func
        self.weight_init = weight_init
        self.add_layer_norm = add_layer_norm
        self.use_dropout = use_dropout
        self.activate_output = activate_output
        self.last_layer_dropout = kwargs.get("last_layer_dropout", True)
        self.dropout_structure = kwargs.get("dropout_structure", None)
        if self.dropout_structure is None:
            self.dropout_structure = parse_dropout_structure(self.layer_structure, self.use_dropout, self.last_layer_dropout)
        self.optimizer_name = None
        self.optimizer_state_dict = None
        self.optional_info = None

        for size in enable_sizes or []:
            self.layers[size] = (
                HypernetworkModule(size, None, self.layer_structure, self.activation_func, self.weight_init,
                                   self.add_layer_norm, self.activate_output, dropout_structure=self.dropout_structure),
                HypernetworkModule(size, None, self.layer_structure, self.activation_func, self.weight_init,
                                   self.add_layer_norm, self.activate_output, dropout_structure=self.dropout_structure),
            )
        self.eval()

    def set_multiplier(self, multiplier):
        for k, layers in self.layers.items():
            for layer in layers:
                layer.multiplier = multiplier
        return self

    def eval(self):
        for k, layers in self.layers.items():
            for layer in layers:
                layer.eval()
                for param in layer.parameters():
                    param.requires_grad = False

    def save(self, filename):
        state_dict = {}

        for k, v in self.layers.items():
            state_dict[k] = (v[0].state_dict(), v[1].state_dict())

        state_dict["step"] = self.step
        state_dict["name"] = self.name
        state_dict["layer_structure"] = self.layer_structure
        state_dict["activation_func"] = self.activation_func
        state_dict["is_layer_norm"] = self.add_layer_norm
        state_dict["weight_initialization"] = self.weight_init
        state_dict["sd_checkpoint"] = self.sd_checkpoint
        state_dict["sd_checkpoint_name"] = self.sd_checkpoint_name
        state_dict["activate_output"] = self.activate_output
        state_dict["use_dropout"] = self.use_dropout
        state_dict["dropout_structure"] = self.dropout_structure
        state_dict["last_layer_dropout"] = (self.dropout_structure[-2] != 0) if self.dropout_structure is not None else self.last_layer_dropout
        state_dict["optional_info"] = self.optional_info if self.optional_info else None

        torch.save(state_dict, filename)

    def load(self, filename):
        self.filename = filename
        if self.name is None:
            self.name = os.path.splitext(os.path.basename(filename))[0]

        # A1111 calls torch.load(filename, map_location='cpu') (its own safe unpickler
        # hooks torch.load); weights_only=True is the equivalent restriction here.
        state_dict = torch.load(filename, map_location="cpu", weights_only=True)

        self.layer_structure = state_dict.get("layer_structure", [1, 2, 1])
        self.optional_info = state_dict.get("optional_info", None)
        self.activation_func = state_dict.get("activation_func", None)
        self.weight_init = state_dict.get("weight_initialization", "Normal")
        self.add_layer_norm = state_dict.get("is_layer_norm", False)
        self.dropout_structure = state_dict.get("dropout_structure", None)
        self.use_dropout = True if self.dropout_structure is not None and any(self.dropout_structure) else state_dict.get("use_dropout", False)
        self.activate_output = state_dict.get("activate_output", True)
        self.last_layer_dropout = state_dict.get("last_layer_dropout", False)
        if self.dropout_structure is None:
            self.dropout_structure = parse_dropout_structure(self.layer_structure, self.use_dropout, self.last_layer_dropout)

        for size, sd in state_dict.items():
            if type(size) == int:
                self.layers[size] = (
                    HypernetworkModule(size, sd[0], self.layer_structure, self.activation_func, self.weight_init,
                                       self.add_layer_norm, self.activate_output, self.dropout_structure),
                    HypernetworkModule(size, sd[1], self.layer_structure, self.activation_func, self.weight_init,
                                       self.add_layer_norm, self.activate_output, self.dropout_structure),
                )

        self.name = state_dict.get("name", self.name)
        self.step = state_dict.get("step", 0)
        self.sd_checkpoint = state_dict.get("sd_checkpoint", None)
        self.sd_checkpoint_name = state_dict.get("sd_checkpoint_name", None)
        self.eval()


def apply_single_hypernetwork(hypernetwork, context_k, context_v, layer=None):
    hypernetwork_layers = (hypernetwork.layers if hypernetwork is not None else {}).get(context_k.shape[2], None)

    if hypernetwork_layers is None:
        return context_k, context_v

    if layer is not None:
        layer.hyper_k = hypernetwork_layers[0]
        layer.hyper_v = hypernetwork_layers[1]

    # (A1111's devices.cond_cast_unet / cond_cast_float are identities in float32)
    context_k = hypernetwork_layers[0](context_k)
    context_v = hypernetwork_layers[1](context_v)
    return context_k, context_v


def apply_hypernetworks(hypernetworks, context, layer=None):
    context_k = context
    context_v = context
    for hypernetwork in hypernetworks:
        context_k, context_v = apply_single_hypernetwork(hypernetwork, context_k, context_v, layer)

    return context_k, context_v


# ---------------------------------------------------------------------------------------
# The old layout: A1111's first HypernetworkModule had two attributes, linear1 and linear2.
# ---------------------------------------------------------------------------------------


class OldHypernetworkModule(torch.nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.linear1 = torch.nn.Linear(dim, dim * 2)
        self.linear2 = torch.nn.Linear(dim * 2, dim)


# ---------------------------------------------------------------------------------------
# diffusers attention processor: AttnProcessor2_0 with A1111's hypernetwork hook.
# ---------------------------------------------------------------------------------------


class HypernetworkAttnProcessor:
    """diffusers 0.42.1's AttnProcessor2_0.__call__, with only the key/value inputs changed."""

    def __init__(self):
        self.hypernetworks = []
        self.calls: dict[tuple[str, int], int] = {}

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None, *args, **kwargs):
        residual = hidden_states
        if attn.spatial_norm is not None:
            hidden_states = attn.spatial_norm(hidden_states, temb)

        input_ndim = hidden_states.ndim

        if input_ndim == 4:
            batch_size, channel, height, width = hidden_states.shape
            hidden_states = hidden_states.view(batch_size, channel, height * width).transpose(1, 2)

        batch_size, sequence_length, _ = (
            hidden_states.shape if encoder_hidden_states is None else encoder_hidden_states.shape
        )

        if attention_mask is not None:
            attention_mask = attn.prepare_attention_mask(attention_mask, sequence_length, batch_size)
            attention_mask = attention_mask.view(batch_size, attn.heads, -1, attention_mask.shape[-1])

        if attn.group_norm is not None:
            hidden_states = attn.group_norm(hidden_states.transpose(1, 2)).transpose(1, 2)

        query = attn.to_q(hidden_states)

        kind = "self" if encoder_hidden_states is None else "cross"
        if encoder_hidden_states is None:
            encoder_hidden_states = hidden_states
        elif attn.norm_cross:
            encoder_hidden_states = attn.norm_encoder_hidden_states(encoder_hidden_states)

        # --- A1111: context_k, context_v = apply_hypernetworks(loaded_hypernetworks, context)
        context_k, context_v = apply_hypernetworks(self.hypernetworks, encoder_hidden_states)
        key_ = (kind, encoder_hidden_states.shape[-1])
        self.calls[key_] = self.calls.get(key_, 0) + 1
        key = attn.to_k(context_k)
        value = attn.to_v(context_v)
        # ---

        inner_dim = key.shape[-1]
        head_dim = inner_dim // attn.heads

        query = query.view(batch_size, -1, attn.heads, head_dim).transpose(1, 2)

        key = key.view(batch_size, -1, attn.heads, head_dim).transpose(1, 2)
        value = value.view(batch_size, -1, attn.heads, head_dim).transpose(1, 2)

        if attn.norm_q is not None:
            query = attn.norm_q(query)
        if attn.norm_k is not None:
            key = attn.norm_k(key)

        hidden_states = F.scaled_dot_product_attention(
            query, key, value, attn_mask=attention_mask, dropout_p=0.0, is_causal=False
        )

        hidden_states = hidden_states.transpose(1, 2).reshape(batch_size, -1, attn.heads * head_dim)
        hidden_states = hidden_states.to(query.dtype)

        hidden_states = attn.to_out[0](hidden_states)
        hidden_states = attn.to_out[1](hidden_states)

        if input_ndim == 4:
            hidden_states = hidden_states.transpose(-1, -2).reshape(batch_size, channel, height, width)

        if attn.residual_connection:
            hidden_states = hidden_states + residual

        hidden_states = hidden_states / attn.rescale_output_factor

        return hidden_states


# ---------------------------------------------------------------------------------------


WEIGHT_GAIN = 1.0  # Linear weights ~ N(0, (gain / sqrt(fan_in))^2)


def random_init(module: torch.nn.Module, generator: torch.Generator):
    """Visible random weights for every Linear and LayerNorm of `module` (in order)."""
    with torch.no_grad():
        for layer in module.modules():
            if type(layer) is torch.nn.Linear:
                std = WEIGHT_GAIN / layer.in_features ** 0.5
                layer.weight.copy_(torch.randn(layer.weight.shape, generator=generator) * std)
                layer.bias.copy_(torch.randn(layer.bias.shape, generator=generator) * 0.1)
            elif type(layer) is torch.nn.LayerNorm:
                layer.weight.copy_(1.0 + torch.randn(layer.weight.shape, generator=generator) * 0.2)
                layer.bias.copy_(torch.randn(layer.bias.shape, generator=generator) * 0.1)


def make_files(generator) -> dict:
    files = {}

    hn = Hypernetwork(name="hn-plain", enable_sizes=WIDTHS, layer_structure=[1, 2, 1],
                      activation_func="relu", weight_init="Normal", add_layer_norm=False,
                      use_dropout=False, activate_output=False)
    for w in WIDTHS:
        for m in hn.layers[w]:
            random_init(m, generator)
    hn.save(OUT / "hn-plain.pt")
    files["hn-plain"] = hn

    hn = Hypernetwork(name="hn-norm-dropout", enable_sizes=WIDTHS, layer_structure=[1, 1.5, 2, 1],
                      activation_func="swish", weight_init="Normal", add_layer_norm=True,
                      use_dropout=True, activate_output=True, dropout_structure=[0, 0.1, 0.05, 0])
    for w in WIDTHS:
        for m in hn.layers[w]:
            random_init(m, generator)
    hn.save(OUT / "hn-norm-dropout.pt")
    files["hn-norm-dropout"] = hn

    old = [OldHypernetworkModule(32), OldHypernetworkModule(32)]
    for m in old:
        random_init(m, generator)
    torch.save({32: [old[0].state_dict(), old[1].state_dict()]}, OUT / "hn-old.pt")
    files["hn-old"] = old
    return files


def describe_pt(path: Path) -> dict:
    raw = torch.load(path, map_location="cpu", weights_only=True)
    desc = {"top_level": [], "widths": {}}
    for k, v in raw.items():
        desc["top_level"].append({"key": k, "key_type": type(k).__name__, "value_type": type(v).__name__,
                                  **({"value": v} if not isinstance(k, int) else {})})
        if isinstance(k, int):
            desc["widths"][str(k)] = [
                {name: {"shape": list(t.shape), "dtype": str(t.dtype).removeprefix("torch.")} for name, t in sd.items()}
                for sd in v
            ]
            desc["widths"][str(k) + "_container"] = [type(v).__name__] + [type(sd).__name__ for sd in v]
    return desc


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(20240521)
    written = make_files(generator)

    # Load every file back with A1111's (transcribed) load.
    loaded = {}
    for name in ["hn-plain", "hn-norm-dropout", "hn-old"]:
        h = Hypernetwork()
        h.load(str(OUT / f"{name}.pt"))
        loaded[name] = h
        for w, (mk, mv) in h.layers.items():
            print(f"{name} width {w}: {mk.linear}")
    # The loaded weights are the written ones (hn-old through fix_old_state_dict).
    for name in ["hn-plain", "hn-norm-dropout"]:
        for w in WIDTHS:
            for a, b in zip(written[name].layers[w], loaded[name].layers[w]):
                for (ka, ta), (kb, tb) in zip(a.state_dict().items(), b.state_dict().items()):
                    assert ka == kb and torch.equal(ta, tb)
    for a, b in zip(written["hn-old"], loaded["hn-old"].layers[32]):
        assert torch.equal(a.linear1.weight, b.linear[0].weight) and torch.equal(a.linear2.bias, b.linear[1].bias)
    assert loaded["hn-old"].layer_structure == [1, 2, 1] and loaded["hn-old"].activation_func is None
    assert loaded["hn-norm-dropout"].dropout_structure == [0, 0.1, 0.05, 0]
    assert loaded["hn-norm-dropout"].last_layer_dropout is True

    unet = UNet2DConditionModel.from_pretrained(MODEL / "unet", torch_dtype=torch.float32).eval()

    g = torch.Generator().manual_seed(4321)
    sample = torch.randn(2, 4, 8, 8, generator=g)
    timesteps = torch.tensor([741.5, 20.0], dtype=torch.float32)
    context = torch.randn(2, 77, 32, generator=g)

    def run():
        with torch.no_grad():
            return unet(sample, timesteps, encoder_hidden_states=context).sample.float().contiguous()

    base = run()  # diffusers' default AttnProcessor2_0
    proc = HypernetworkAttnProcessor()
    unet.set_attn_processor(proc)

    n_attn = len(unet.attn_processors)
    cases = [
        ("plain", [("hn-plain", 0.7)]),
        ("norm_dropout", [("hn-norm-dropout", 1.0)]),
        ("old", [("hn-old", 0.7)]),
        ("plain_then_norm_dropout", [("hn-plain", 0.7), ("hn-norm-dropout", 0.5)]),
    ]
    tensors = {"sample": sample, "timesteps": timesteps, "context": context, "base": base}
    case_json = []
    # Multiplier 0: exactly the base output.
    for case, chain in cases:
        proc.hypernetworks = [loaded[n].set_multiplier(0.0) for n, _ in chain]
        zero = run()
        assert torch.equal(zero, base), f"{case}: multiplier 0 differs from base"
    proc.hypernetworks = []
    assert torch.equal(run(), base)
    print("multiplier 0 (and no hypernetwork) reproduce base exactly")

    for case, chain in cases:
        proc.hypernetworks = [loaded[n].set_multiplier(m) for n, m in chain]
        proc.calls = {}
        out = run()
        assert sum(proc.calls.values()) == n_attn
        rel = ((out - base).norm() / base.norm()).item()
        maxabs = (out - base).abs().max().item()
        print(f"{case}: relative change {rel:.4f} (max abs diff {maxabs:.4f}); attention calls {proc.calls}")
        assert rel > 0.02, f"{case}: effect too small"
        tensors[f"out.{case}"] = out
        case_json.append({
            "name": case,
            "key": f"out.{case}",
            "hypernetworks": [{"file": f"{n}.pt", "multiplier": m} for n, m in chain],
            "relative_change": rel,
            "max_abs_diff": maxabs,
        })
    proc.hypernetworks = []

    save_file({k: v.contiguous() for k, v in tensors.items()}, OUT / "reference.safetensors")

    files_json = {
        "hn-plain.pt": {"layer_structure": [1, 2, 1], "activation_func": "relu", "is_layer_norm": False,
                        "use_dropout": False, "dropout_structure": [0, 0, 0], "activate_output": False,
                        "widths": WIDTHS, "format": "A1111 Hypernetwork.save"},
        "hn-norm-dropout.pt": {"layer_structure": [1, 1.5, 2, 1], "activation_func": "swish (torch.nn.Hardswish)",
                               "is_layer_norm": True, "use_dropout": True, "dropout_structure": [0, 0.1, 0.05, 0],
                               "activate_output": True, "widths": WIDTHS, "format": "A1111 Hypernetwork.save"},
        "hn-old.pt": {"layer_structure": "absent (A1111 default [1, 2, 1])", "activation_func": "absent (None)",
                      "is_layer_norm": "absent (False)", "dropout_structure": "absent (use_dropout absent -> [0, 0, 0])",
                      "activate_output": "absent (True; irrelevant without activation)", "widths": [32],
                      "format": "old: {32: [k_state_dict, v_state_dict]} with linear1.*/linear2.* keys, "
                                "a list (not a tuple), no other keys; fix_old_state_dict renames to linear.0/linear.1"},
    }
    for fname in files_json:
        files_json[fname]["contents"] = describe_pt(OUT / fname)
    doc = {
        "model": "fixtures/tiny-sd1 (float32)",
        "inputs": {"sample": "randn(2,4,8,8), torch.Generator seed 4321", "timesteps": [741.5, 20.0],
                   "context": "randn(2,77,32), same generator after sample"},
        "application": "A1111 apply_hypernetworks on every attention's k/v input: attn1 context = its "
                       "(normed) hidden states, attn2 context = encoder_hidden_states; module picked by the "
                       "context's last dim; eval mode; output = x + linear(x) * multiplier; chained in order",
        "files": files_json,
        "cases": case_json,
    }
    (OUT / "cases.json").write_text(json.dumps(doc, indent=2) + "\n")

    for p in sorted(OUT.iterdir()):
        print(f"{p.relative_to(REPO)}: {p.stat().st_size} bytes")


if __name__ == "__main__":
    main()
