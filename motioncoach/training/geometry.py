"""Qwen3-VL layer geometry and the parameter counts that follow from it.

Counts are exact for transformers' Qwen3VLForConditionalGeneration (the tests compare them with
a model built on the meta device), so memory and FLOP estimates can be made without torch.
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field


class TextGeometry(BaseModel):
    """The language model's shape."""

    model_config = ConfigDict(frozen=True)

    hidden_size: int = Field(gt=0)
    intermediate_size: int = Field(gt=0)
    num_hidden_layers: int = Field(gt=0)
    num_attention_heads: int = Field(gt=0)
    num_key_value_heads: int = Field(gt=0)
    head_dim: int = Field(gt=0)
    vocab_size: int = Field(151936, gt=0)
    tie_word_embeddings: bool = False


class VisionGeometry(BaseModel):
    """The vision tower's shape: patch embedding, blocks, the merger and the DeepStack mergers."""

    model_config = ConfigDict(frozen=True)

    depth: int = Field(gt=0)
    hidden_size: int = Field(gt=0)
    intermediate_size: int = Field(gt=0)
    num_heads: int = Field(gt=0)
    out_hidden_size: int = Field(gt=0)
    patch_size: int = 16
    spatial_merge_size: int = 2
    temporal_patch_size: int = 2
    num_position_embeddings: int = 2304
    deepstack_visual_indexes: tuple[int, ...] = (8, 16, 24)


