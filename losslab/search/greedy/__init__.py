"""The greedy backend: loss parameters steered by look-ahead during training (Seo)."""
