"""Rebuild the `rag_blogs` evaluation corpus from the two public blog repositories it was taken from.

    git clone https://github.com/jxnl/blog /tmp/jxnl-blog
    git clone https://github.com/vespa-engine/blog /tmp/vespa-blog
    .venv/bin/python data/eval/rag_blogs/build_set.py --jxnl-repo /tmp/jxnl-blog --vespa-repo /tmp/vespa-blog

Reads every selected post at the pinned commit (`git show COMMIT:PATH`, so the clones may be at any commit),
turns it into the LLM-Engineers-Handbook export format (`UserDocument.json`, `ArticleDocument.json`) and writes
those files next to this script. `--check` rebuilds in memory and fails if the committed files differ.

Conversion, the same for both sites: the front matter gives the title, subtitle (excerpt / description) and
date; site syntax that is not the author's text is removed (Jekyll/Liquid tags, kramdown attribute lists,
MkDocs buttons and `<!-- more -->`, images, photo credits); MkDocs admonitions become a title line followed by
their (dedented) body; the Markdown is rendered to HTML (markdown-it, CommonMark + tables) and read back with
this project's crawler converter (`html_to_text`), so the text is what the article crawler would store: `#`
headings, paragraphs, `- ` lists, fenced code byte-for-byte, `[text](url)` links; bold/italics dropped.
The author's words are not edited.

Needs the project environment (bs4, lxml, markdown-it-py, pyyaml). Run from the repository root.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
NAMESPACE = uuid.UUID("6f1c2a4e-3b7d-4d59-9a8e-0c5b1e2f7a31")  # fixed: ids are uuid5(NAMESPACE, link or name)

JXNL_COMMIT = "0b5db69ebd161024227f219dfe4edd6e15d33c06"  # github.com/jxnl/blog, 2026-07-07, MIT
VESPA_COMMIT = "34c806fe1f53dc16456d36faf0e83b29b884836e"  # github.com/vespa-engine/blog, 2024-03-22, Apache-2.0

AUTHORS = {  # blog author key -> full name
    "jxnl": "Jason Liu",
    "jobergum": "Jo Kristian Bergum",
    "lesters": "Lester Solbakken",
    "thigm85": "Thiago Martins",
}

JXNL_POSTS = [
    "rag.md",
    "rag-inverted.md",
    "rag-lgtmk.md",
    "rag-levels-of-rag.md",
    "rag-low-hanging-fruit.md",
    "rag-improving-rag.md",
    "rag-flywheel.md",
    "trade-off-tool-selection.md",
    "rag-faq.md",
    "rag-six-tips-improving.md",
    "rag-what-is-rag.md",
    "rag-authority.md",
    "rag-decomposition.md",
    "rag-course-breakdown.md",
    "systematically-improving-rag-raindrop.md",
    "llmops.md",
    "data-flywheel.md",
    "topics_and_capabilities.md",
    "stochastic-software.md",
    "prompt-optimization.md",
    "recsys-frameworks.md",
    "ai-truths.md",
    "strings.md",
    "context-engineering-agent-frameworks.md",
    "context-engineering-agent-prototyping.md",
]

VESPA_POSTS = [
    # Jo Kristian Bergum
    "2021-02-16-image-similarity-search.md",
    "2021-05-19-pretrained-transformer-language-models-for-search-part-1.md",
    "2021-05-25-pretrained-transformer-language-models-for-search-part-2.md",
    "2021-06-02-pretrained-transformer-language-models-for-search-part-3.md",
    "2021-06-18-pretrained-transformer-language-models-for-search-part-4.md",
    "2021-11-11-result-diversification-with-vespa.md",
    "2021-12-03-billion-scale-knn.md",
    "2022-01-27-billion-scale-knn-part-two.md",
    "2022-06-07-vespa-hybrid-billion-scale-vector-search.md",
    "2022-07-01-vespa-managed-vector-search.md",
    "2022-09-20-will-vector-dbs-dislodge-search-engines.md",
    "2022-10-07-building-billion-scale-vector-search.md",
    "2022-10-26-building-billion-scale-vector-search-part-two.md",
    "2022-11-03-improving-product-search-with-ltr.md",
    "2022-11-11-improving-product-search-with-ltr-part-two.md",
    "2022-12-05-improving-product-search-with-ltr-part-three.md",
    "2023-01-06-improving-zero-shot-ranking-with-vespa.md",
    "2023-01-10-improving-zero-shot-ranking-with-vespa-part-two.md",
    "2023-02-03-improving-text-ranking-with-few-shot-prompting.md",
    "2023-03-31-tailoring-frozen-embeddings-with-vespa.md",
    "2023-07-25-simplify-search-with-multilingual-embeddings.md",
    "2023-08-09-accelerating-transformer-based-embedding-retrieval-with-vespa.md",
    "2023-08-10-bge-embedding-models-in-vespa-using-bfloat16.md",
    "2023-11-30-scaling-personal-ai-assistants-with-streaming-mode.md",
    "2023-12-08-turbocharge-rag-with-langchain-and-vespa-streaming-mode.md",
    "2024-01-19-redefining-hybrid-search-possibilities-with-vespa.md",
    "2024-02-14-announcing-colbert-embedder-in-vespa.md",
    "2024-03-01-announcing-long-context-colbert-in-vespa.md",
    "2024-03-21-scaling-large-vector-datasets-with-cohere-binary-embeddings-and-vespa.md",
    "2024-03-22-rag-perspectives.md",
    # Lester Solbakken
    "2020-07-02-introducing-nlp-with-transformers-on-vespa.md",
    "2020-09-30-efficient-open-domain-question-answering-on-vespa.md",
    "2020-11-12-from-research-to-production-scaling-a-state-of-the-art-machine-learning-system.md",
    "2020-12-14-stateful-model-serving-how-we-accelerate-inference-using-onnx-runtime.md",
    "2020-12-18-using-approximate-nearest-neighbor-search-in-real-world-applications.md",
    "2021-07-05-stateless-model-evaluation.md",
    "2021-09-30-computing-with-tensors.md",
    "2021-11-28-text-image-search.md",
    "2022-01-07-ml-model-serving-at-scale.md",
    # Thiago Martins
    "2020-04-01-vespa-ai-and-the-cord-19-public-api.md",
    "2020-11-12-fine-tune-bert-basic-transformers-trainer.md",
    "2020-11-25-fine-tune-bert-basic-transformers-trainer-search-applications.md",
    "2021-02-18-build-basic-text-search-app-from-python-with-vespa.md",
    "2021-03-12-run-search-engine-experiments-in-Vespa-from-python.md",
    "2021-03-22-build-news-search-app-from-python-with-vespa.md",
    "2021-03-29-build-news-recommendation-app-from-python-with-vespa.md",
    "2021-04-19-build-qa-app-from-python-with-vespa.md",
    "2021-05-20-news-recommendation-with-parent-child-relationship.md",
    "2021-06-05-build-basic-text-search-app-from-python-with-vespa-part-2.md",
]


@dataclass(frozen=True)
class Post:
    author: str  # full name
    link: str
    title: str
    subtitle: str
    markdown: str  # body, site syntax already removed


# --- reading the repositories -----------------------------------------------------------------------------------
def git_show(repo: Path, commit: str, path: str) -> str:
    result = subprocess.run(
        ["git", "-C", str(repo), "show", f"{commit}:{path}"], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise SystemExit(f"cannot read {path} at {commit} in {repo}: {result.stderr.strip()}")
    return result.stdout


def git_ls(repo: Path, commit: str, folder: str) -> list[str]:
    result = subprocess.run(
        ["git", "-C", str(repo), "ls-tree", "--name-only", f"{commit}:{folder}"],
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout.split()


_FRONT_MATTER = re.compile(r"\A---[ \t]*\n(.*?)\n---[ \t]*\n", re.S)


def split_front_matter(text: str) -> tuple[dict[str, Any], str]:
    import yaml

    match = _FRONT_MATTER.match(text)
    if not match:
        return {}, text
    return yaml.safe_load(match.group(1)) or {}, text[match.end() :]


def toc_slug(title: str) -> str:
    """The slug MkDocs-Material's blog derives from a post title when the post sets none."""
    import unicodedata

    value = unicodedata.normalize("NFKD", title).encode("ascii", "ignore").decode("ascii")
    value = re.sub(r"[^\w\s-]", "", value).strip().lower()
    return re.sub(r"[-\s]+", "-", value)


