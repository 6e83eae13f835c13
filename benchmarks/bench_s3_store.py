"""What keeping the artifacts on S3 costs a run: the guide's Basic Training Loop (six cards a batch) run with its
artifacts in the store folder and on an S3-compatible server on loopback (moto's server mode, started here),
first run and a second run served from the cache, under `--persist all` (every output stored).

    .venv/bin/python benchmarks/bench_s3_store.py [--batches N] [--reps N]

Needs the test extra (moto[server], s3fs). Loopback moto has none of a real bucket's network latency (a real
S3 request costs 10-50 ms): read the figures with the request counts of docs/store.md. Prints the best and the
median wall-clock seconds of each. See benchmarks/README.md. Changes nothing in cardloop.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

import cardloop
from cardloop.examples import basic_training_loop


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    os.environ.update(AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench", AWS_DEFAULT_REGION="us-east-1",
                      AWS_ENDPOINT_URL=f"http://{host}:{port}")
    import boto3

    folder = Path(tempfile.mkdtemp(prefix="cardloop-s3-bench-"))
    rng = np.random.default_rng(7)
    X = rng.standard_normal((16 * args.batches, 4))
    pd.DataFrame(X, columns=list("abcd")).assign(target=X.sum(axis=1)).to_csv(folder / "data.csv", index=False)
    pipeline = basic_training_loop(path=str(folder / "data.csv"), input_dim=4, prepare=False, batches=args.batches,
                                   batch_size=16, layers=[8])
    times: dict[str, list[float]] = {}
    for rep in range(args.reps):
        for where in ("folder", "s3"):
            artifacts = None
            if where == "s3":
                boto3.client("s3").create_bucket(Bucket=f"bench-{rep}")
                artifacts = f"s3://bench-{rep}/artifacts"
            store = folder / f"{where}-{rep}"
            for label in ("first run", "cached run"):
                started = time.perf_counter()
                cardloop.run(pipeline, store=store, artifacts=artifacts, threads=1, persist="all")
                times.setdefault(f"{where}, {label}", []).append(time.perf_counter() - started)
    server.stop()
    cards = len(pipeline.cards)
    print(f"{cards} cards, --persist all, best / median of {args.reps} (s):")
    for label, seconds in times.items():
        print(f"  {label:22} {min(seconds):7.3f} {statistics.median(seconds):7.3f}")


if __name__ == "__main__":
    main()
