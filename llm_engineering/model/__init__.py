"""Model-side code: packaged-model preparation, the inference engine launcher (vLLM), later fine-tuning."""
