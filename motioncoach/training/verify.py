"""Prove a trained adapter is usable: load it onto the base model with PEFT and generate."""

from __future__ import annotations

from pathlib import Path


def generate_with_adapter(
    base_model_dir: Path, adapter_dir: Path, image: Path, prompt: str, max_new_tokens: int = 16
) -> str:
    """Greedy-decode the base model plus LoRA adapter's answer to one image and prompt."""
    import torch
    from peft import PeftModel
    from PIL import Image
    from transformers import AutoModelForImageTextToText, AutoProcessor

    processor = AutoProcessor.from_pretrained(base_model_dir)
    # float32 on CPU (bf16 matmuls there are slow or unsupported); the checkpoint's dtype on GPU.
    dtype = "auto" if torch.cuda.is_available() else torch.float32
    base = AutoModelForImageTextToText.from_pretrained(base_model_dir, dtype=dtype)
    model = PeftModel.from_pretrained(base, adapter_dir).eval()

    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": prompt}]}]
    text = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    with Image.open(image) as img:
        inputs = processor(text=[text], images=[img.convert("RGB")], return_tensors="pt")
    inputs = inputs.to(model.device)
    with torch.no_grad():
        output = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False)
    new_tokens = output[0, inputs["input_ids"].shape[1] :]
    return processor.decode(new_tokens, skip_special_tokens=True)
