"""``daskpml calibrate``: fit the communication model on the cluster and print its predictions."""

from __future__ import annotations

import json

import click

from .. import perf
from ._main import Session, cli, outputs


@cli.command()
@click.option("--repeats", type=click.IntRange(min=1), default=3, show_default=True,
              help="Timings per size (medians).")
@click.option("--max-bytes", type=click.IntRange(min=10_000), default=100_000_000, show_default=True,
              help="Largest vector timed (sizes go up from 1 KB by factors of 10).")
@click.option("--predict", "predict_for", type=click.IntRange(min=1), multiple=True,
              help="Worker counts to predict for (repeatable; default 2, 4, 8, 16, 64).")
@click.option("--measure", is_flag=True, help="Also time each pattern on this cluster and print measured / predicted.")
@click.option("--out", type=click.Path(dir_okay=False, writable=True), default=None,
              help="Write the fitted constants (and any measurements) as JSON.")
@click.pass_obj
def calibrate(session: Session, repeats: int, max_bytes: int, predict_for: tuple, measure: bool,
              out: str | None) -> None:
    """Fit the communication model (latency, bandwidths, round trip) from transfers between
    the cluster's workers, and print the predicted time per round of all-reduce,
    parameter server and gossip. Needs 2 workers or more."""
    files = outputs({}, out=out)
    client = session.client()
    sizes = [s for s in perf.DEFAULT_SIZES if s <= max_bytes]          # at least 1 KB and 10 KB
    backend = session.backend or "numpy"                               # --gpu: time CuPy vectors
    model = perf.calibrate(client, sizes=sizes, repeats=repeats, backend=backend)
    workers = model.workers
    gbs = lambda v: f"{1 / v / 1e9:.2f} GB/s" if v else "not limiting"      # noqa: E731
    click.echo(f"workers {workers}, cores shared: {model.cores or 'no (one or more each)'}")
    click.echo(f"latency a {model.latency * 1e3:.2f} ms per level, {model.per_task * 1e3:.2f} ms per task; "
               f"link {gbs(model.inv_bandwidth)}, all links together {gbs(model.shared_inv_bandwidth)}; "
               f"add {gbs(model.reduce_per_byte)}; client round trip {model.overhead * 1e3:.1f} ms "
               f"(fit error {model.fit['max_rel_error']:.0%})")
    counts = sorted(set(predict_for or (2, 4, 8, 16, 64)))
    click.echo("\npredicted ms per round (pattern, bytes: one column per worker count)")
    click.echo(f"{'pattern':<17} {'bytes':>12}  " + "  ".join(f"{f'P={p}':>9}" for p in counts))
    for pattern in perf.PATTERNS:
        for size in sizes:
            cells = "  ".join(f"{model.comm_time(size, p, pattern) * 1e3:9.2f}" for p in counts)
            click.echo(f"{pattern:<17} {size:>12,d}  {cells}")
    record = {"model": model.to_dict()}
    if measure:
        click.echo(f"\nmeasured on {workers} workers: ms per round (measured / predicted)")
        record["measured"] = {}
        for pattern in perf.PATTERNS:
            rows = []
            for size in sizes:
                t = perf.measure(client, pattern, size, repeats=repeats, backend=backend)
                p = model.comm_time(size, workers, pattern)
                rows.append({"bytes": size, "measured_s": t, "predicted_s": p})
                click.echo(f"{pattern:<17} {size:>12,d}  {t * 1e3:9.2f} / {p * 1e3:9.2f}  ({t / p:.2f})")
            record["measured"][pattern] = rows
    if out:
        with files, open(files["--out"], "w") as f:
            json.dump(record, f, indent=1)
        click.echo(f"\nwrote {out}")
