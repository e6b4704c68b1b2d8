"""Drives a running logitd with the Python client, as a teacher would: sets over HTTP, logits rows
over HTTP and through shared memory, a refused body. Run by the Swift test suite
(PythonClientTests), which then checks what the daemon stored; usable as an example:

    python3 clients/python/example_teacher.py http://127.0.0.1:8484

Rows are synthetic: value i of row t of sequence s is 4·sin(0.37·i + 1.3·t + s), as f32.
"""

import json
import math
import struct
import sys

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from logitd_client import Client, LogitdError, SharedSlots, encode_logits, encode_sets  # noqa: E402

VOCAB = 50


def rows(s, positions):
    values = [4 * math.sin(0.37 * i + 1.3 * t + s) for t in range(positions) for i in range(VOCAB)]
    return struct.pack(f"<{len(values)}f", *values)


def main(url):
    client = Client(url, max_attempts=3)
    client.create_dataset("py", VOCAB, tau=0.9, k_min=1, k_max=8, teacher_id="example")

    sets = encode_sets(VOCAB, [{"key": "py-sets", "tokens": [1, 2, 3],
                                "sets": [([2, 7], [-0.1, -2.5], False), ([3], [-0.05], True)]}])
    results = {"sets": client.append("py", sets)}

    tokens = [[0, 5, 9, 13, 17], [3, 8, 1, 44, 2]]
    batch = lambda prefix: encode_logits(VOCAB, [{"key": f"{prefix}-{s}", "tokens": tokens[s], "rows": rows(s, 4)}
                                                 for s in range(2)])
    results["http"] = client.append("py", batch("py-http"))
    slots = SharedSlots(client, "example-teacher", len(batch("py-shm")))
    results["shm"] = slots.append("py", batch("py-shm"))
    results["shm_again"] = slots.append("py", batch("py-shm"))
    slots.close()

    # A token outside the vocabulary: refused with where it is, nothing written.
    bad = encode_logits(VOCAB, [{"key": "py-bad", "tokens": [0, VOCAB], "rows": rows(0, 1)}])
    try:
        client.append("py", bad)
        results["bad"] = "accepted"
    except LogitdError as e:
        results["bad"] = {"status": e.status, "offset": e.body.get("offset"), "error": e.body.get("error")}

    results["present"] = sorted(client.present_keys("py", ["py-sets", "py-http-1", "py-shm-0", "py-bad"]))
    results["stats_sequences"] = client.stats("py")["sequences"]
    client.seal("py")
    print(json.dumps(results, sort_keys=True))


if __name__ == "__main__":
    main(sys.argv[1])
