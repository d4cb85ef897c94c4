"""The chat page in a real headless Chromium: type a question, watch the streamed answer and its sources."""

from __future__ import annotations

import shutil

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.browser]


@pytest.fixture
def browser(rag_corpus_settings):
    """The project's own Chromium session (same binaries and flags as the crawlers)."""
    from llm_engineering.infrastructure.browser import BrowserSession

    if not shutil.which(rag_corpus_settings.chromium_binary) or not shutil.which(rag_corpus_settings.chromedriver_path):
        pytest.fail("Chromium is missing: apt-get install -y chromium chromium-driver")
    session = BrowserSession(rag_corpus_settings)
    try:
        yield session.driver
    finally:
        session.close()


def test_chat_page_streams_an_answer_and_lists_sources(rag_app, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(rag_app.url + "/")
    assert "LLM Twin" in browser.title
    browser.find_element(By.ID, "question").send_keys("How should documents be chunked for retrieval?")
    browser.find_element(By.ID, "ask").click()

    answer = browser.find_element(By.ID, "answer")
    # Streaming: text shows up while the answer is still in progress.
    WebDriverWait(browser, 120, poll_frequency=0.05).until(
        lambda d: answer.get_attribute("data-state") != "streaming" or answer.text.strip()
    )
    seen_while_streaming = answer.get_attribute("data-state") == "streaming" and bool(answer.text.strip())
    WebDriverWait(browser, 120).until(lambda d: answer.get_attribute("data-state") in ("done", "error"))
    status = browser.find_element(By.ID, "status").text
    assert answer.get_attribute("data-state") == "done", status
    assert answer.text.strip()
    assert seen_while_streaming, "the answer appeared only at the end: not streamed"
    links = browser.find_elements(By.CSS_SELECTOR, "#sources li a")
    assert links and all(link.get_attribute("href").startswith("http") for link in links)


def test_chat_page_shows_errors_instead_of_failing_silently(rag_app, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(rag_app.url + "/")
    browser.execute_script("document.getElementById('question').removeAttribute('maxlength')")
    browser.execute_script("document.getElementById('question').value = 'x'.repeat(20000)")
    browser.find_element(By.ID, "ask").click()
    WebDriverWait(browser, 30).until(lambda d: d.find_element(By.ID, "answer").get_attribute("data-state") == "error")
    assert "limit" in browser.find_element(By.ID, "status").text
