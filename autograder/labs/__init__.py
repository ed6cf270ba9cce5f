"""A lab as its staff write it: lab.yaml, the rubric, and the tools that make the student kit from the reference."""
