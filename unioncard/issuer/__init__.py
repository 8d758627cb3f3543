"""Card orders, 16-digit card numbers and the card lifecycle (issue #4)."""