_H1 = re.compile(r"^# (.+?)\s*$", re.M)


def jxnl_url(meta: dict[str, Any], body: str) -> str:
    date = meta["date"]
    if isinstance(date, dict):  # `date: {created: ...}`
        date = date.get("created")
    date = str(date)[:10]
    title = _H1.search(body)
    slug = meta.get("slug") or toc_slug(title.group(1) if title else "")
    year, month, day = date.split("-")
    return f"https://jxnl.co/writing/{year}/{month}/{day}/{slug}/"


def vespa_url(file_name: str) -> str:
    return f"https://blog.vespa.ai/{Path(file_name).stem[11:]}/"


# --- site syntax --------------------------------------------------------------------------------------------------
_FENCE = re.compile(r"^\s*(```|~~~)")
_ADMONITION = re.compile(r'^(?P<indent>\s*)(?:!!!|\?\?\?\+?|===)\s*(?P<kind>[\w-]*)\s*(?:"(?P<title>[^"]*)")?\s*$')
_IMAGE = re.compile(r"\[?!\[[^\]]*\]\([^)]*\)(?:\]\([^)]*\))?(?:\{[^}]*\})?")
_ATTR_LIST = re.compile(r"\{\s*[:.#][^}\n]*\}")
_LIQUID_POST_URL = re.compile(r"\{%\s*post_url\s+/?(\d{4}-\d{2}-\d{2}-[^\s%]+)\s*%\}")
_LIQUID_HIGHLIGHT = re.compile(r"^\s*\{%\s*highlight\s+(\w+)[^%]*%\}\s*$")
_LIQUID_END_HIGHLIGHT = re.compile(r"^\s*\{%\s*endhighlight\s*%\}\s*$")
_LIQUID = re.compile(r"\{%.*?%\}|\{\{.*?\}\}")
_HTML_COMMENT = re.compile(r"<!--.*?-->", re.S)


