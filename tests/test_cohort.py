"""The cohort-wide originality pass, on real graded notebooks: copies go to review, and clear again."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.slow

ANA = ("Overfitting matters beyond accuracy: a model that memorises its training data can look excellent in "
       "the lab and then fail the people it is deployed on, often those least like the training set. Errors "
       "in media technology spread widely, so we should report held-out results honestly.")
# Bo's is Ana's with a few words changed; Cy wrote her own.
BO = (ANA.replace("matters beyond", "is about more than").replace("excellent", "great")
      .replace("spread widely", "spread very widely"))
CY = ("When a network learns noise instead of the pattern, its test score hides how it will behave on new "
      "cases. A loan or hiring model trained that way would reject applicants for coincidences in a small "
      "data set, and nobody could explain why. Recommendation feeds trained on clicks narrow what people see.")
CY_AGAIN = ("A classifier that fits its training data too closely gives confident answers that are wrong for "
            "people unlike the examples it saw; deployed in health care or policing that means real harm. "
            "In media, cheap deepfakes make it hard to trust any recording at all.")


@pytest.fixture
def originality_on(course):
    rubric = course / "rubrics" / "toy.yaml"
    rubric.write_text(rubric.read_text().replace("    originality: false\n", ""))
    return course


def reflection(result):
    return next(c for c in result.criteria if c.id == "reflection")


def test_a_copy_goes_to_review_naming_both_only_for_the_ta(originality_on, submissions, grade, store):
    submissions("ana", reflection=ANA)
    submissions("bo", reflection=BO)
    submissions("cy", reflection=CY)
    results = grade(submissions.folder)
    assert {s: r.verdict for s, r in results.items()} == {"ana": "review", "bo": "review", "cy": "G"}
    ana, bo = reflection(results["ana"]), reflection(results["bo"])
    assert [m["student"] for m in ana.details["similar_to"]] == ["bo"]
    assert [m["student"] for m in bo.details["similar_to"]] == ["ana"]
    assert ana.details["similar_to"][0]["similarity"] >= 0.4
    assert "bo" not in ana.message and "ana" not in bo.message  # the other student is named to the TA only
    assert "very similar to another student's" in ana.message
    assert ana.details["own_status"] == "pass"
    assert {r.student: r.verdict for r in store.latest("toy")} == {"ana": "review", "bo": "review", "cy": "G"}


def test_a_new_hand_in_clears_the_pair_and_a_late_copy_is_caught(originality_on, submissions, grade, store):
    submissions("ana", reflection=ANA)
    submissions("bo", reflection=BO)
    grade(submissions.folder)
    # Bo hands in his own text; graded alone, the pass still reaches Ana's result.
    (submissions.folder / "ana.ipynb").unlink()
    submissions("bo", reflection=CY_AGAIN)
    assert grade(submissions.folder)["bo"].verdict == "G"
    latest = {r.student: r for r in store.latest("toy")}
    assert latest["ana"].verdict == "G" and "similar_to" not in reflection(latest["ana"]).details
    # A late hand-in that copies Bo's new text is compared with everyone graded before it.
    (submissions.folder / "bo.ipynb").unlink()
    submissions("dan", reflection=CY_AGAIN.replace("cheap deepfakes", "cheap deep fakes"))
    assert grade(submissions.folder)["dan"].verdict == "review"
    assert store.latest_of("toy", "bo").verdict == "review"


def test_a_teachers_decision_stands_over_the_cohort_check(originality_on, submissions, grade, store):
    from autograder.grading.decisions import override

    submissions("ana", reflection=ANA)
    submissions("bo", reflection=BO)
    grade(submissions.folder)
    override(store, "toy", "bo", "reflection", "pass", "Ana and Bo wrote it together, as allowed.", by="tove")
    results = grade(submissions.folder, force=True)
    assert results["bo"].verdict == "G" and reflection(results["bo"]).override.was == "review"
    assert results["ana"].verdict == "review"
