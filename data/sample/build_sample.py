"""Build and check the fictional "Elena Marchetti" sample corpus.

    python data/sample/build_sample.py           # regenerate RepositoryDocument.json, then check
    python data/sample/build_sample.py --check   # only check (exit 1 on any problem)

RepositoryDocument.json is generated from the plain files under repo/tiny-rag/, so the two
stay byte-identical. The other collections (users, articles, posts) are hand-written JSON.
"""

import json
import re
import sys
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO_DIR = HERE / "repo" / "tiny-rag"
USER_ID = "7eb4af74-e40a-42fb-a395-2c1ab415be1b"
AUTHOR = "Elena Marchetti"
REPO_ID = "baf4e45f-155c-4aad-8328-e787cfd1d78b"
REPO_LINK = "https://github.com/elena-marchetti/tiny-rag"
SKIP_PARTS = {".git", "__pycache__", ".pytest_cache"}


def repo_files() -> dict[str, str]:
    files = {}
    for path in sorted(REPO_DIR.rglob("*")):
        rel = path.relative_to(REPO_DIR)
        if not path.is_file() or SKIP_PARTS & set(rel.parts) or path.suffix == ".pyc":
            continue
        files[rel.as_posix()] = path.read_text(encoding="utf-8")
    return files


def repository_document() -> list[dict]:
    return [
        {
            "_id": REPO_ID,
            "content": repo_files(),
            "name": "tiny-rag",
            "platform": "github",
            "author_id": USER_ID,
            "author_full_name": AUTHOR,
            "link": REPO_LINK,
        }
    ]


def write_json(name: str, data: list[dict]) -> None:
    text = json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    (HERE / name).write_text(text, encoding="utf-8")


def load(name: str) -> list[dict]:
    data = json.loads((HERE / name).read_text(encoding="utf-8"))
    if not isinstance(data, list):
        raise ValueError(f"{name}: not a JSON array")
    return data


def check() -> list[str]:
    errors = []
    users = load("UserDocument.json")
    articles = load("ArticleDocument.json")
    posts = load("PostDocument.json")
    repos = load("RepositoryDocument.json")

    if [u["_id"] for u in users] != [USER_ID] or users[0]["first_name"] != "Elena":
        errors.append("UserDocument.json: expected exactly one user, Elena Marchetti, with the fixed _id")
    docs = articles + posts + repos
    ids = [d["_id"] for d in users + docs]
    if len(set(ids)) != len(ids):
        errors.append("duplicate _id values")
    for value in ids:
        if str(uuid.UUID(value)) != value or uuid.UUID(value).version != 4:
            errors.append(f"_id is not a uuid4 string: {value}")
    links = [d["link"] for d in docs]
    if len(set(links)) != len(links):
        errors.append("duplicate links")
    for d in docs:
        if d["author_id"] != USER_ID or d["author_full_name"] != AUTHOR:
            errors.append(f"{d['link']}: wrong author")

    if len(articles) != 14:
        errors.append(f"expected 14 articles, got {len(articles)}")
    with_code = 0
    for a in articles:
        c = a["content"]
        if set(c) != {"Title", "Subtitle", "Content", "language"}:
            errors.append(f"{a['link']}: unexpected content keys {sorted(c)}")
        words = len(c["Content"].split())
        if not 350 <= words <= 900:
            errors.append(f"{a['link']}: {words} words")
        if a["platform"] not in {"medium", "elenamarchetti.substack.com", "elena-marchetti.dev"}:
            errors.append(f"{a['link']}: bad platform {a['platform']}")
        blocks = re.findall(r"^```python\n(.*?)^```$", c["Content"], re.DOTALL | re.MULTILINE)
        for block in blocks:
            try:
                compile(block, a["link"], "exec")
            except SyntaxError as exc:
                errors.append(f"{a['link']}: code block does not compile: {exc}")
        with_code += bool(blocks)
    if with_code < 4:
        errors.append(f"only {with_code} articles have a python code block")

    if len(posts) != 6:
        errors.append(f"expected 6 posts, got {len(posts)}")
    for p in posts:
        words = len(p["content"]["Content"].split())
        if not 60 <= words <= 180 or p["platform"] != "linkedin" or "image" not in p:
            errors.append(f"{p['link']}: bad post ({words} words)")

    if repos != repository_document():
        errors.append("RepositoryDocument.json differs from repo/tiny-rag/ (run build_sample.py)")
    for rel, text in repos[0]["content"].items():
        if rel.endswith(".py"):
            try:
                compile(text, rel, "exec")
            except SyntaxError as exc:
                errors.append(f"tiny-rag/{rel}: {exc}")
    return errors


def main() -> int:
    if "--check" not in sys.argv[1:]:
        write_json("RepositoryDocument.json", repository_document())
    errors = check()
    for error in errors:
        print("ERROR:", error)
    if not errors:
        print("sample corpus OK")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
