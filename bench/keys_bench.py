"""Signing benchmark: signatures per second for each key store (software, SoftHSM2) for Ed25519
and P-256, and per-card key derivations (AES-CMAC) per second. One thread, one core.

    .venv/bin/python bench/keys_bench.py [--seconds 3]

SoftHSM2 must be installed (scripts/setup.sh --test installs it); the benchmark makes its own
throw-away token. Goal (issue 3): software backend ≥ 10 000 Ed25519 signatures/s on one core.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from unioncard.hsm.base import open_keystore  # noqa: E402
from unioncard.hsm.domain import Algorithm, KeyRole  # noqa: E402

SOFTHSM_MODULE = "/usr/lib/softhsm/libsofthsm2.so"
PAYLOAD = b"x" * 120  # about the size of a card credential


def rate(fn, seconds: float) -> float:
    fn()  # warm-up (loads the key)
    count, started = 0, time.perf_counter()
    deadline = started + seconds
    while time.perf_counter() < deadline:
        for _ in range(100):
            fn()
        count += 100
    return count / (time.perf_counter() - started)


def measure(name: str, store, seconds: float) -> None:
    store.generate(KeyRole.CARD_CREDENTIAL, Algorithm.ED25519)
    store.generate(KeyRole.CARD_CERTIFICATE, Algorithm.P256)
    store.generate(KeyRole.CARD_KEY_MASTER)
    uid = bytes.fromhex("04782E21801D80")
    for label, fn, goal in (
        ("Ed25519 signatures/s", lambda: store.sign(KeyRole.CARD_CREDENTIAL, PAYLOAD),
         "goal ≥ 10 000" if name == "software" else ""),
        ("P-256 signatures/s", lambda: store.sign(KeyRole.CARD_CERTIFICATE, PAYLOAD), ""),
        ("AES-CMAC card key derivations/s", lambda: store.derive_card_key(uid, b"\x30\x42\xf5", b"NXP Abu"), ""),
    ):
        print(f"{name:<10} {label:<34} {rate(fn, seconds):>10,.0f}   {goal}".replace(",", " "), flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="unioncard-keys-bench-"))
    with open_keystore(f"software:{work / 'software'}", "bench passphrase", create=True) as store:
        measure("software", store, args.seconds)
    if not os.path.exists(SOFTHSM_MODULE):
        print(f"SoftHSM2 not installed ({SOFTHSM_MODULE}): run scripts/setup.sh --test")
        return 1
    (work / "tokens").mkdir()
    conf = work / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {work / 'tokens'}\nobjectstore.backend = file\nlog.level = ERROR\n")
    os.environ["SOFTHSM2_CONF"] = str(conf)
    subprocess.run(["softhsm2-util", "--init-token", "--free", "--label", "bench", "--so-pin", "87654321",
                    "--pin", "123456"], check=True, capture_output=True)
    with open_keystore(f"pkcs11:module={SOFTHSM_MODULE};token=bench", "123456") as store:
        measure("SoftHSM2", store, args.seconds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
