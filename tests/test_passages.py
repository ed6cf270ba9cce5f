"""Two students' work side by side with what they share highlighted (publish/passages.py): the right words and
lines marked, student text escaped inside and outside the marks, and whatever a corrupt store holds shown
without an error."""

from __future__ import annotations

import re

import pytest
from page_checks import PAYLOAD, assert_inert

from autograder.publish.passages import MAX_LINES, MAX_PASSAGES, MAX_TEXT_CHARS, code_passages_html, shared_text_html


def marks(html: str) -> list[list[str]]:
    """The marked runs of each side, in order."""
    sides = re.findall(r'<div class="pg-text">(.*?)</div>', html, re.S)
    return [re.findall(r"<mark>(.*?)</mark>", side, re.S) for side in sides]


def lines(html: str) -> list[dict[int, str]]:
    """{line number: colour class or ""} of each side's listing."""
    sides = re.findall(r'<pre class="pg-code">(.*?)</pre>', html, re.S)
    return [{int(n): c.strip() for c, n in re.findall(r'<span class="pg-line ?([^"]*)" data-pairs="[^"]*">'
                                                     r'<span class="pg-no">(\d+)</span>', side)} for side in sides]


# --- texts ------------------------------------------------------------------------------------------------------


def test_words_in_shared_three_word_runs_are_marked_on_both_sides():
    mine = "Overfitting means the model memorises its training data. I like cats."
    theirs = "In my view the model memorises its training data, and dogs are fine. Cats I like."
    html = shared_text_html(mine, theirs, mine_label="ana", theirs_label="bo")
    assert marks(html) == [["the model memorises its training data"], ["the model memorises its training data"]]
    assert "<h3>ana</h3>" in html and "<h3>bo</h3>" in html
    assert "6 of 11 words in 3-word runs" in html and "6 of 16 words" in html
    # two words in common, or the same words in another order, are no run
    assert marks(shared_text_html("cats I like", "I like cats")) == [[], []]


def test_runs_are_matched_as_the_originality_check_reads_words():
    mine = "The MODEL, memorises;  its\ntraining data."
    theirs = "the model memorises its training data"
    assert marks(shared_text_html(mine, theirs)) == [["The MODEL, memorises;  its training data"],
                                                     ["the model memorises its training data"]]
    # words only in the other's code block or HTML tags do not count (strip_markdown, as originality does)
    theirs = "```\nthe model memorises\n```\n<span title='its training data'>x</span>"
    assert marks(shared_text_html(mine, theirs))[0] == []


def test_hostile_text_is_escaped_inside_and_outside_the_marks():
    shared = "copied </ words =\"\" onerror=alert(1) right here"  # markup between the words of a shared run
    mine = PAYLOAD + " mine alone " + shared + " \x1b[31m{{ 7*7 }}\x07"
    theirs = "<b>bold</b> <img src=x onerror=alert(2)> other text " + shared
    html = shared_text_html(mine, theirs, mine_label="<i>ana</i>", theirs_label="\x1b]0;x\x07bo\"")
    assert_inert(html)
    assert {"i", "b", "img", "script"}.isdisjoint(re.findall(r"<(\w+)", html))
    assert marks(html) == [["copied &lt;/ words =&#34;&#34; onerror=alert(1) right here"]] * 2
    assert "&lt;script&gt;document.title=&#39;PWNED&#39;&lt;/script&gt;" in html  # outside the marks
    assert "&lt;img src=x onerror=alert(2)&gt;" in html
    assert "{{ 7*7 }}" in html and "&lt;i&gt;ana&lt;/i&gt;" in html and "bo&#34;" in html
    assert not re.search(r"[\x00-\x08\x0b-\x1f]", html)


