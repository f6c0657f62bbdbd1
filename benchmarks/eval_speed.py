"""Full-ranking evaluation speed over every test user, in process: users/s of each pass.

    python benchmarks/eval_speed.py configs/gru4rec_games.yaml [--set eval.chunk_size=512]
        [--passes 3]

Builds the run as `jaxrec train` does (initial parameters: speed does not depend on them),
then evaluates the test stage `--passes` times with `trainer.evaluate_params` (the first
pass compiles; later passes are the steady state). Prints users/s per pass and NDCG@10 (or
@20), so that two code versions can be checked to give the same metrics as well as timed.
"""

from __future__ import annotations

import argparse

from jaxrec import config, trainer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config")
    parser.add_argument("--set", action="append", default=[], help="KEY=VALUE override")
    parser.add_argument("--passes", type=int, default=3)
    args = parser.parse_args()
    run = trainer.prepare(config.load_config(args.config, args.set))
    users = run.split.eval_users("test")
    for i in range(args.passes):
        r = trainer.evaluate_params(run, run.state.params, "test", ("full",), users)[0]
        ndcg = next(f"{k} {r[k]:.10f}" for k in ("ndcg@10", "ndcg@20", "ndcg@5") if k in r)
        print(f"pass {i}: {len(users)} users, {r['users_per_second']:,.0f} users/s, {ndcg}")


if __name__ == "__main__":
    main()
