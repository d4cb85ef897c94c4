"""The main job's engines: its two short-lived vLLM servers skip torch.compile unless the user set the server's
arguments, a llama.cpp run is left alone, and main_job.json says how each ran."""

from __future__ import annotations

from llm_engineering.settings import Settings
from tools.demo import EAGER, _engines, _short_lived_engines


def test_the_main_jobs_vllm_servers_run_eager_unless_the_user_chose_their_arguments(tmp_path):
    settings = Settings(data_dir=tmp_path)
    eager = _short_lived_engines(settings)
    assert eager.llm_server_extra_args == EAGER and settings.llm_server_extra_args == ""
    assert _engines(eager)["llm"]["eager"] is True and _engines(eager)["llm"]["name"] == "vllm"

    chosen = Settings(data_dir=tmp_path, llm_server_extra_args="--max-num-batched-tokens 4096")
    assert _short_lived_engines(chosen).llm_server_extra_args == "--max-num-batched-tokens 4096"

    llama = Settings(data_dir=tmp_path, llm_engine="llamacpp")
    assert _short_lived_engines(llama).llm_server_extra_args == ""
    assert _engines(llama)["llm"]["name"] == "llamacpp" and _engines(llama)["llm"]["gguf"] == "q8_0"