def test_long_or_missing_texts():
    long = "word " * (MAX_TEXT_CHARS // 2)
    html = shared_text_html(long, None)
    assert f"({len(long) - MAX_TEXT_CHARS:,} more characters not shown)" in html and "(no text recorded)" in html
    assert len(html) < MAX_TEXT_CHARS + 5000
    assert marks(shared_text_html("", "")) == [[], []]


# --- code -------------------------------------------------------------------------------------------------------

MINE = ("import numpy as np\n\ndef relu(z):\n    return np.maximum(z, 0)\n\n"
        "def loss(p, y):\n    return -(y * np.log(p)).sum()\n")
THEIRS = "# mine\ndef cost(q, t):\n    return -(t * np.log(q)).sum()\n\ndef act(x):\n    return np.maximum(x, 0)\n"


def test_each_pair_of_passages_is_marked_in_its_own_colour_with_line_numbers():
    html = code_passages_html(MINE, THEIRS, [{"mine": [3, 4], "theirs": [5, 6]}, {"mine": [6, 7], "theirs": [2, 3]}],
                              mine_label="ana", theirs_label="bo")
    mine, theirs = lines(html)
    assert mine == {1: "", 2: "", 3: "pg-c0", 4: "pg-c0", 5: "", 6: "pg-c1", 7: "pg-c1"}
    assert theirs == {1: "", 2: "pg-c1", 3: "pg-c1", 4: "", 5: "pg-c0", 6: "pg-c0"}
    assert "lines 3-4</span> here and <span class=\"pg-c0\">lines 5-6</span> there" in html
    assert '<span class="pg-no">4</span>    return np.maximum(z, 0)</span>' in html


def test_hostile_code_is_escaped_inside_and_outside_the_passages():
    mine = f"x = '{PAYLOAD}'\nprint('<b>{{{{ x }}}}</b>')\x1b[2J\n"
    html = code_passages_html(mine, mine, [{"mine": [1, 1], "theirs": [1, 1]}], mine_label="<b>a</b>")
    assert_inert(html)
    assert "<b>" not in html and "&lt;b&gt;{{ x }}&lt;/b&gt;" in html and "\x1b" not in html
    assert lines(html)[0] == {1: "pg-c0", 2: ""}


@pytest.mark.parametrize("passages, mine_marked, theirs_marked, note", [
    ([{"mine": [4, 3], "theirs": [6, 5]}], {3, 4}, {5, 6}, None),  # reversed: ordered
    ([{"mine": [6, 99], "theirs": [0, 2]}], {6, 7}, {1, 2}, None),  # past the end: clipped
    ([{"mine": [50, 60], "theirs": [1, 2]}], set(), set(), "(1 recorded passage not shown"),  # wholly outside
    ([{"mine": [1, 4], "theirs": [1, 2]}, {"mine": [3, 5], "theirs": [2, 3]}], {1, 2, 3, 4, 5}, {1, 2, 3}, None),
    ([{"mine": ["1", 2], "theirs": [1, 2]}, {"mine": [1, True], "theirs": [1, 2]}, {"mine": [1]}, "x", None,
      {"theirs": [1, 2]}, {"mine": {"a": 1}, "theirs": [1, 2]}], set(), set(), "(7 recorded passages not shown"),
    ("not a list", set(), set(), "(the passages recorded are not a list; none are shown)"),
    (None, set(), set(), "(no shared passages recorded)"),
])
def test_ranges_from_a_corrupt_store_are_mended_or_left_out(passages, mine_marked, theirs_marked, note):
    html = code_passages_html(MINE, THEIRS, passages)
    mine, theirs = lines(html)
    assert {n for n, c in mine.items() if c} == mine_marked
    assert {n for n, c in theirs.items() if c} == theirs_marked
    if note:
        assert note in html


def test_overlapping_passages_keep_the_first_colour_and_list_both():
    html = code_passages_html(MINE, THEIRS, [{"mine": [1, 4], "theirs": [1, 2]}, {"mine": [3, 5], "theirs": [2, 3]}])
    mine, _ = lines(html)
    assert mine[3] == mine[4] == "pg-c0" and mine[5] == "pg-c1"
    assert 'data-pairs="1 2"><span class="pg-no">3</span>' in html


def test_long_listings_and_many_passages_are_capped():
    code = "".join(f"line_{i} = {i}  # {'z' * (i % 3) * 300}\n" for i in range(MAX_LINES + 500))
    passages = [{"mine": [i, i], "theirs": [i, i]} for i in range(1, MAX_PASSAGES + 11)]
    html = code_passages_html(code, 12345, passages)
    mine, theirs = lines(html)
    assert len(mine) == MAX_LINES and theirs == {}
    assert f"(lines {MAX_LINES + 1:,}-{MAX_LINES + 500:,} not shown)" in html and "(no text recorded)" in html
    # a listing with nothing in it keeps no range: every passage is left out, and says so
    assert f"({MAX_PASSAGES + 10} recorded passages not shown" in html
    html = code_passages_html(code, code, passages)
    assert "(10 more passages not shown)" in html
    assert "lines 40-40" in html and "lines 41-41" not in html
    assert len(html) < 2 * MAX_LINES * (400 + 120)


def test_a_paragraph_wrapped_in_the_source_reads_as_one_and_lists_keep_their_lines():
    mine = "the model memorises\nits training data well.\n\nSecond paragraph:\n- one item here\n- two items here"
    html = shared_text_html(mine, "the model memorises its training data")
    assert marks(html)[0] == ["the model memorises its training data"]
    assert "well.\n\nSecond paragraph:\n- one item here\n- two items here" in html
