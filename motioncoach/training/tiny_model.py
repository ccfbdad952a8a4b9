"""A tiny, randomly initialised Qwen3-VL that MS-Swift fine-tunes on a CPU in seconds.

It has the real architecture, special-token ids and processor of Qwen3-VL, only shrunk, so the
local run exercises the same `swift sft` command, checkpoints and PEFT loading as production.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from motioncoach.training.geometry import Qwen3VLGeometry, TextGeometry, VisionGeometry

COMPLETE_MARKER = ".tiny-qwen3-vl-complete"
# Bump when the recipe below changes, so directories built by older code are rebuilt.
BUILD_VERSION = 1
VOCAB_SIZE = 151936
SEED = 0

# Qwen's added tokens at their real ids: ms-swift's template hard-codes the image token id.
SPECIAL_TOKENS = {
    "<|endoftext|>": 151643,
    "<|im_start|>": 151644,
    "<|im_end|>": 151645,
    "<|object_ref_start|>": 151646,
    "<|object_ref_end|>": 151647,
    "<|box_start|>": 151648,
    "<|box_end|>": 151649,
    "<|quad_start|>": 151650,
    "<|quad_end|>": 151651,
    "<|vision_start|>": 151652,
    "<|vision_end|>": 151653,
    "<|vision_pad|>": 151654,
    "<|image_pad|>": 151655,
    "<|video_pad|>": 151656,
}
# Added but not special in Qwen3, so they survive skip_special_tokens like in the real tokenizer.
PLAIN_ADDED_TOKENS = {
    "<tool_call>": 151657,
    "</tool_call>": 151658,
    "<tool_response>": 151665,
    "</tool_response>": 151666,
    "<think>": 151667,
    "</think>": 151668,
}

# Text the byte-level BPE learns its merges from: the words our dataset actually uses.
_TOKENIZER_CORPUS = [
    "You are a movement coach. Answer with one JSON object.",
    "Activity: yoga\nKeypoints (x, y, confidence):\nnose 0.51 0.22 0.98\nleft_shoulder 0.44 0.35 0.91",
    "right_shoulder left_elbow right_elbow left_wrist right_wrist left_hip right_hip",
    "left_knee right_knee left_ankle right_ankle left_eye right_eye left_ear right_ear",
    '{"activity": "yoga", "phase": "hold", "score": 7, "cues": ["Keep your back straight."]}',
    '{"issues": [{"joint": "knee", "problem": "valgus", "fix": "Push the knees out."}]}',
    "tennis running squat deadlift push-up plank lunge warrior pose tree pose downward dog",
    "Breathe out as you lift. Keep the core tight and the shoulders down and back.",
    "0123456789 .,:;!?()[]{}<>\"'-_/+=*%#@&|\\",
]

# A compact Qwen3-VL chat template: the same tokens the released one emits for text and images.
CHAT_TEMPLATE = """\
{%- set image_count = namespace(value=0) -%}
{%- for message in messages -%}
{{- '<|im_start|>' + message['role'] + '\\n' -}}
{%- if message['content'] is string -%}
{{- message['content'] -}}
{%- else -%}
{%- for item in message['content'] -%}
{%- if item['type'] == 'image' or 'image' in item or 'image_url' in item -%}
{%- set image_count.value = image_count.value + 1 -%}
{%- if add_vision_id -%}{{- 'Picture ' ~ image_count.value ~ ': ' -}}{%- endif -%}
{{- '<|vision_start|><|image_pad|><|vision_end|>' -}}
{%- elif item['type'] == 'video' or 'video' in item -%}
{{- '<|vision_start|><|video_pad|><|vision_end|>' -}}
{%- elif 'text' in item -%}
{{- item['text'] -}}
{%- endif -%}
{%- endfor -%}
{%- endif -%}
{{- '<|im_end|>\\n' -}}
{%- endfor -%}
{%- if add_generation_prompt -%}
{{- '<|im_start|>assistant\\n' -}}
{%- endif -%}
"""


def build_tiny_qwen3_vl(dest: Path) -> Path:
    """Build the tiny model into dest once; later calls return at once."""
    dest = Path(dest)
    if _is_complete(dest):
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    # Build beside dest and rename, so a crash never leaves a half-written model behind.
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    tmp.chmod(0o755)  # mkdtemp makes it private; the result is an ordinary directory
    try:
        _write_model(tmp)
        (tmp / COMPLETE_MARKER).write_text(json.dumps(_marker()))
        if dest.exists():
            shutil.rmtree(dest)  # an unfinished leftover or an older recipe
        os.rename(tmp, dest)
    except OSError:
        # A concurrent builder may have won the rename; its result is as good as ours.
        if not _is_complete(dest):
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest


def _marker() -> dict:
    """What the completion marker records about the build."""
    return {"version": BUILD_VERSION, "seed": SEED, "vocab_size": VOCAB_SIZE}


def _is_complete(dest: Path) -> bool:
    """dest holds a finished build of the current recipe."""
    try:
        return json.loads((dest / COMPLETE_MARKER).read_text()) == _marker()
    except (OSError, ValueError):
        return False


# The tiny model's shape: Qwen3-VL's real vocabulary and token ids, everything else minimal.
TINY_GEOMETRY = Qwen3VLGeometry(
    text=TextGeometry(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=16,
    ),
    vision=VisionGeometry(
        depth=2,
        hidden_size=32,
        intermediate_size=64,
        num_heads=2,
        out_hidden_size=32,
        num_position_embeddings=256,
        deepstack_visual_indexes=(1,),
    ),
)


def _write_model(out: Path) -> None:
    """Write weights, tokenizer, processor and chat template into out."""
    processor = _build_processor()
    write_random_qwen3_vl(out, TINY_GEOMETRY, processor, zero_unknown_logits=True)


def write_random_qwen3_vl(
    out: Path,
    geometry: Qwen3VLGeometry,
    processor,
    *,
    dtype: str = "float32",
    device: str = "cpu",
    zero_unknown_logits: bool = False,
) -> None:
    """Save a randomly initialised Qwen3-VL of this geometry, with processor, into out."""
    import torch
    from transformers import GenerationConfig, Qwen3VLConfig, Qwen3VLForConditionalGeneration

    config = Qwen3VLConfig(**geometry.to_hf_config())
    config.text_config.bos_token_id = SPECIAL_TOKENS["<|endoftext|>"]
    config.text_config.eos_token_id = SPECIAL_TOKENS["<|im_end|>"]
    torch.manual_seed(SEED)
    default_dtype = torch.get_default_dtype()
    torch.set_default_dtype(getattr(torch, dtype))
    try:
        with torch.device(device):  # a 32B-wide layer initialises in seconds on a GPU, minutes on a CPU
            model = Qwen3VLForConditionalGeneration(config).eval()
    finally:
        torch.set_default_dtype(default_dtype)
    if zero_unknown_logits:
        # Random logits favour ids the tokenizer lacks, which decode to ''; zero rows score below
        # almost surely some known token, so greedy output is readable text.
        known = torch.tensor(sorted(set(processor.tokenizer.get_vocab().values())))
        unused = torch.ones(geometry.text.vocab_size, dtype=torch.bool)
        unused[known] = False
        with torch.no_grad():
            model.lm_head.weight[unused.to(model.lm_head.weight.device)] = 0.0
    model.generation_config = GenerationConfig(
        eos_token_id=[SPECIAL_TOKENS["<|im_end|>"], SPECIAL_TOKENS["<|endoftext|>"]],
        pad_token_id=SPECIAL_TOKENS["<|endoftext|>"],
        do_sample=False,
    )
    model.save_pretrained(out)
    processor.save_pretrained(out)
    del model
    if device != "cpu":
        torch.cuda.empty_cache()  # leave the card to the training process


def _build_processor():
    """A Qwen3VLProcessor with a small BPE tokenizer and Qwen3-VL's image geometry."""
    return build_processor(_build_tokenizer(), min_pixels=32 * 32 * 4, max_pixels=64 * 64 * 4)