def _outside_fences(text: str, transform) -> str:
    """Apply `transform` to each run of lines outside fenced code blocks; code is left byte-for-byte."""
    out: list[str] = []
    run: list[str] = []
    fence = ""
    for line in text.split("\n"):
        match = _FENCE.match(line)
        if not fence and match:
            out.append(transform("\n".join(run)))
            run = []
            fence = re.match(r"\s*(`+|~+)", line).group(1)
            out.append(line)
        elif fence:
            out.append(line)
            stripped = line.strip()
            if stripped.startswith(fence) and not stripped.strip(fence[0]):
                fence = ""
        else:
            run.append(line)
    out.append(transform("\n".join(run)))
    return "\n".join(out)


def unwrap_admonitions(text: str) -> str:
    """`!!! tip "Title"` + an indented body -> a `Title` line and the body, dedented by one level."""
    lines = text.split("\n")
    out: list[str] = []
    i = 0
    while i < len(lines):
        match = _ADMONITION.match(lines[i])
        if not match or not (match.group("kind") or match.group("title")):
            out.append(lines[i])
            i += 1
            continue
        indent = match.group("indent")
        title = (match.group("title") or match.group("kind").capitalize()).strip()
        if title:
            out.extend([f"{indent}{title}", ""])
        i += 1
        body_indent = indent + "    "
        while i < len(lines) and (not lines[i].strip() or lines[i].startswith(body_indent)):
            out.append(indent + lines[i][len(body_indent) :] if lines[i].strip() else "")
            i += 1
    return "\n".join(out)


def strip_site_syntax(markdown: str, post_urls: dict[str, str]) -> str:
    markdown = _LIQUID_POST_URL.sub(lambda m: post_urls.get(m.group(1), ""), markdown)
    lines = []
    for line in markdown.split("\n"):  # Jekyll code blocks -> fences (before fences are looked for)
        if _LIQUID_HIGHLIGHT.match(line):
            line = "```" + _LIQUID_HIGHLIGHT.match(line).group(1)
        elif _LIQUID_END_HIGHLIGHT.match(line):
            line = "```"
        lines.append(line)
    markdown = "\n".join(lines)
    while (unwrapped := unwrap_admonitions(markdown)) != markdown:  # nested admonitions: one level per pass
        markdown = unwrapped

    def prose(text: str) -> str:
        text = _HTML_COMMENT.sub("", text)
        text = _IMAGE.sub("", text)
        text = _ATTR_LIST.sub("", text)
        return _LIQUID.sub("", text)

    return _outside_fences(markdown, prose)


def relink_jxnl(markdown: str, urls: dict[str, str]) -> str:
    """Links between posts (`./rag-flywheel.md`) -> the posts' public URLs."""

    def replace(match: re.Match[str]) -> str:
        name = match.group(2).split("#")[0]
        return f"]({urls[name]})" if name in urls else match.group(0)

    return re.sub(r"\]\((\./)?([\w.-]+\.md(?:#[\w-]*)?)\)", replace, markdown)


# --- rendering ----------------------------------------------------------------------------------------------------
def render(markdown: str, base_url: str) -> str:
    """Markdown (with embedded HTML) -> the crawler's structured text."""
    from bs4 import BeautifulSoup
    from markdown_it import MarkdownIt

    from llm_engineering.application.crawlers.html_text import html_to_text

    html = MarkdownIt("commonmark", {"html": True}).enable(["table", "strikethrough"]).render(markdown)
    soup = BeautifulSoup(f"<html><body>{html}</body></html>", "lxml")
    for credit in soup.select(".image-credit"):
        credit.decompose()
    text = html_to_text(soup.body, base_url=base_url)
    return re.sub(r"\n{3,}", "\n\n", text).strip()


