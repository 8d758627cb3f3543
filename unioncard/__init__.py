"""UnionCard: electronic membership cards (ЭПБ) of a trade union.

Subpackages: registry (organisations, members, consents, users), issuer (card orders and
lifecycle), personalization (print batches), card_layouts (card faces), hardware (printers,
readers, scanners), hsm (keys and signing), reader_station (offline check-in desks) and
checkin_web (the Flask web application).
"""

__version__ = "0.1.0"
