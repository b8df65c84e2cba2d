"""Three questions every learner asks, answered by experiments on microgpt.

    python tests/experiments.py heads          # 1. why more attention heads help, then hurt
    python tests/experiments.py warmup         # 2. why training needs a learning-rate warmup
    python tests/experiments.py weight_decay   # 3. how weight decay stops overfitting

Each trains microgpt (Part I's own functions, nothing else) for a few settings over
3 seeds, in separate processes on every core, and prints a table (mean and spread
over the seeds) and the loss curves on one chart drawn with plain characters. Not a
unit test (its name does not start with test_): it measures, it does not assert.
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

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

import microgpt   # noqa: E402

NAMES = os.path.join(os.path.dirname(HERE), 'names.txt')
SEEDS = [1, 2, 3]


def run(job):
    """Train one setting with one seed; return its history: the training loss of
    every step, and (step, training-set loss, validation loss) every eval_every steps."""
    s, seed = job
    if s.get('data') == 'copy':
        docs = copy_docs()
    else:
        with open(NAMES, encoding='utf-8') as f:
            docs = microgpt.load_docs(f.read())
    train_docs, val_docs = microgpt.split_docs(docs, 0.1, random.Random(seed))
    train_docs = train_docs[:s.get('train_docs', len(train_docs))]   # a small set, for overfitting
    tokenizer = microgpt.Tokenizer(''.join(docs))
    config = microgpt.GPTConfig(tokenizer.vocab_size, s.get('n_embd', 16), s.get('n_head', 4), 1, 16)
    state_dict = microgpt.init_state_dict(config, seed)
    adam = microgpt.Adam(microgpt.parameters(state_dict), s.get('weight_decay', 0.0))
    model = microgpt.Model(config, tokenizer, state_dict, adam)
    history = {'train': [], 'evals': []}

    def mean_loss(docs):
        return sum(microgpt.doc_loss(tokenizer.encode_doc(d), state_dict, config).data
                   for d in docs) / len(docs)
    if sys.implementation.name == 'cpython':     # as the command line does (see training_mode;
        gc.disable()                              # PyPy's collector must run)
    started = time.perf_counter()
    B, num_steps = s.get('batch_size', 1), s['num_steps']
    for step in range(num_steps):                 # the loop of microgpt.train(), watched
        batch = [train_docs[(step * B + b) % len(train_docs)] for b in range(B)]
        lr = microgpt.lr_at(step, num_steps, s['learning_rate'], s.get('warmup_steps', 0))
        loss = microgpt.train_step(model, batch, lr).data
        history['train'].append(loss if math.isfinite(loss) else math.inf)
        if (step + 1) % s['eval_every'] == 0 or step + 1 == num_steps:
            history['evals'].append((step + 1, mean_loss(train_docs[:300]), mean_loss(val_docs[:300])))
    history['seconds'] = time.perf_counter() - started
    gc.enable()
    return history


def copy_docs(n=4000, length=5, letters='abcdefgh'):
    """Documents that need attention: 5 random letters, a dot, the same 5 letters again
    (abhda.abhda). The first half cannot be predicted (ln 8 = 2.08 a letter); the second
    can, exactly, by a head that reads the position 6 back: a document's mean loss is
    then 5 * 2.08 / 12 = 0.87, and 10 * 2.08 / 12 = 1.73 with no copying at all."""
    rng = random.Random('copy')
    return [w + '.' + w for w in (''.join(rng.choice(letters) for _ in range(length))
                                  for _ in range(n))]


EXPERIMENTS = {
    # 1. Heads: n_embd 16 split into n_head heads of head_dim = 16 / n_head numbers, on
    # names and on a task that needs attention.
    'heads': dict(
        question='Why does adding attention heads help, and then, past some point, hurt? (names)',
        base=dict(num_steps=600, batch_size=4, learning_rate=0.01, warmup_steps=50, eval_every=100),
        settings=[(f'n_head {h} (head_dim {16 // h})', dict(n_head=h)) for h in (1, 2, 4, 8, 16)],
        then='copy'),
    'copy': dict(
        question='The same heads on a task that needs attention: copy 5 letters (abhda.abhda)',
        base=dict(data='copy', num_steps=500, batch_size=4, learning_rate=0.01, warmup_steps=50,
                  eval_every=100),
        settings=[(f'n_head {h} (head_dim {16 // h})', dict(n_head=h)) for h in (1, 2, 4, 8, 16)],
        threshold=1.0),
    # 2. Warmup: the same learning rates with and without a warmup.
    'warmup': dict(
        question='Why does training need a learning-rate warmup?',
        base=dict(num_steps=500, batch_size=4, eval_every=50),
        settings=[(f'lr {lr:g}, warmup {w}', dict(learning_rate=lr, warmup_steps=w))
                  for lr in (0.01, 0.1, 0.3, 1.0) for w in (0, 100)],
        early=100),
    # 3. Weight decay: a small training set, seen many times over.
    'weight_decay': dict(
        question='How does weight decay stop overfitting? (300 training names, 20 passes)',
        base=dict(train_docs=300, num_steps=1500, batch_size=4, learning_rate=0.01, warmup_steps=50,
                  eval_every=150),
        settings=[(f'weight_decay {wd:g}', dict(weight_decay=wd)) for wd in (0, 0.1, 1, 3)],
        chart='evals'),
}


def chart(curves, width=60, height=12, title=''):
    """Loss curves on one chart of characters: curves is [(mark, [(step, loss), ...])]."""
    points = [(step, loss) for _, curve in curves for step, loss in curve if math.isfinite(loss)]
    last = max(step for step, _ in points)
    lo, hi = min(loss for _, loss in points), max(loss for _, loss in points)
    grid = [[' '] * width for _ in range(height)]
    for mark, curve in curves:
        for step, loss in curve:
            if math.isfinite(loss):
                row = round((hi - loss) / (hi - lo or 1.0) * (height - 1))
                grid[row][min(width - 1, step * width // (last + 1))] = mark
    lines = [title] + [f'{hi - r * (hi - lo) / (height - 1):6.2f} |' + ''.join(row)
                       for r, row in enumerate(grid)]
    return '\n'.join(lines + ['       +' + '-' * width, '        0' + f'{last} steps'.rjust(width - 1)])


def smoothed(losses, width=60):
    """The training loss as a running mean over a 30th of the steps, at `width` points."""
    window = max(10, len(losses) // 30)
    ends = sorted({max(1, k * len(losses) // width) for k in range(1, width + 1)})
    return [(end, statistics.mean(losses[max(0, end - window):end])) for end in ends]


def first_below(losses, threshold):
    """The first step at which the running mean of the training loss (over 20 steps)
    falls below threshold, or None."""
    for end in range(20, len(losses) + 1):
        if statistics.mean(losses[end - 20:end]) < threshold:
            return end
    return None


def spread(xs):
    return (max(xs) - min(xs)) / 2 if all(map(math.isfinite, xs)) else math.inf


def report(name, results, seconds):
    e = EXPERIMENTS[name]
    marks = 'abcdefgh'
    threshold = e.get('threshold')
    print(f'\n{e["question"]}\n')
    steps_header = f'  steps to < {threshold:g}' if threshold else ''
    early = e.get('early')
    if early:
        steps_header = f'  highest, steps 1-{early}'
    print(f'{"setting":26} {"val loss":>16} {"train-set loss":>16} {"gap":>7}{steps_header} {"s/run":>6}')
    curves = []
    for (label, s), mark in zip(e['settings'], marks):
        runs = results[label]
        val = [r['evals'][-1][2] for r in runs]
        train = [r['evals'][-1][1] for r in runs]
        steps = ''
        if threshold:
            reached = [first_below(r['train'], threshold) for r in runs]
            steps = (f'{statistics.mean(reached):8.0f} ± {spread(reached):3.0f}' if None not in reached
                     else f'{"not all":>14}')
        if early:
            peaks = [max(loss for _, loss in smoothed(r['train'][:early], early // 5)) for r in runs]
            steps = f'{statistics.mean(peaks):11.2f} ± {spread(peaks):5.2f}'
        print(f'{mark}) {label:23} {statistics.mean(val):7.3f} ± {spread(val):5.3f}  '
              f'{statistics.mean(train):7.3f} ± {spread(train):5.3f} '
              f'{statistics.mean(val) - statistics.mean(train):7.3f}{steps} '
              f'{statistics.mean(r["seconds"] for r in runs):6.1f}')
        if e.get('chart') == 'evals':
            curves.append((mark, average_curve([[(st, v) for st, _, v in r['evals']] for r in runs])))
            curves.append((mark.upper(), average_curve([[(st, t) for st, t, _ in r['evals']]
                                                         for r in runs])))
        else:
            curves.append((mark, average_curve([smoothed(r['train']) for r in runs])))
    print(f'(mean ± half the range over seeds {", ".join(map(str, SEEDS))}; losses on 300 documents'
          + ('; steps: the first at which the mean training loss of 20 steps is below that'
             if threshold else '')
          + (f'; highest: the running mean of the training loss over its first {early} steps'
             if early else '') + ')')
    title = ('\nvalidation loss (lower case) and training-set loss (upper case), mean of the seeds'
             if e.get('chart') == 'evals' else
             '\ntraining loss (running mean), one letter per setting, mean of the seeds')
    print(chart(curves, title=title + ' (a later letter hides an earlier one)'))
    print(f'\n{name}: {len(SEEDS) * len(e["settings"])} runs in {seconds:.0f} s')


def average_curve(curves):
    return [(points[0][0], statistics.mean(loss for _, loss in points)) for points in zip(*curves)]


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('experiment', choices=['heads', 'warmup', 'weight_decay', 'all'])
    p.add_argument('--processes', type=int, default=os.cpu_count())
    p.add_argument('--seeds', type=int, nargs='+', default=SEEDS, help='(default 1 2 3)')
    args = p.parse_args()
    SEEDS[:] = args.seeds
    names = ['heads', 'warmup', 'weight_decay'] if args.experiment == 'all' else [args.experiment]
    names = [n for name in names for n in (name, EXPERIMENTS[name].get('then')) if n]
    for name in names:
        e = EXPERIMENTS[name]
        jobs = [(dict(e['base'], **s), seed) for _, s in e['settings'] for seed in SEEDS]
        started = time.perf_counter()
        with multiprocessing.Pool(args.processes) as pool:
            histories = pool.map(run, jobs)
        results = {label: histories[i * len(SEEDS):(i + 1) * len(SEEDS)]
                   for i, (label, _) in enumerate(e['settings'])}
        report(name, results, time.perf_counter() - started)


if __name__ == '__main__':
    main()
