"""The LLM server is tuned to the CPU it runs on: dtype by bf16 units, threads on every core, logged reasons."""

from __future__ import annotations

import pytest

from llm_engineering.domain.errors import ConfigurationError
from llm_engineering.infrastructure.ml.inference_engine import CPUProfile, cpu_profile, engine_tuning
from llm_engineering.settings import Settings

AVX2_ONLY = CPUProfile("AMD EPYC (AVX2)", [0, 1], frozenset({"sse4_2", "avx", "avx2", "fma", "f16c"}))
BF16 = CPUProfile("AMD EPYC (Zen 4)", [0, 1], frozenset({"avx2", "avx512f", "avx512_bf16"}))
AMX = CPUProfile("Intel Xeon (Sapphire Rapids)", [0, 1, 2, 3], frozenset({"avx2", "avx512f", "amx_bf16"}))


def cpu(**updates) -> Settings:
    return Settings(llm_device="cpu", **updates)


def test_auto_dtype_is_bf16_only_with_bf16_units():
    assert engine_tuning(cpu(), AVX2_ONLY).dtype == "float32"
    assert engine_tuning(cpu(), BF16).dtype == "bfloat16"
    assert engine_tuning(cpu(), AMX).dtype == "bfloat16" and AMX.isa == "amx"
    assert "no bf16 units" in engine_tuning(cpu(), AVX2_ONLY).reasons[0]


def test_half_precision_is_refused_on_a_cpu_and_explicit_choices_are_kept():
    with pytest.raises(ConfigurationError, match="half precision"):
        engine_tuning(cpu(llm_dtype="float16"), BF16)
    slow = engine_tuning(cpu(llm_dtype="bfloat16"), AVX2_ONLY)
    assert slow.dtype == "bfloat16" and any("expect it slow" in r for r in slow.reasons)
    assert engine_tuning(cpu(llm_dtype="float32"), BF16).dtype == "float32"


def test_threads_bind_every_core_unless_limited_and_reserve_none():
    env = engine_tuning(cpu(), AMX).env()
    assert env["VLLM_CPU_OMP_THREADS_BIND"] == "0-3" and env["VLLM_CPU_NUM_OF_RESERVED_CPU"] == "0"
    assert env["OMP_NUM_THREADS"] == "4"
    limited = engine_tuning(cpu(llm_cpu_threads=1), AMX)
    assert limited.threads == 1 and limited.env()["VLLM_CPU_OMP_THREADS_BIND"] == "0"
    gappy = CPUProfile("x", [0, 1, 2, 5, 7, 8], frozenset({"avx2"}))
    assert engine_tuning(cpu(), gappy).env()["VLLM_CPU_OMP_THREADS_BIND"] == "0-2,5,7-8"
    with pytest.raises(ConfigurationError, match="LLM_CPU_THREADS"):
        engine_tuning(cpu(llm_cpu_threads=0), AMX)


def test_kv_cache_is_sized_to_the_machine_unless_set():
    assert 1 <= engine_tuning(cpu(), BF16).kv_cache_gib <= 8
    assert engine_tuning(cpu(llm_kv_cache_space_gib=3), BF16).env()["VLLM_CPU_KVCACHE_SPACE"] == "3"


def test_gpu_keeps_the_configured_dtype_and_sets_no_cpu_env():
    tuning = engine_tuning(Settings(llm_device="cuda", llm_dtype="auto"))
    assert tuning.device == "cuda" and tuning.dtype == "auto" and tuning.env() == {}


def test_this_machines_profile_is_read_from_proc_cpuinfo():
    sample = "processor\t: 0\nmodel name\t: Test CPU\nflags\t\t: fpu avx2 avx512_bf16\n\nprocessor\t: 1\n"
    profile = cpu_profile(sample)
    assert profile.model == "Test CPU" and profile.has_bf16_units and profile.cores
