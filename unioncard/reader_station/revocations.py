"""The revoked-card set of an event bundle: an exact, compressed sorted set.

Each card number becomes its first 15 digits as an integer (issuer prefix, region, serial; the
check digit adds nothing). The sorted keys are stored as gaps, each gap in order-k exponential
Golomb code (Elias gamma of ``gap >> k``, then the k low bits), with k chosen to make the
section smallest. Serials are given densely per region, so revoked keys are a sparse subset of
a dense range and the gaps are small: with 1 % revoked the mean gap is ~100 and a key costs
~9 bits; the 85 jumps between regions cost ~40 bits each, which is why the quotient is
gamma-coded instead of Rice's unary. Exact: no false positives, unlike a Bloom filter, and
no need to ship the set of valid cards, unlike a filter cascade. Format: docs/formats.md §10.
"""

from __future__ import annotations

from unioncard.issuer import cardnumber

SCHEME = "exp-golomb-delta/1"
MAX_K = 40
# Keys are the first 15 digits of a card number: anything from 10**15 up is damage, not a card.
KEY_LIMIT = 10 ** 15
# A gap below KEY_LIMIT has a quotient of at most 50 bits; longer zero runs are damage (and
# refusing them early keeps a damaged set from building huge integers).
MAX_ZEROS = 50


def key(number: str) -> int:
    return int(cardnumber.compact(number)[:15])


def _cost(gaps: list[int], k: int) -> int:
    return sum(k + 2 * ((gap >> k) + 1).bit_length() - 1 for gap in gaps)


def _gaps(keys) -> list[int]:
    previous = -1
    gaps = []
    for value in sorted(set(keys)):
        gaps.append(value - previous - 1)
        previous = value
    return gaps


def best_k(gaps: list[int]) -> int:
    if not gaps:
        return 0
    # The median, not the mean: the first key and the jumps between regions are huge outliers.
    median = sorted(gaps)[len(gaps) // 2]
    centre = min(MAX_K, max(0, median.bit_length() - 1))
    candidates = range(max(0, centre - 3), min(MAX_K, centre + 3) + 1)
    # On a sample: the costs' minimum is the same and a 4 M-card bundle builds faster.
    sample = gaps[:: max(1, len(gaps) // 20_000)]
    return min(candidates, key=lambda k: _cost(sample, k))


def encode(keys) -> tuple[bytes, int, int]:
    """(data, k, count) for a collection of integer keys."""
    gaps = _gaps(keys)
    k = best_k(gaps)
    parts = []
    mask = (1 << k) - 1
    for gap in gaps:
        quotient = (gap >> k) + 1
        width = quotient.bit_length()
        parts.append("0" * (width - 1))
        parts.append(format(quotient, "b"))
        if k:
            parts.append(format(gap & mask, f"0{k}b"))
    bits = "".join(parts)
    padding = -len(bits) % 8
    bits += "0" * padding
    data = int(bits, 2).to_bytes(len(bits) // 8, "big") if bits else b""
    return data, k, len(gaps)


class DecodeError(ValueError):
    pass


def decode(data: bytes, k: int, count: int) -> set[int]:
    """The keys, or DecodeError if the data do not hold ``count`` of them."""
    if not 0 <= k <= MAX_K or count < 0:
        raise DecodeError("parameters")
    bits = format(int.from_bytes(data, "big"), f"0{len(data) * 8}b") if data else ""
    length = len(bits)
    position = 0
    previous = -1
    keys = set()
    find = bits.find
    for _ in range(count):
        one = find("1", position)
        if one < 0:
            raise DecodeError("truncated")
        zeros = one - position
        if zeros > MAX_ZEROS:
            raise DecodeError("gap too large")
        end = one + zeros + 1 + k
        if end > length:
            raise DecodeError("truncated")
        quotient = int(bits[one:one + zeros + 1], 2) - 1
        low = int(bits[one + zeros + 1:end], 2) if k else 0
        previous += ((quotient << k) | low) + 1
        if previous >= KEY_LIMIT:
            raise DecodeError("key out of range")
        keys.add(previous)
        position = end
    if "1" in bits[position:]:
        raise DecodeError("trailing data")
    return keys
