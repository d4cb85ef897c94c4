"""The chat page served at GET /: plain HTML + JS, no CDN. It streams from /v1/chat/completions (SSE) and
renders the `sources` extension of the first chunk as a list of links.

Everything the server or a document supplies is rendered as text (textContent), and a source is a link only
when it is http(s): a stored `javascript:` link stays inert text. The inline script and style carry a per-response
nonce that the Content-Security-Policy requires, so injected markup could not run a script anyway."""

CHAT_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>LLM Twin</title>
<style nonce="__NONCE__">
  body { font-family: system-ui, sans-serif; max-width: 52rem; margin: 2rem auto; padding: 0 1rem; color: #222; }
  textarea { width: 100%; min-height: 4.5rem; font: inherit; padding: .5rem; box-sizing: border-box; }
  #answer { white-space: pre-wrap; border: 1px solid #ddd; border-radius: 6px; padding: .75rem; min-height: 3rem; }
  #status { color: #666; font-size: .9rem; margin: .5rem 0; }
  .error { color: #b00020; }
  .row { display: flex; gap: .5rem; align-items: center; margin: .5rem 0; }
  button { font: inherit; padding: .4rem 1.2rem; }
  details { margin-top: 1rem; color: #555; }
</style>
</head>
<body>
<h1>LLM Twin</h1>
<p>Ask a question: the answer is written from the authors' own articles, posts and code, with sources.</p>
<label for="question">Question</label>
<textarea id="question" maxlength="__MAX_CHARS__" placeholder="e.g. How should I chunk documents for RAG?"></textarea>
<div class="row">
  <button id="ask" type="button">Ask</button>
  <input id="author" placeholder="author (optional)" size="22">
  <input id="apikey" type="password" placeholder="API key (if required)" size="22">
</div>
<div id="status" role="status"></div>
<h2>Answer</h2>
<div id="answer" aria-live="polite" data-state="idle"></div>
<h2>Sources</h2>
<ol id="sources"></ol>
<details><summary>Timings</summary><pre id="timings"></pre></details>
<script nonce="__NONCE__">
"use strict";
const $ = (id) => document.getElementById(id);
$("apikey").value = localStorage.getItem("llmTwinApiKey") || "";

function renderSources(sources) {
  const list = $("sources");
  list.innerHTML = "";
  for (const s of sources) {
    const item = document.createElement("li");
    item.value = s.number;
    if (/^https?:\\/\\//i.test(s.link)) {
      const link = document.createElement("a");
      link.href = s.link; link.textContent = s.title || s.link;
      link.target = "_blank"; link.rel = "noopener noreferrer";
      item.appendChild(link);
    } else {
      item.appendChild(document.createTextNode((s.title || "") + " (" + s.link + ")"));
    }
    item.appendChild(document.createTextNode(" — " + s.author + " (score " + s.score.toFixed(4) + ")"));
    list.appendChild(item);
  }
}

async function ask() {
  const question = $("question").value.trim();
  if (!question) { $("status").textContent = "Type a question first."; return; }
  const key = $("apikey").value.trim();
  localStorage.setItem("llmTwinApiKey", key);
  const headers = { "Content-Type": "application/json" };
  if (key) headers["Authorization"] = "Bearer " + key;
  const body = { model: "llm-twin", stream: true, sources_footer: false,
                 messages: [{ role: "user", content: question }] };
  const author = $("author").value.trim();
  if (author) body.author = author;
  $("answer").textContent = ""; $("answer").dataset.state = "streaming"; $("sources").innerHTML = "";
  $("status").className = ""; $("status").textContent = "Retrieving and thinking…"; $("ask").disabled = true;
  const started = performance.now();
  try {
    const response = await fetch("/v1/chat/completions", { method: "POST", headers, body: JSON.stringify(body) });
    if (!response.ok) {
      let message = response.status + " " + response.statusText;
      try {
        const data = await response.json();
        message = data.detail || (data.error && data.error.message) || message;
      } catch (e) {}
      throw new Error(message);
    }
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let cut;
      while ((cut = buffer.indexOf("\\n\\n")) >= 0) {
        const event = buffer.slice(0, cut); buffer = buffer.slice(cut + 2);
        for (const line of event.split("\\n")) {
          if (!line.startsWith("data: ")) continue;
          const payload = line.slice(6);
          if (payload === "[DONE]") continue;
          const chunk = JSON.parse(payload);
          if (chunk.error) throw new Error(chunk.error.message);
          if (chunk.sources) renderSources(chunk.sources);
          if (chunk.rag && chunk.rag.timings_ms) $("timings").textContent = JSON.stringify(chunk.rag, null, 2);
          const choice = chunk.choices && chunk.choices[0];
          if (choice && choice.delta && choice.delta.content) {
            if ($("status").textContent.startsWith("Retrieving")) $("status").textContent = "Answering…";
            $("answer").textContent += choice.delta.content;
          }
        }
      }
    }
    $("status").textContent = "Done in " + ((performance.now() - started) / 1000).toFixed(1) + " s.";
    $("answer").dataset.state = "done";
  } catch (err) {
    $("status").className = "error"; $("status").textContent = "Error: " + err.message;
    $("answer").dataset.state = "error";
  } finally {
    $("ask").disabled = false;
  }
}
$("ask").addEventListener("click", ask);
$("question").addEventListener("keydown", (e) => { if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) ask(); });
</script>
</body>
</html>
"""


def render_chat_page(max_chars: int, nonce: str) -> str:
    return CHAT_PAGE.replace("__MAX_CHARS__", str(max_chars)).replace("__NONCE__", nonce)


def page_csp(nonce: str) -> str:
    """Only this page's own nonce-tagged script and style run; it talks only to this origin; no framing."""
    return (
        f"default-src 'none'; script-src 'nonce-{nonce}'; style-src 'nonce-{nonce}'; connect-src 'self'; "
        "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )
