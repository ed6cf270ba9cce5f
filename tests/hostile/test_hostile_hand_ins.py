"""Hostile hand-ins at intake: garbage, traversing, linked, oversized and non-UTF-8 zips get a reason, not a crash."""

from __future__ import annotations

import stat
import zipfile

from hand_ins import MODULES, by_student, nb_bytes, zipped

from autograder.grading.intake import MAX_MODULE_BYTES, discover


def test_broken_and_hostile_zips_get_a_reason_not_a_crash(tmp_path):
    subs = tmp_path / "subs"
    subs.mkdir()
    (subs / "garbage.zip").write_bytes(b"not a zip at all")
    zipped(subs, "two", {"a.ipynb": nb_bytes(), "b.ipynb": nb_bytes(), "rules.py": b""})
    zipped(subs, "escape", {"../../evil.ipynb": nb_bytes(), "/abs/rules.py": b"X = 1\n"})
    zipped(subs, "big", {"lab.ipynb": nb_bytes(), "rules.py": b"#" * (MAX_MODULE_BYTES + 1)})
    zipped(subs, "latin1", {"lab.ipynb": nb_bytes(), "rules.py": "x = 'é'".encode("latin-1")})
    with zipfile.ZipFile(subs / "link.zip", "w") as z:
        z.writestr("lab.ipynb", nb_bytes())
        info = zipfile.ZipInfo("rules.py")
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        z.writestr(info, "/etc/passwd")
    found = by_student(discover(subs, MODULES))
    assert "not a readable zip" in found["garbage"].problem
    assert "holds 2 notebooks" in found["two"].problem
    assert "holds no notebook" in found["escape"].problem  # a path out of the zip is never taken
    assert "larger than the 2 MiB limit" in found["big"].problem
    assert "rules.py is not UTF-8 text" in found["latin1"].problem
    assert "rules.py is missing" in found["link"].problem  # a symbolic link is not a file
    assert not (tmp_path / "evil.ipynb").exists()