def plain(text: str) -> str:
    from bs4 import BeautifulSoup

    return re.sub(r"\s+", " ", BeautifulSoup(str(text or ""), "lxml").get_text()).strip()


# --- the two sites ------------------------------------------------------------------------------------------------
def jxnl_posts(repo: Path) -> list[Post]:
    folder = "docs/writing/posts"
    urls: dict[str, str] = {}
    for name in git_ls(repo, JXNL_COMMIT, folder):
        if name.endswith(".md"):
            meta, body = split_front_matter(git_show(repo, JXNL_COMMIT, f"{folder}/{name}"))
            if meta.get("date"):
                urls[name] = jxnl_url(meta, body)
    posts = []
    for name in JXNL_POSTS:
        meta, body = split_front_matter(git_show(repo, JXNL_COMMIT, f"{folder}/{name}"))
        if meta.get("authors") != ["jxnl"]:
            raise SystemExit(f"{name}: expected the single author jxnl, found {meta.get('authors')}")
        title_match = _H1.search(body)
        if not title_match:
            raise SystemExit(f"{name}: no `# title` line")
        title = title_match.group(1).strip()
        body = body[: title_match.start()] + body[title_match.end() :]
        body = relink_jxnl(strip_site_syntax(body, {}), urls)
        link = urls[name]
        posts.append(Post(AUTHORS["jxnl"], link, title, plain(meta.get("description", "")), body))
    return posts


def vespa_posts(repo: Path) -> list[Post]:
    post_urls = {Path(name).stem: vespa_url(name) for name in git_ls(repo, VESPA_COMMIT, "_posts")}
    posts = []
    for name in VESPA_POSTS:
        meta, body = split_front_matter(git_show(repo, VESPA_COMMIT, f"_posts/{name}"))
        author = str(meta.get("author", "")).strip()
        if author not in AUTHORS:
            raise SystemExit(f"{name}: expected a single selected author, found {author!r}")
        body = strip_site_syntax(body, post_urls)
        posts.append(Post(AUTHORS[author], vespa_url(name), plain(meta["title"]), plain(meta.get("excerpt", "")), body))
    return posts


# --- the export ---------------------------------------------------------------------------------------------------
def build(jxnl_repo: Path, vespa_repo: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    users = []
    user_ids = {}
    for full_name in AUTHORS.values():
        first, last = full_name.rsplit(" ", 1)
        user_ids[full_name] = str(uuid.uuid5(NAMESPACE, f"user:{full_name}"))
        users.append({"_id": user_ids[full_name], "first_name": first, "last_name": last})
    articles = []
    for post in jxnl_posts(jxnl_repo) + vespa_posts(vespa_repo):
        content = render(post.markdown, post.link)
        articles.append(
            {
                "_id": str(uuid.uuid5(NAMESPACE, post.link)),
                "content": {"Title": post.title, "Subtitle": post.subtitle, "Content": content, "language": "en"},
                "platform": "blog",
                "author_id": user_ids[post.author],
                "author_full_name": post.author,
                "link": post.link,
            }
        )
    links = [a["link"] for a in articles]
    if len(set(links)) != len(links):
        raise SystemExit("duplicate links")
    return users, articles


def dump(records: list[dict[str, Any]]) -> str:
    return json.dumps(records, ensure_ascii=False, indent=2) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jxnl-repo", type=Path, required=True, help="a clone of github.com/jxnl/blog")
    parser.add_argument("--vespa-repo", type=Path, required=True, help="a clone of github.com/vespa-engine/blog")
    parser.add_argument("--check", action="store_true", help="compare with the committed files, write nothing")
    args = parser.parse_args(argv)
    users, articles = build(args.jxnl_repo, args.vespa_repo)
    outputs = {"UserDocument.json": dump(users), "ArticleDocument.json": dump(articles)}
    if args.check:
        stale = [name for name, text in outputs.items() if (HERE / name).read_text(encoding="utf-8") != text]
        if stale:
            print(f"out of date: {', '.join(stale)}", file=sys.stderr)
            return 1
        print(f"up to date: {len(users)} users, {len(articles)} articles")
        return 0
    for name, text in outputs.items():
        (HERE / name).write_text(text, encoding="utf-8")
    print(f"wrote {len(users)} users and {len(articles)} articles to {HERE}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