def build_processor(tokenizer, *, min_pixels: int, max_pixels: int):
    """A Qwen3VLProcessor around tokenizer with Qwen3-VL's image geometry and the compact template."""
    from transformers import Qwen2VLImageProcessor, Qwen3VLProcessor, Qwen3VLVideoProcessor

    # In transformers 5 Qwen2VLImageProcessor is the torchvision ("Fast") implementation.
    geometry = {"patch_size": 16, "merge_size": 2, "temporal_patch_size": 2}
    norm = {"image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5]}
    image_processor = Qwen2VLImageProcessor(
        size={"shortest_edge": min_pixels, "longest_edge": max_pixels}, **geometry, **norm
    )
    video_processor = Qwen3VLVideoProcessor(
        size={"shortest_edge": min_pixels, "longest_edge": max_pixels * 2}, **geometry, **norm
    )
    return Qwen3VLProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        video_processor=video_processor,
        chat_template=CHAT_TEMPLATE,
    )


def _build_tokenizer():
    """Train a byte-level BPE on a few lines and place Qwen's added tokens at their real ids."""
    from tokenizers import Regex, Tokenizer, models, pre_tokenizers, trainers
    from transformers.models.qwen2.tokenization_qwen2 import PRETOKENIZE_REGEX

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(PRETOKENIZE_REGEX), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    trainer = trainers.BpeTrainer(
        vocab_size=1024, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False
    )
    bpe.train_from_iterator(_TOKENIZER_CORPUS, trainer=trainer)
    state = json.loads(bpe.to_str())["model"]
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in state["merges"]]
    return qwen2_tokenizer(state["vocab"], merges, model_max_length=32768)


def qwen2_tokenizer(vocab: dict[str, int], merges: list[tuple[str, str]], *, model_max_length: int):
    """A byte-level BPE as Qwen2Tokenizer, with Qwen's added tokens at their real ids."""
    from transformers import Qwen2Tokenizer

    tokenizer = Qwen2Tokenizer(
        vocab={**vocab, **SPECIAL_TOKENS, **PLAIN_ADDED_TOKENS},
        merges=merges,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        unk_token=None,
        extra_special_tokens=list(SPECIAL_TOKENS),
        model_max_length=model_max_length,
    )
    tokenizer.add_tokens(list(PLAIN_ADDED_TOKENS))
    return tokenizer
