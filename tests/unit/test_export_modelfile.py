"""The Ollama Modelfile renders the twin's prompt exactly: its TEMPLATE, executed by Go's text/template as Ollama
does, gives the same string and the same tokens as TWIN_CHAT_TEMPLATE through the tokenizer; FROM, SYSTEM, stops
and the generation defaults are what the model is served with."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from llm_engineering.domain.prompts import (
    IM_END,
    TWIN_CHAT_TEMPLATE,
    TWIN_SYSTEM_PROMPT_NO_CONTEXT,
    ContextPassage,
    build_rag_messages,
)
from llm_engineering.infrastructure.ml.export import (
    OLLAMA_TEMPLATE,
    generation_defaults,
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


def test_modelfile_names_the_file_and_carries_template_system_and_stops(tmp_path: Path) -> None:
    (tmp_path / "generation_config.json").write_text(json.dumps({"eos_token_id": 2, "do_sample": False}))
    defaults = generation_defaults(tmp_path, Settings(data_dir=tmp_path))
    parsed = parse_modelfile(render_modelfile("twin.q8_0.gguf", defaults))
    assert parsed["FROM"] == "./twin.q8_0.gguf"
    assert parsed["TEMPLATE"] == OLLAMA_TEMPLATE
    assert parsed["SYSTEM"] == TWIN_SYSTEM_PROMPT_NO_CONTEXT
    stops = [value for name, value in parsed["PARAMETER"] if name == "stop"]
    assert IM_END in stops
    params = dict((name, value) for name, value in parsed["PARAMETER"] if name != "stop")
    settings = Settings(data_dir=tmp_path)
    assert float(params["temperature"]) == settings.rag_temperature  # greedy checkpoint: the served default
    assert int(params["num_ctx"]) == settings.llm_max_model_len


def test_sampling_defaults_come_from_the_checkpoint_when_it_samples(tmp_path: Path) -> None:
    (tmp_path / "generation_config.json").write_text(json.dumps({"do_sample": True, "temperature": 0.7, "top_p": 0.9}))
    defaults = generation_defaults(tmp_path, Settings(data_dir=tmp_path))
    assert defaults["temperature"] == 0.7 and defaults["top_p"] == 0.9


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
