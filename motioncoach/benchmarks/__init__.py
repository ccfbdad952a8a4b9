"""Human-labelled benchmarks: base, student and teacher scored on what people said, not on the teacher.

Every module imports cheaply; the models, PyAV and huggingface_hub load inside functions.
"""
