"""Fault injection for ``pvae train``: kill a run again and again at random moments, resume it
each time, and check that nothing was lost or mixed (a script, not a test module: run
``python tests/faults.py``; the suite's tests/cli/test_resume_cli.py kills one run once).

Each round starts ``pvae train`` (fresh, then ``--resume``), waits a random time and sends
SIGKILL (or, for a share of the rounds, SIGINT, Ctrl-C); the run that was never interrupted
is the oracle. After every fault it checks that the checkpoint on disk is whole (it loads)
and kept every epoch but the one running (at most one lost), and after the last round that
the final weights and history equal the oracle's bit for bit and that no temporary file is
left. Every Ctrl-C must end in one line and status 130, or, when it arrives after the run's
work was done (its files written, the interpreter exiting), be ignored (status 0); anything
else is listed. It prints the counts and writes them to ``--table`` (CSV).
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

import pvae
from pvae.checkpoint import CheckpointError
from pvae.tables import write_table

TRAIN = ["--model", "normal-shared", "--hidden", "32", "--latent-dim", "3", "--batch-size",
         "32", "--seed", "5", "--eval-samples", "0", "--no-progress"]  # fmt: skip


def command(*argv: str) -> list[str]:
    """The ``pvae`` console script of this Python's environment, as a user starts it."""
    return [str(Path(sys.executable).with_name("pvae")), *argv]


def epochs_done(path: Path) -> int:
    try:
        state = pvae.load(path).fit_state
    except (FileNotFoundError, CheckpointError):
        return 0
    return 0 if state is None else state.epochs_done


def state_of(path: Path) -> tuple[list[torch.Tensor], list]:
    loaded = pvae.load(path)
    tensors = [*loaded.model.state_dict().values(), *loaded.guide.state_dict().values()]
    return tensors, list(loaded.history)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--faults", type=int, default=30, help="faults to inject (default 30)")
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--sigint-share", type=float, default=0.3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--folder", type=Path, default=Path("runs/faults"))
    parser.add_argument("--table", type=Path, default=Path("runs/faults/faults.csv"))
    args = parser.parse_args()
    rng = random.Random(args.seed)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    args.folder.mkdir(parents=True, exist_ok=True)
    whole, broken = args.folder / "whole.pt", args.folder / "broken.pt"
    epochs = ["--epochs", str(args.epochs)]
    start = time.perf_counter()
    subprocess.run(command("train", *TRAIN, *epochs, "--out", str(whole), "--force"),
                   check=True, env=env, stdout=subprocess.DEVNULL)  # fmt: skip
    seconds = time.perf_counter() - start  # one whole run, imports included
    counts = {"SIGKILL": 0, "SIGINT": 0, "SIGINT runs that exited 130": 0,
              "SIGINT after the run's work was done (exit 0)": 0,
              "checkpoint whole after the fault": 0, "checkpoint gone backwards": 0,
              "temporaries seen after a fault": 0}  # fmt: skip
    fresh, faults, odd, messages = True, 0, [], set()
    while True:
        argv = (
            ["train", *TRAIN, *epochs, "--out", str(broken), "--force"]
            if fresh
            else ["train", "--resume", str(broken), "--no-progress"]
        )
        errors = args.folder / "stderr.txt"
        with errors.open("w") as stderr:
            process = subprocess.Popen(command(*argv), env=env, stdout=subprocess.DEVNULL,
                                       stderr=stderr)  # fmt: skip
        if faults == args.faults:  # the last round runs to its end
            if process.wait() != 0:
                raise SystemExit(f"the last, uninterrupted round failed: {process.returncode}")
            break
        time.sleep(rng.uniform(0.2, seconds))
        before = epochs_done(broken)
        if process.poll() is not None:  # it ended before the fault: the next one starts over
            fresh = True
            continue
        kind = signal.SIGINT if rng.random() < args.sigint_share else signal.SIGKILL
        process.send_signal(kind)
        code = process.wait()
        faults += 1
        counts[kind.name] += 1
        counts["SIGINT runs that exited 130"] += kind == signal.SIGINT and code == 130
        counts["SIGINT after the run's work was done (exit 0)"] += (
            kind == signal.SIGINT and code == 0
        )
        if kind == signal.SIGINT and code != 0:
            lines = errors.read_text().strip().splitlines()
            if code != 130 or len(lines) != 1:
                odd.append(
                    f"status {code}: {lines[-1] if lines else '(nothing)'} (epochs on disk "
                    f"{before} before the signal, {epochs_done(broken)} after; "
                    f"{'--resume' if not fresh else 'fresh'})"
                )
            else:
                kept = "keeps epoch" in lines[0]
                messages.add("... keeps epoch N of M, the last whole one" if kept else lines[0])
        after = epochs_done(broken)
        try:
            pvae.load(broken)
            whole_file = True
        except FileNotFoundError:  # stopped before its first epoch ended
            whole_file = after == 0
        except CheckpointError:
            whole_file = False
        counts["checkpoint whole after the fault"] += whole_file
        counts["checkpoint gone backwards"] += after < before
        counts["temporaries seen after a fault"] += len(list(args.folder.glob(".*.part")))
        fresh = not broken.exists()
    ours, theirs = state_of(broken), state_of(whole)
    identical = all(torch.equal(a, b) for a, b in zip(ours[0], theirs[0], strict=True))
    rows = [{"what": "faults injected", "count": faults}]
    rows += [{"what": key, "count": int(value)} for key, value in counts.items()]
    rows += [
        {"what": "epochs trained in the end", "count": epochs_done(broken)},
        {"what": "final weights equal the uninterrupted run's, bit for bit", "count": identical},
        {"what": "final history equals the uninterrupted run's", "count": ours[1] == theirs[1]},
        {"what": "temporaries left at the end", "count": len(list(args.folder.glob(".*.part")))},
        {"what": "seconds", "count": round(time.perf_counter() - start)},
    ]
    width = max(len(row["what"]) for row in rows)
    for row in rows:
        print(f"{row['what']:<{width}}  {row['count']}")
    print("what Ctrl-C printed (one line each):", *sorted(messages), sep="\n  ")
    if odd:
        print("Ctrl-C that did not end in one line and status 130:", *odd, sep="\n  ")
    write_table(args.table, rows)
    print(f"wrote {args.table}")
    return 0 if identical and ours[1] == theirs[1] else 1


if __name__ == "__main__":
    sys.exit(main())
