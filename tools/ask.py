"""`poe call-inference-ml-service`: ask the running RAG service a question and print the answer with sources.

python -m tools.ask "How should I chunk documents?" [--k 3] [--author "Elena Marchetti"] [--stream] [--url URL]
"""

from __future__ import annotations

import json
import sys

import click

from llm_engineering.settings import get_settings
from tools._cli import run_cli


@click.command()
@click.argument("question")
@click.option("--k", type=int, default=None, help="Passages in the context.")
@click.option("--author", default=None, help="Only this author's writing.")
@click.option("--stream", is_flag=True, help="Stream through the OpenAI-compatible endpoint (openai SDK).")
@click.option("--url", default=None, help="Service base URL (default http://INFERENCE_HOST:INFERENCE_PORT).")
@click.option("--json", "as_json", is_flag=True, help="Print the raw /rag response.")
def main(question: str, k: int | None, author: str | None, stream: bool, url: str | None, as_json: bool) -> None:
    import httpx

    settings = get_settings()
    url = (url or f"http://{settings.inference_host}:{settings.inference_port}").rstrip("/")
    key = settings.inference_api_key.get_secret_value() if settings.inference_api_key else None
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    try:
        if stream:
            _stream(url, key, question, k, author)
            return
        response = httpx.post(
            f"{url}/rag",
            json={"query": question, "k": k, "author": author},
            headers=headers,
            timeout=settings.inference_request_timeout_s + 10,
        )
    except httpx.HTTPError as exc:
        click.echo(f"error: cannot reach the RAG service at {url} ({exc}); start it: poe run-inference-ml-service")
        sys.exit(1)
    if response.status_code != 200:
        try:
            message = response.json().get("detail", response.text)
        except ValueError:
            message = response.text
        click.echo(f"error {response.status_code}: {message}", err=True)
        sys.exit(1)
    data = response.json()
    if as_json:
        click.echo(json.dumps(data, indent=2, ensure_ascii=False))
        return
    click.echo(data["answer"].strip())
    click.echo("\nSources:")
    for source in data["sources"]:
        mark = "*" if source["cited"] else " "
        click.echo(f" {mark}[{source['number']}] {source['title']} — {source['author']} — {source['link']}")
    timings = ", ".join(f"{name} {ms:.0f} ms" for name, ms in data["timings_ms"].items())
    click.echo(f"\nTimings: {timings}")
    tokens = data["tokens"]
    click.echo(f"Tokens: prompt {tokens['prompt']}, completion {tokens['completion']}, context {tokens['context']}")


def _stream(url: str, key: str | None, question: str, k: int | None, author: str | None) -> None:
    from openai import OpenAI

    client = OpenAI(base_url=f"{url}/v1", api_key=key or "none", max_retries=0)
    extra = {key: value for key, value in {"k": k, "author": author}.items() if value is not None}
    stream = client.chat.completions.create(
        model="llm-twin", messages=[{"role": "user", "content": question}], stream=True, extra_body=extra
    )
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            click.echo(chunk.choices[0].delta.content, nl=False)
    click.echo()


if __name__ == "__main__":
    run_cli(main)
