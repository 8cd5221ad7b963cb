#!/usr/bin/env python3
"""How long choosing the encoding takes: count_parts with no, one and all 13 national languages.

    .venv/bin/python bench/bench_encoding.py [--repeat 200]

count_parts runs for every HTTP request, spool file check and SMPP submit_sm, and
encode_submit makes the same choice again for each recipient. With national_languages the
encoder weighs the default alphabet, UCS-2 and every locking/single pair of the listed
languages (181 with all 13). Not a test: it prints milliseconds per call and the parts chosen.
"""

from __future__ import annotations

import argparse
import time

from gsmgw.sms import count_parts
from gsmgw.sms.national import CODES

TEXTS = {
    "ASCII, 1360 characters": "Disk full on db1, please check the replication lag and the backups. " * 20,
    "Hindi, 204 characters": "नमस्ते, आप कैसे हैं? मैं ठीक हूँ। " * 6,
    "Turkish, 300 characters": "Şükrü'nün ığdır gezisi çok güzeldi. " * 8,
}
SETTINGS = {"none": (), "hi": ("hi",), "all 13": CODES}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=200)
    args = parser.parse_args()
    for name, text in TEXTS.items():
        for label, languages in SETTINGS.items():
            start = time.perf_counter()
            for _ in range(args.repeat):
                count = count_parts(text, national_languages=languages)
            elapsed = (time.perf_counter() - start) / args.repeat * 1000
            print(f"{name:26} languages {label:7} {elapsed:7.2f} ms  {count.parts} parts {count.encoding.describe()}")


if __name__ == "__main__":
    main()
