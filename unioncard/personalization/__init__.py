"""Personalisation bureau: print batches, encoding, spoilage, manifests (issue #5)."""
