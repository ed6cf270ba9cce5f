"""The probe author's API, at the path a lab's probes.py imports it from (`autograder.probing`).

The code lives with the stage that runs probes (`autograder.grading.probing`); this name stays put
so that a course's labs never follow the package's inner layout.
"""

from autograder.grading.probing import (
    ProbeFailure,
    Remote,
    Steps,
    StudentCodeError,
    check_codes,
    is_instance,
    steps,
)

__all__ = ["ProbeFailure", "Remote", "Steps", "StudentCodeError", "check_codes", "is_instance", "steps"]
