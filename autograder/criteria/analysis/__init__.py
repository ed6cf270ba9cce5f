"""What criteria read with: source code, text, embeddings, metrics; no verdicts here."""