class Qwen3VLGeometry(BaseModel):
    """A Qwen3-VL model's shape."""

    model_config = ConfigDict(frozen=True)

    text: TextGeometry
    vision: VisionGeometry

    def with_layers(self, layers: int) -> Qwen3VLGeometry:
        """The same model cut (or grown) to this many language layers."""
        return self.model_copy(update={"text": self.text.model_copy(update={"num_hidden_layers": layers})})

    @classmethod
    def from_config_file(cls, path: Path) -> Qwen3VLGeometry:
        """Read the geometry from a Hugging Face config.json of a Qwen3-VL model."""
        config = json.loads(Path(path).read_text())
        text, vision = config["text_config"], config["vision_config"]
        return cls(
            text=TextGeometry(
                **{k: text[k] for k in TextGeometry.model_fields if k in text},
                tie_word_embeddings=config.get("tie_word_embeddings", text.get("tie_word_embeddings", False)),
            ),
            vision=VisionGeometry(**{k: vision[k] for k in VisionGeometry.model_fields if k in vision}),
        )

    # --- linear layers, as (in_features, out_features), which is what LoRA sees ---

    def text_layer_linears(self) -> list[tuple[int, int]]:
        t = self.text
        q, kv = t.num_attention_heads * t.head_dim, t.num_key_value_heads * t.head_dim
        h, i = t.hidden_size, t.intermediate_size
        return [(h, q), (h, kv), (h, kv), (q, h), (h, i), (h, i), (i, h)]

    def vision_block_linears(self) -> list[tuple[int, int]]:
        v = self.vision
        return [(v.hidden_size, 3 * v.hidden_size), (v.hidden_size, v.hidden_size)] + [
            (v.hidden_size, v.intermediate_size),
            (v.intermediate_size, v.hidden_size),
        ]

    def merger_linears(self) -> list[tuple[int, int]]:
        v = self.vision
        merged = v.hidden_size * v.spatial_merge_size**2
        return [(merged, merged), (merged, v.out_hidden_size)]

    @property
    def mergers(self) -> int:
        return 1 + len(self.vision.deepstack_visual_indexes)

    # --- parameter counts ---

    def text_layer_params(self) -> int:
        t = self.text
        linears = sum(i * o for i, o in self.text_layer_linears())
        return linears + 2 * t.head_dim + 2 * t.hidden_size  # q/k norms, two RMSNorms

    def vision_params(self) -> int:
        """Vision tower with its mergers."""
        v = self.vision
        patch = 3 * v.temporal_patch_size * v.patch_size**2 * v.hidden_size + v.hidden_size
        block = sum(i * o + o for i, o in self.vision_block_linears()) + 4 * v.hidden_size  # two LayerNorms
        merged = v.hidden_size * v.spatial_merge_size**2
        merger_linears = sum(i * o + o for i, o in self.merger_linears())
        main_merger = merger_linears + 2 * v.hidden_size  # norm before the 2x2 shuffle
        deepstack_merger = merger_linears + 2 * merged  # norm after it
        deepstack = len(v.deepstack_visual_indexes) * deepstack_merger
        return patch + v.num_position_embeddings * v.hidden_size + v.depth * block + main_merger + deepstack

    def total_params(self) -> int:
        t = self.text
        embeddings = t.vocab_size * t.hidden_size * (1 if t.tie_word_embeddings else 2)
        return embeddings + t.num_hidden_layers * self.text_layer_params() + t.hidden_size + self.vision_params()

    def text_matmul_params(self) -> int:
        """Weights a text token meets in matrix products: the layers and the output head."""
        t = self.text
        layer = sum(i * o for i, o in self.text_layer_linears())
        return t.num_hidden_layers * layer + t.vocab_size * t.hidden_size

    def vision_matmul_params(self) -> int:
        """Weights a patch meets in the vision blocks (mergers run on 4x fewer tokens; left out)."""
        return self.vision.depth * sum(i * o for i, o in self.vision_block_linears())

    def lora_params(self, rank: int, *, vision: bool = True) -> int:
        """Trainable parameters of rank-r LoRA on every linear layer but the output head."""
        text = self.text.num_hidden_layers * sum(rank * (i + o) for i, o in self.text_layer_linears())
        if not vision:
            return text
        blocks = self.vision.depth * sum(rank * (i + o) for i, o in self.vision_block_linears())
        mergers = self.mergers * sum(rank * (i + o) for i, o in self.merger_linears())
        return text + blocks + mergers

    def to_hf_config(self) -> dict:
        """text_config and vision_config for transformers' Qwen3VLConfig."""
        t, v = self.text, self.vision
        half = t.head_dim // 2
        # mrope splits head_dim / 2 over (time, height, width); 32B uses [24, 20, 20] for 64.
        section = [half - 2 * (half * 5 // 16), half * 5 // 16, half * 5 // 16]
        return {
            "text_config": {
                **t.model_dump(exclude={"tie_word_embeddings"}),
                "max_position_embeddings": 262144,
                "rope_parameters": {
                    "rope_type": "default",
                    "rope_theta": 5_000_000.0,
                    "mrope_section": section,
                    "mrope_interleaved": True,
                },
            },
            "vision_config": {**v.model_dump(), "deepstack_visual_indexes": list(v.deepstack_visual_indexes)},
            "tie_word_embeddings": t.tie_word_embeddings,
        }


# Qwen/Qwen3-VL-32B-Instruct's config.json.
QWEN3_VL_32B = Qwen3VLGeometry(
    text=TextGeometry(
        hidden_size=5120,
        intermediate_size=25600,
        num_hidden_layers=64,
        num_attention_heads=64,
        num_key_value_heads=8,
        head_dim=128,
    ),
    vision=VisionGeometry(depth=27, hidden_size=1152, intermediate_size=4304, num_heads=16, out_hidden_size=5120),
)

# Known hub ids, so an estimate needs no download.
KNOWN_GEOMETRIES = {"Qwen/Qwen3-VL-32B-Instruct": QWEN3_VL_32B}


def geometry_of(base_model: str) -> Qwen3VLGeometry | None:
    """The geometry of a local model directory or a known hub id; None when it can't be told."""
    config = Path(base_model).expanduser() / "config.json"
    if config.is_file():
        try:
            return Qwen3VLGeometry.from_config_file(config)
        except (KeyError, TypeError, ValueError):
            return None
    return KNOWN_GEOMETRIES.get(base_model)
