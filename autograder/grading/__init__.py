"""The grading pipeline: a submission's stages, from intake to a recorded verdict, and the cohort pass."""
