"""A malformed lab or rubric fails at load, naming the file, the field and a fix."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from autograder.cli import main
from autograder.errors import ConfigError, UserError
from autograder.labs.lab import load_lab
from autograder.schema import write_schemas


def edit(path: Path, change) -> None:
    data = yaml.safe_load(path.read_text())
    change(data)
    path.write_text(yaml.safe_dump(data))


def rubric(course: Path) -> Path:
    return course / "rubrics" / "toy.yaml"


def spec(course: Path) -> Path:
    return course / "assignments" / "toy" / "lab.yaml"


def test_toy_lab_loads(course):
    lab = load_lab("toy", course)
    assert lab.spec.exports == ["predict"]
    assert [c.kind for c in lab.rubric.criteria] == [
        "notebook-runs", "accuracy", "generalization-gap", "hidden-tests", "reflection"]
    assert lab.version.startswith("1+")


@pytest.mark.parametrize(
    ("which", "change", "field", "words"),
    [
        (spec, lambda d: d.update(exports=["not a name"]), "exports[0]", "should match pattern"),
        (spec, lambda d: d.update(exports="predict"), "exports", "valid list"),
        (spec, lambda d: d.update(exprots=["x"]), "exprots", "Extra inputs"),
        (spec, lambda d: d["limits"].update(timeout=-1), "limits.timeout", "greater than 0"),
        (spec, lambda d: d["limits"].update(memory="lots"), "limits.memory", "could not parse"),
        (spec, lambda d: d["limits"].update(memory="1MiB"), "limits.memory", "at least 64MiB"),
        (spec, lambda d: d.update(notebook="../x.ipynb"), "notebook", ".ipynb"),
        (spec, lambda d: d["parameters"].update(data_dir="x"), "parameters", "set by the harness"),
        (spec, lambda d: d["splits"].update(test="secret"), "splits.test", "'public' or 'hidden'"),
        (rubric, lambda d: d["criteria"][1].update(min=1.5), "criteria[1].min", "less than or equal to 1"),
        (rubric, lambda d: d["criteria"][1].pop("min"), "criteria[1].min", "Field required"),
        (rubric, lambda d: d["criteria"][0].update(kind="vibes"), "criteria[0]", "does not match any of"),
        (rubric, lambda d: d["criteria"][2].update(id="runs"), "criteria", "used twice"),
        (rubric, lambda d: d["criteria"][1].update(split="holdout"), "criteria[1].split", "does not define"),
        (rubric, lambda d: d.update(lab="other"), "lab", "is 'other'"),
        (rubric, lambda d: d["criteria"][1].update(probe="scroes"), "criteria[1].probe",
         "no probes file defines probe_scroes()"),
        (rubric, lambda d: d["criteria"].append({"id": "size", "kind": "model-size", "export": "net",
                                                 "max_parameters": 10}),
         "criteria[5].export", "does not list under `exports`"),
        (rubric, lambda d: d["criteria"].append({"id": "size", "kind": "model-size"}), "criteria[5]",
         "max_parameters"),
        (rubric, lambda d: d["criteria"][4].update(on_fail="maybe"), "criteria[4].on_fail", "'U' or 'review'"),
        (rubric, lambda d: d["criteria"].append({"id": "x", "kind": "metric", "metric": "f1", "min": 0.5}),
         "criteria[5].metric", "known metrics"),
    ],
)
def test_malformed_files_name_file_field_and_problem(course, which, change, field, words):
    path = which(course)
    edit(path, change)
    with pytest.raises(ConfigError) as info:
        load_lab("toy", course)
    err = info.value
    assert err.path == path
    assert err.field == field
    assert words in err.problem


def test_every_config_error_carries_a_hint(course):
    edit(rubric(course), lambda d: d["criteria"][0].update(kind="vibes"))
    with pytest.raises(ConfigError) as info:
        load_lab("toy", course)
    assert info.value.hint


def test_invalid_yaml_names_the_line(course):
    rubric(course).write_text("lab: toy\ncriteria:\n  - id: a\n   kind: x\n")
    with pytest.raises(ConfigError) as info:
        load_lab("toy", course)
    assert info.value.field.startswith("line ")


def test_missing_rubric_and_unknown_lab(course):
    rubric(course).unlink()
    with pytest.raises(ConfigError, match="file not found"):
        load_lab("toy", course)
    with pytest.raises(UserError, match="no lab named 'nope'") as info:
        load_lab("nope", course)
    assert "toy" in info.value.hint


def test_probes_with_a_syntax_error_fail_at_load(course):
    (course / "reference" / "toy" / "probes.py").write_text("def probe_scores(exports, inputs)\n    pass\n")
    with pytest.raises(ConfigError) as info:
        load_lab("toy", course)
    assert info.value.field == "line 1" and "not valid Python" in info.value.problem


def test_missing_hidden_data_is_named(course):
    (course / "reference" / "toy" / "data" / "test.npz").unlink()
    with pytest.raises(ConfigError) as info:
        load_lab("toy", course)
    assert info.value.field == "splits.test"


def test_cli_prints_one_line_and_a_hint_without_traceback(course, capsys):
    edit(rubric(course), lambda d: d["criteria"][1].update(min=2))
    code = main(["validate-lab", "toy", "--root", str(course)])
    err = capsys.readouterr().err
    assert code == 2
    assert "toy.yaml: criteria[1].min:" in err
    assert "hint:" in err
    assert "Traceback" not in err


def test_cli_debug_shows_the_traceback(course):
    edit(rubric(course), lambda d: d["criteria"][1].update(min=2))
    with pytest.raises(ConfigError):
        main(["validate-lab", "toy", "--root", str(course), "--debug"])


def test_schemas_are_written_and_describe_the_kinds(tmp_path):
    paths = write_schemas(tmp_path)
    assert sorted(p.name for p in paths) == ["course.schema.json", "lab.schema.json", "result.schema.json",
                                            "rubric.schema.json"]
    rubric_schema = json.loads((tmp_path / "rubric.schema.json").read_text())
    specs = rubric_schema["$defs"].values()
    kinds = {d["properties"]["kind"]["const"] for d in specs if "kind" in d.get("properties", {})}
    assert {"accuracy", "generalization-gap", "hidden-tests", "notebook-runs", "reflection"} <= kinds


def test_schema_command(tmp_path, capsys):
    assert main(["schema", "-o", str(tmp_path / "s")]) == 0
    assert (tmp_path / "s" / "lab.schema.json").is_file()
