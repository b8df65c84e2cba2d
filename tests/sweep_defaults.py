"""Sweep microgpt's default training settings: held-out loss over several seeds.

    python tests/sweep_defaults.py                  # the table in README.md: about 12 minutes (714 s here)
    python tests/sweep_defaults.py --seeds 1 2 3 --only before chosen
    python tests/sweep_defaults.py --only chosen --try batch_size=2,num_steps=1500,warmup_steps=100

For each candidate setting and each seed, in a process of its own (2 at a time):
  1. remove 1000 names from names.txt, chosen by a generator seeded apart from the
     split (random.Random('held-out <seed>')): held-out set (b), new for each seed;
  2. split the rest as microgpt does, split_docs(docs, 0.1, random.Random(seed)):
     held-out set (a) is the first 300 validation documents, as the command line's;
  3. train a new default-shape model (16/4/1/16) with the candidate's settings, with
     microgpt.train() itself, the garbage collector paused, and time training alone;
  4. measure the mean document loss (doc_loss) on (a) and on (b).
It prints one row per candidate: (a) and (b) as mean +- standard deviation over the
seeds, their paired difference from the first candidate (the same seed, so the same
documents and starting weights: a sharper comparison than the two means), and the
median seconds of training (2 runs side by side: a little slower than alone). Lower is
better; the first candidate is the defaults before this sweep. The exploration used
seeds 1-4; the table's seeds, 11-16, served no choice.

Settings (the `--try` keys): num_steps, batch_size, learning_rate, warmup_steps,
b1, b2 (Adam's betas), std (the init std), shape (the learning-rate decay after
warmup: linear, as microgpt's lr_at, or cosine), floor (the lowest learning rate, a
fraction of the peak, that the decay ends at) and tied (0: a separate output matrix
instead of wte, as the 200-line original has). Standard library only.
"""
import argparse
import gc
import math
import multiprocessing
import os
import random
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import microgpt                                              # noqa: E402

NAMES = os.path.join(ROOT, 'names.txt')
N_HELD_OUT, N_VAL_DOCS = 1000, 300
BEFORE = dict(num_steps=1000, batch_size=1, learning_rate=0.01, warmup_steps=0,
              b1=0.85, b2=0.99, std=0.08, shape='linear', floor=0.0, tied=1)
CHOSEN = dict(batch_size=4, num_steps=750, warmup_steps=50, std=0.15)   # microgpt's defaults now
DEFAULTS = BEFORE                                            # (what a --try starts from)

# Each row changes one thing from the chosen settings, or is the chosen settings.
# num_steps x batch_size, the documents trained on, fits `python microgpt.py` in about
# 25 s on CPython 3.11 here, with its periodic validation; the last rows show what
# other choices within that time would give.
CANDIDATES = {
    'before': {},                                           # the defaults before this sweep
    'chosen': CHOSEN,
    'std 0.08': {**CHOSEN, 'std': 0.08},
    'no warmup': {**CHOSEN, 'warmup_steps': 0},
    'lr 0.02': {**CHOSEN, 'learning_rate': 0.02},
    'untied': {**CHOSEN, 'tied': 0},                         # what weight tying costs
    'cosine': {**CHOSEN, 'shape': 'cosine'},
    'floor 0.1': {**CHOSEN, 'floor': 0.1},
    'batch 1': {**CHOSEN, 'batch_size': 1, 'num_steps': 2800},
    'batch 2': {**CHOSEN, 'batch_size': 2, 'num_steps': 1500, 'warmup_steps': 100},
}


def parse_try(text):
    """'batch_size=4,learning_rate=0.02' -> {'batch_size': 4, 'learning_rate': 0.02}"""
    out = {}
    for item in text.split(','):
        key, value = item.split('=')
        if key not in DEFAULTS:
            raise SystemExit(f'unknown setting {key!r}: one of {", ".join(DEFAULTS)}')
        out[key] = type(DEFAULTS[key])(value)
    return out


def label(s):
    """The settings that differ from today's defaults, shortly."""
    short = dict(num_steps='steps', batch_size='B', learning_rate='lr', warmup_steps='warm',
                 b1='b1', b2='b2', std='std', shape='', floor='floor', tied='tied')
    return ' '.join(f'{short[k]}{"=" if short[k] else ""}{v:g}' if not isinstance(v, str)
                    else v for k, v in s.items() if v != DEFAULTS[k]) or 'defaults'


# --- One run -----------------------------------------------------------------------

def held_out_split(docs, seed):
    """(train docs, held-out set (a), held-out set (b)) for this seed."""
    rng = random.Random(f'held-out {seed}')                 # apart from the split's seed
    removed = set(rng.sample(range(len(docs)), N_HELD_OUT))
    set_b = [d for i, d in enumerate(docs) if i in removed]
    rest = [d for i, d in enumerate(docs) if i not in removed]
    train_docs, val_docs = microgpt.split_docs(rest, 0.1, random.Random(seed))
    return train_docs, val_docs[:N_VAL_DOCS], set_b


def lr_at(step, s):
    """The learning rate of step for another decay shape (cosine) or a floor."""
    num_steps, peak, warmup = s['num_steps'], s['learning_rate'], s['warmup_steps']
    if step < warmup:
        return peak * (step + 1) / warmup
    done = (step - warmup) / (num_steps - warmup)          # 0 at the peak, towards 1 at the end
    left = 1 - done if s['shape'] == 'linear' else 0.5 * (1 + math.cos(math.pi * done))
    return peak * (s['floor'] + (1 - s['floor']) * left)


