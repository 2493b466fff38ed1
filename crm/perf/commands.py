"""`flask --app wsgi crm gen-data --scale S [--seed N] [--append]`: load synthetic benchmark data."""
from __future__ import annotations

import click

from crm.commands import crm_cli, fail
from crm.extensions import db


@crm_cli.command("gen-data")
@click.option("--scale", type=float, default=0.01, show_default=True,
              help="1 = 5 banks, 40 branches, 100k firms, 1M visits, 10k events, 300k registrations, 50k credits.")
@click.option("--seed", type=int, default=1, show_default=True, help="Same seed, same data.")
@click.option("--append", is_flag=True,
              help="Add to a database that already has data (codes and user names get an S<seed>- prefix).")
@click.option("--no-analyze", is_flag=True, help="Skip ANALYZE after the load.")
@click.option("--quiet", is_flag=True)
def gen_data(scale, seed, append, no_analyze, quiet):
    """Generate deterministic, realistically skewed data for performance work (never in production).

    Refuses a database that already holds organisations, users or firms unless --append is given.
    Every generated user's password is printed at the end.
    """
    from crm.auth import passwords
    from crm.perf import generate as gen

    log = (lambda s: None) if quiet else click.echo
    try:
        plan = gen.Plan.for_scale(scale)
    except ValueError as exc:
        fail(str(exc))
    log(f"generating scale {scale} (seed {seed}): {plan.firms} firms, {plan.visits} visits, {plan.events} events, "
        f"{plan.registrations} registrations, {plan.credits} credit applications")
    db.session.remove()
    try:
        res = gen.generate(db.engine, scale, seed, append=append, analyze=not no_analyze, log=log,
                           password_hash=passwords.hash_password(gen.BENCH_PASSWORD))
    except gen.DatabaseNotEmpty as exc:
        fail(f"数据库不为空；如需追加生成数据请加 --append / {exc}; use --append to add generated data anyway")
    from crm.dashboard.snapshots import bump_write_version

    bump_write_version(db.engine)  # the loader wrote through raw DBAPI connections: running workers recompute
    total_rows = sum(res.counts.values())
    for key in ("indexes", "sequences", "analyze"):
        if key in res.seconds:
            log(f"  {key:<14} {res.seconds[key]:6.2f} s")
    click.echo(f"loaded {total_rows} rows in {res.total_seconds:.1f} s "
               f"({', '.join(f'{t}={n}' for t, n in sorted(res.counts.items()))})")
    click.echo(f"firm code checksum {res.firm_code_checksum[:16]}")
    click.echo(f"logins (password for all: {gen.BENCH_PASSWORD}): "
               + ", ".join(f"{k}={v}" for k, v in res.logins.items() if k != "password"))
