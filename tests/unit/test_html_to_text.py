"""HTML -> structured text: headings, paragraphs, lists, code blocks and links survive; noise does not."""

from __future__ import annotations

from llm_engineering.application.crawlers.article import GENERIC_LAYOUT, extract_article
from llm_engineering.application.crawlers.html_text import html_to_text, page_language, page_title, parse_html
from llm_engineering.application.crawlers.walls import detect_auth_wall, detect_bot_wall

CODE = 'def f(x):\n    if x:\n\treturn "tab"\n\n    return [\n        1,\n    ]'


def render(html: str, base_url: str | None = "https://blog.example/posts/1") -> str:
    return html_to_text(parse_html(html).body, base_url=base_url)


def test_headings_paragraphs_and_inline_formatting():
    text = render("<h1>Title <em>one</em></h1><p>Hello <b>bold</b>\n   world.</p><h3>Sub</h3><p>Second<br>line</p>")
    assert text == "# Title one\n\nHello bold world.\n\n### Sub\n\nSecond\nline"


def test_links_are_absolute_and_odd_links_keep_only_their_text():
    text = render(
        '<p>See <a href="/docs">the docs</a>, <a href="https://x.org/a?b=1">x</a>, '
        '<a href="#top">top</a>, <a href="javascript:void(0)">js</a> and <a href="/img"><img src="a.png"></a>.</p>'
    )
    assert text == "See [the docs](https://blog.example/docs), [x](https://x.org/a?b=1), top, js and ."


def test_nested_and_ordered_lists():
    text = render(
        "<ul><li>one</li><li>two<ul><li>two.a</li><li><p>two.b</p><p>more</p></li></ul></li></ul>"
        '<ol start="3"><li>three</li><li>four</li></ol>'
    )
    assert text == "- one\n- two\n  - two.a\n  - two.b\n    more\n\n3. three\n4. four"


def test_code_block_is_byte_for_byte_with_language_fence():
    html = f'<p>Code:</p><pre><code class="language-python">{CODE}\n</code></pre><p>After</p>'
    text = render(html)
    assert f"```python\n{CODE}\n```" in text
    assert text.startswith("Code:") and text.endswith("After")


def test_highlighted_code_with_spans_and_br_keeps_lines():
    html = '<pre class="lang-js"><span class="k">if</span> (x) {<br>  <span>go</span>();<br>}</pre>'
    assert render(html) == "```js\nif (x) {\n  go();\n}\n```"


def test_code_containing_a_fence_gets_a_longer_fence():
    assert render("<pre>```\ninner\n```</pre>").startswith("````\n```")


def test_inline_code_blockquote_and_table():
    text = render(
        "<p>Use <code>enumerate</code>.</p><blockquote><p>Quote one</p><p>two</p></blockquote>"
        "<table><tr><th>a</th><th>b</th></tr><tr><td>1</td><td>2</td></tr></table>"
    )
    assert text == "Use `enumerate`.\n\n> Quote one\n>\n> two\n\na | b\n1 | 2"


def test_scripts_styles_comments_and_hidden_elements_are_dropped():
    text = render(
        "<p>Visible</p><script>var x = 1;</script><style>p{}</style><!-- note -->"
        '<div hidden>hidden</div><p style="display: none">gone</p><button>Clap</button><noscript>js</noscript>'
    )
    assert text == "Visible"


def test_malformed_markup_does_not_crash():
    text = render("<div><p>open <b>bold<p>next</div></span><ul><li>a<li>b</ul><pre>  x\n    y")
    assert "open bold" in text and "next" in text and "- a\n- b" in text and "  x\n    y" in text


def test_pathologically_deep_markup_falls_back_to_flat_text():
    html = "<div>" * 3000 + "deep text" + "</div>" * 3000
    assert render(html) == "deep text"


def test_empty_body_renders_empty():
    assert render("<div><script>x()</script></div>") == ""


def test_page_metadata_prefers_og_title_then_article_heading():
    soup = parse_html('<html lang="fr"><head><title>T | Site</title></head><body><article><h1>T</h1></article>')
    assert page_title(soup) == "T"
    assert page_language(soup) == "fr"
    soup = parse_html('<head><meta property="og:title" content="OG"><title>T</title></head>')
    assert page_title(soup) == "OG"


def test_extract_article_keeps_title_out_of_the_body_and_drops_navigation():
    html = (
        '<html lang="en"><head><meta name="description" content="Sub"></head><body><nav>Menu</nav>'
        "<article><h1>My Post</h1><p>" + "Body text. " * 10 + "</p><aside>Related</aside></article></body></html>"
    )
    content = extract_article(parse_html(html), "https://b/x", "https://b/x", GENERIC_LAYOUT)
    assert content["Title"] == "My Post" and content["Subtitle"] == "Sub" and content["language"] == "en"
    assert content["Content"].startswith("Body text.")
    for noise in ("Menu", "Related", "My Post"):
        assert noise not in content["Content"]


def test_bot_wall_is_recognised_but_an_article_about_captchas_is_not():
    assert detect_bot_wall(parse_html("<title>Just a moment...</title><p>Checking</p>"))
    assert detect_bot_wall(parse_html("<p>Verify you are human by completing the action below.</p>"))
    long_article = "<title>On captchas</title><p>" + "Sites ask you to verify you are human. " * 100 + "</p>"
    assert detect_bot_wall(parse_html(long_article)) is None


def test_auth_wall_by_url_form_or_words():
    assert detect_auth_wall(parse_html("<p>x</p>"), "https://www.linkedin.com/authwall?trk=1")
    assert detect_auth_wall(parse_html('<form><input name="session_key"></form>'))
    assert detect_auth_wall(parse_html("<h1>Sign in to view more content</h1>"))
    assert detect_auth_wall(parse_html("<p>A normal post</p>"), "https://www.linkedin.com/posts/x") is None
