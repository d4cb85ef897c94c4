"""HTML -> Markdown through the one extraction path (trafilatura + the Markdown writer): structure survives,
code is byte-for-byte, text is stored once, titles lose their site decorations; walls are recognised."""

from __future__ import annotations

import pytest

from llm_engineering.application.crawlers.extraction import (
    GENERIC_HINTS,
    PageHints,
    extract_article,
    html_to_markdown,
    parse_html,
)
from llm_engineering.application.crawlers.linkedin import is_linkedin_article, read_post
from llm_engineering.application.crawlers.metadata import page_language, page_title
from llm_engineering.application.crawlers.walls import detect_auth_wall, detect_bot_wall
from llm_engineering.domain.errors import CrawlError

URL = "https://blog.example/posts/1"
CODE = 'def f(x):\n    if x:\n\treturn "tab"\n\n    return [\n        1,\n    ]'
FILLER = (
    "<p>" + "This paragraph is ordinary article prose that gives the page enough text to be an article. " * 3 + "</p>"
)


def page(body: str, head: str = "<title>A post</title>", hints: PageHints = GENERIC_HINTS) -> dict[str, str]:
    html = f"<html lang='en'><head>{head}</head><body><article>{body}</article></body></html>"
    return extract_article(parse_html(html), URL, URL, hints)


def body(html: str) -> str:
    return page(FILLER + html)["Content"]


def test_headings_paragraphs_and_line_breaks():
    text = body("<h2>Sub <em>one</em></h2><p>Hello <b>bold</b>\n   world.</p><h3>Deeper</h3><p>Second<br>line</p>")
    assert "## Sub one\n\nHello bold world.\n\n### Deeper\n\nSecond\nline" in text


def test_links_are_absolute_and_odd_links_keep_only_their_text():
    text = body(
        '<p>Before you start, read <a href="/docs">the docs</a> from the top, then the notes on '
        '<a href="https://x.org/a?b=1">the x project</a>; write to <a href="mailto:a@b.c">the list</a> or '
        'press <a href="javascript:void(0)">the button</a> when you are stuck with your own set-up.</p>'
    )
    assert (
        "Before you start, read [the docs](https://blog.example/docs) from the top, then the notes on "
        "[the x project](https://x.org/a?b=1); write to the list or press the button when you are stuck"
    ) in text


def test_nested_and_ordered_lists():
    text = body(
        "<ul><li>one</li><li>two<ul><li>two.a</li><li><p>two.b</p><p>more</p></li></ul></li></ul>"
        "<ol><li>three</li><li>four</li></ol>"
    )
    assert "- one\n- two\n  - two.a\n  - two.b\n    more" in text
    assert "1. three\n2. four" in text


def test_code_block_is_byte_for_byte_with_language_fence():
    text = body(f'<p>Code:</p><pre><code class="language-python">{CODE}\n</code></pre><p>After the code.</p>')
    assert f"Code:\n\n```python\n{CODE}\n```\n\nAfter the code." in text


def test_highlighted_code_with_spans_and_br_keeps_lines():
    text = body('<pre class="lang-js"><span class="k">if</span> (x) {<br>  <span>go</span>();<br>}</pre>')
    assert "```js\nif (x) {\n  go();\n}\n```" in text


def test_code_containing_a_fence_gets_a_longer_fence():
    assert "````\n```\ninner\n```\n````" in body("<pre>```\ninner\n```</pre>")


def test_inline_code_blockquote_and_table():
    text = body(
        "<p>Use <code>enumerate</code> here.</p><blockquote><p>Quote one</p><p>two</p></blockquote>"
        "<table><tr><th>a</th><th>b</th></tr><tr><td>1</td><td>2</td></tr></table>"
    )
    assert "Use `enumerate` here." in text
    assert "> Quote one\n>\n> two" in text
    assert "| a | b |\n| --- | --- |\n| 1 | 2 |" in text


def test_scripts_styles_widgets_and_screen_reader_copies_are_dropped():
    text = body(
        "<p>Visible words here.</p><script>var x = 'script words';</script><style>p{}</style>"
        '<select><option>option words</option></select><span class="visually-hidden">screen reader words</span>'
        "<nav><a href='/'>Home</a> <a href='/about'>About me</a></nav>"
    )
    assert "Visible words here." in text
    for gone in ("script words", "option words", "screen reader words", "About me"):
        assert gone not in text


def test_a_hidden_full_copy_of_a_truncated_paragraph_is_stored_once():
    # "Read more" widgets: a truncated visible paragraph and the full text, hidden until clicked. Hidden text is
    # not dropped as such (some sites hide whole articles in accordions); the repeat is.
    full = "Interviewing is a skill you can practise. Practise it weekly and it stops being frightening."
    text = body(
        f"<p>Interviewing is a skill you can practise. Practise it weekly and it…</p><div hidden><p>{full}</p></div>"
    )
    assert text.count("Interviewing is a skill") == 1 and full in text


def test_a_body_also_in_json_ld_a_json_blob_and_meta_tags_is_stored_once():
    sentence = "The only copy that counts is the one a reader sees on the page."
    head = (
        f'<title>A post</title><meta name="description" content="{sentence}">'
        f'<meta property="og:description" content="{sentence}">'
        f'<script type="application/ld+json">{{"@type": "BlogPosting", "articleBody": "{sentence}"}}</script>'
    )
    html = FILLER + f'<p>{sentence}</p><script>window._preloads = {{"body": "<p>{sentence}</p>"}}</script>'
    text = page(html, head=head)["Content"]
    assert text.count(sentence) == 1