def train(model, adam, docs, s):
    """microgpt.train() itself; for another decay shape or a floor, with lr_at above in
    microgpt.lr_at's place (in this worker process only)."""
    part_one_lr_at = microgpt.lr_at
    if s['shape'] != 'linear' or s['floor'] != 0:
        microgpt.lr_at = lambda step, num_steps, learning_rate, warmup_steps: lr_at(step, s)
    try:
        for _ in microgpt.train(model, adam, docs, s['num_steps'], s['learning_rate'],
                                s['warmup_steps'], s['batch_size']):
            pass
    finally:
        microgpt.lr_at = part_one_lr_at


def mean_loss(model, docs):
    return sum(microgpt.doc_loss(model.tokenizer.encode_doc(d), model.state_dict,
                                 model.config).data for d in docs) / len(docs)


class UntiedHead(dict):
    """A state_dict with a separate output matrix, 'lm_head', as the 200-line original
    has. gpt() reads 'wte' twice a call: first for the token's embedding, last to score
    the next token; here every second read gets lm_head instead."""
    reads = 0

    def __getitem__(self, name):
        if name == 'wte':
            self.reads += 1
            name = 'wte' if self.reads % 2 else 'lm_head'
        return dict.__getitem__(self, name)


def run(job):
    """Train one candidate with one seed: (name, seed, loss on (a), loss on (b), seconds)."""
    name, s, seed = job
    with open(NAMES, encoding='utf-8') as f:
        docs = microgpt.load_docs(f.read())
    tokenizer = microgpt.Tokenizer(''.join(docs))           # every character, as microgpt
    train_docs, set_a, set_b = held_out_split(docs, seed)
    config = microgpt.GPTConfig(tokenizer.vocab_size, 16, 4, 1, 16)
    state_dict = microgpt.init_state_dict(config, seed, s['std'])
    if not s['tied']:
        rng = random.Random(f'lm_head {seed}')
        state_dict = UntiedHead(state_dict, lm_head=[[microgpt.Value(rng.gauss(0.0, s['std']))
                                                      for _ in range(16)] for _ in state_dict['wte']])
        state_dict.reads = 0
    adam = microgpt.Adam(microgpt.parameters(state_dict))
    adam.b1, adam.b2 = s['b1'], s['b2']                     # (Adam's class defaults: 0.85, 0.99)
    model = microgpt.Model(config, tokenizer, state_dict)
    if sys.implementation.name == 'cpython':                # as `python microgpt.py` does
        gc.disable()                                        # (PyPy's collector must run)
    try:
        start = time.perf_counter()
        train(model, adam, train_docs, s)
        seconds = time.perf_counter() - start
        return name, seed, mean_loss(model, set_a), mean_loss(model, set_b), seconds
    finally:
        gc.enable()


# --- The table ---------------------------------------------------------------------

def mean_sd(xs):
    return f'{statistics.mean(xs):.4f} +- {statistics.stdev(xs) if len(xs) > 1 else 0:.4f}'


def paired(xs, base):
    d = [x - b for x, b in zip(xs, base)]
    return f'{statistics.mean(d):+.4f} +- {statistics.stdev(d) if len(d) > 1 else 0:.4f}'


def table(candidates, results, seeds):
    """One row per candidate; results[name][seed] = (a, b, seconds)."""
    cols = [[results[n][seed] for seed in seeds] for n in candidates]
    lines = [f'{"candidate":10} {"settings":42} {"(a) val 300":>16} {"vs first":>16} '
             f'{"(b) held-out 1000":>17} {"vs first":>16} {"train s":>7}']
    for name, rows in zip(candidates, cols):
        a, b, sec = ([r[i] for r in rows] for i in range(3))
        a0, b0 = ([r[i] for r in cols[0]] for i in range(2))
        lines.append(f'{name:10} {label(candidates[name]):42} {mean_sd(a):>16} '
                     f'{paired(a, a0):>16} {mean_sd(b):>17} {paired(b, b0):>16} '
                     f'{statistics.median(sec):7.1f}')
    lines.append(f'seeds {" ".join(map(str, seeds))}; mean +- sd over seeds; "vs first": '
                 f'mean +- sd of the per-seed difference from the first row')
    return '\n'.join(lines)


def chosen(only, tries):
    """{name: full settings}: CANDIDATES (or only those named), then each --try."""
    out = {n: {**DEFAULTS, **CANDIDATES[n]} for n in (only or CANDIDATES)}
    out.update({f'try{i}': {**DEFAULTS, **parse_try(t)} for i, t in enumerate(tries, 1)})
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--seeds', type=int, nargs='+', default=[11, 12, 13, 14, 15, 16])
    p.add_argument('--only', nargs='+', metavar='NAME', help='these candidates of CANDIDATES')
    p.add_argument('--try', dest='tries', action='append', default=[], metavar='K=V,...',
                   help='an extra candidate (repeatable), compared with the first')
    p.add_argument('--workers', type=int, default=2, help='training processes at once (2)')
    args = p.parse_args()
    candidates = chosen(args.only, args.tries)
    jobs = [(n, s, seed) for seed in args.seeds for n, s in candidates.items()]
    results, start = {n: {} for n in candidates}, time.perf_counter()
    with multiprocessing.Pool(args.workers, maxtasksperchild=1) as pool:
        for k, (name, seed, a, b, sec) in enumerate(pool.imap_unordered(run, jobs), 1):
            results[name][seed] = (a, b, sec)
            print(f'[{k}/{len(jobs)} {time.perf_counter() - start:5.0f} s] {name} seed {seed}: '
                  f'(a) {a:.4f} (b) {b:.4f} train {sec:.1f} s', file=sys.stderr, flush=True)
    print(table(candidates, results, args.seeds))
    print(f'{len(jobs)} runs in {time.perf_counter() - start:.0f} s, {args.workers} workers')


if __name__ == '__main__':
    main()