def test_repeated_blocks_and_pull_quotes_are_stored_once():
    sentence = "Cats evaluate cost, benefits and impact before they move a single paw."
    text = body(
        f"<blockquote><p>{sentence}</p></blockquote>"
        f"<p>They are not lazy. {sentence} Economists should take note.</p>"
        "<p>A sidebar block that the theme rendered twice on the page.</p>"
        "<p>A sidebar block that the theme rendered twice on the page.</p>"
        "<p>* * *</p><p>Next section starts here with its own words.</p><p>* * *</p>"
    )
    assert text.count(sentence) == 1 and f"> {sentence}" not in text
    assert text.count("rendered twice") == 1
    assert text.count("* * *") == 2  # short separators are not "repeated text"


def test_title_and_visible_subtitle_are_not_repeated_in_the_body():
    hints = PageHints(subtitle=("h2.subtitle",))
    content = page(f"<h1>My Post</h1><h2 class='subtitle'>The subtitle</h2>{FILLER}", hints=hints)
    assert content["Title"] == "My Post" and content["Subtitle"] == "The subtitle"
    assert "My Post" not in content["Content"] and "The subtitle" not in content["Content"]
    assert content["language"] == "en"


def test_a_meta_description_equal_to_the_first_paragraph_is_stored_once_in_the_body():
    first = "The first paragraph doubles as the page's meta description on many blogs."
    content = page(
        f"<h1>T</h1><p>{first}</p>{FILLER}", head=f'<title>T</title><meta name="description" content="{first}">'
    )
    assert content["Subtitle"] == "" and content["Content"].startswith(first)
    # Cut short mid-word, as LinkedIn Pulse's description of the lead paragraph is: still the same text.
    content = page(
        f"<h1>T</h1><p>{first}</p>{FILLER}", head=f'<title>T</title><meta name="description" content="{first[:50]}">'
    )
    assert content["Subtitle"] == "" and content["Content"].startswith(first)
    other = "A description that says something the article does not."
    content = page(
        f"<h1>T</h1><p>{first}</p>{FILLER}", head=f'<title>T</title><meta name="description" content="{other}">'
    )
    assert content["Subtitle"] == other


def test_related_post_lists_and_affiliate_disclosures_are_dropped():
    text = body(
        "<p>DISCLOSURE: If you buy through affiliate links, I may earn a small commission.</p>"
        "<p>If you liked this post you might also like:</p>"
        '<ul><li><a href="/a">Another post</a></li><li><a href="/b">Yet another post</a></li></ul>'
    )
    for gone in ("DISCLOSURE", "might also like", "Another post"):
        assert gone not in text


def test_page_without_text_is_a_clear_error():
    with pytest.raises(CrawlError, match="no article text found"):
        extract_article(parse_html("<html><body><div id='app'></div><script>x()</script></body></html>"), URL, URL)


@pytest.mark.parametrize(
    ("head", "h1", "expected"),
    [
        ('<meta property="og:title" content="Post title – Medium">', "", "Post title"),
        ('<meta property="og:title" content="Post title | by Ada Lovelace | Medium">', "", "Post title"),
        (
            '<meta property="og:site_name" content="Bits or pieces?"><title>Bits or pieces?: A good enough map</title>',
            "",
            "A good enough map",
        ),
        ("<title>Death Spiral - How Small Languages Die</title>", "", "Death Spiral - How Small Languages Die"),
        ("<title>Linux Engineer's random thoughts - awk driven IoT</title>", "awk driven IoT", "awk driven IoT"),
        ("<title>» Going mobile in 1998</title>", "", "Going mobile in 1998"),
        (
            '<script type="application/ld+json">{"@type": "NewsArticle", "headline": "Cats"}</script>',
            "",
            "Cats",
        ),
    ],
)
def test_title_loses_site_decorations_only(head, h1, expected):
    html = f"<html><head>{head}</head><body>{f'<h1>{h1}</h1>' if h1 else ''}<p>x</p></body></html>"
    assert page_title(parse_html(html), "https://blog.example/p") == expected


def test_page_language():
    assert page_language(parse_html('<html lang="fr"><body></body></html>')) == "fr"


def test_html_to_markdown_renders_ready_made_content():
    html = parse_html(f"<div><h2>Part</h2><p>Text with a <a href='/x'>link</a>.</p><pre>{CODE}</pre></div>")
    text = html_to_markdown(html.body, "https://blog.example/")
    assert text == f"## Part\n\nText with a [link](https://blog.example/x).\n\n```\n{CODE}\n```"


def test_linkedin_logged_in_reshare_is_marked_and_not_doubled():
    html = """<div class="feed-shared-update-v2" data-urn="urn:li:activity:1">
      <div class="feed-shared-update-v2__description"><div class="update-components-text">
        <span class="break-words"><span dir="ltr">My words on it.</span></span></div></div>
      <div class="feed-shared-update-v2__update-content-wrapper"><div class="update-components-mini-update-v2">
        <span class="update-components-actor__title"><span aria-hidden="true">Grace Hopper</span>
          <span class="visually-hidden">Grace Hopper</span></span>
        <div class="update-components-text"><span dir="ltr">Her words.</span></div></div></div>
      <section class="comments"><p class="update-components-text">A comment.</p></section></div>"""
    text, image = read_post(parse_html(html), "https://www.linkedin.com/feed/update/urn:li:activity:1/")
    assert text == "My words on it.\n\nReshared from Grace Hopper:\n\n> Her words."
    assert image is None


def test_linkedin_article_links_are_pulse_links():
    assert is_linkedin_article("https://www.linkedin.com/pulse/5-trends-from-nutrition-2025-dylan-bailey")
    assert is_linkedin_article("linkedin.com/pulse/x")
    assert not is_linkedin_article("https://www.linkedin.com/posts/ada_shipping-activity-7")
    assert not is_linkedin_article("https://example.org/pulse/x")


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
