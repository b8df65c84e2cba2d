"""Questions every learner asks, answered by experiments on microgpt.

    python tests/experiments.py heads          # 1. more heads: better, then worse
    python tests/experiments.py warmup         # 2. why warmup; where it would decide
    python tests/experiments.py weight_decay   # 3. how weight decay stops overfitting
    python tests/experiments.py ideas          # 4. attention, residuals, rmsnorm, taken away
    python tests/experiments.py scaling        #    and scale: bigger models, loss and minutes
    python tests/experiments.py all            # all five (about an hour on PyPy, 2 cores)
    python tests/experiments.py check          # the variant model, all ideas kept, is gpt()

Each trains microgpt's model, built from Part I's own functions (its attention, linear,
rmsnorm, squared_relu, cross_entropy, Adam, lr_at; variant_gpt() below takes an idea
away without editing Part I), for a few settings over 3 seeds, in separate processes on
every core, and prints a table (mean and spread over the seeds) and the loss curves on one
chart drawn with plain characters, with two controls to read the table against: the loss
of predicting each token by its frequency alone, with no context (the "unigram" loss),
and, on names, a model trained on names whose letters are shuffled within each name (the
same letters, no order). Not a unit test (its name does not start with test_): it
measures, it does not assert.
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


# --- Data: documents as text, so that microgpt's tokenizer and attention maps read them --

def names(seed, shuffled=False):
    """(train, val) names, split as the command line splits them with this seed; shuffled:
    each training name's letters in a random order (the letters kept, the order lost); the
    validation names stay real, so the loss says what a model without order does on names."""
    with open(NAMES, encoding='utf-8') as f:
        docs = microgpt.load_docs(f.read())
    train, val = microgpt.split_docs(docs, 0.1, random.Random(seed))
    if shuffled:
        rng = random.Random(f'shuffled {seed}')
        train = [''.join(rng.sample(d, len(d))) for d in train]
    return train, val


def copy_docs(n=4000, length=5, letters='abcdefgh'):
    """Documents that need attention: 5 random letters, a dot, the same 5 letters again
    (abhda.abhda). The first half cannot be predicted (ln 8 = 2.08 a letter); the second
    can, exactly, by a head that reads the position 6 back: a document's mean loss is
    then 5 * 2.08 / 12 = 0.87, and 10 * 2.08 / 12 = 1.73 with no copying at all."""
    rng = random.Random('copy')
    return [w + '.' + w for w in (''.join(rng.choice(letters) for _ in range(length))
                                  for _ in range(n))]


def pair_docs(n=4000, ordered=True):
    """Documents that need TWO lookups at once: 8 random letters of abcd, '=', then one
    letter naming each pair of them in turn (abdcaabd=BOAD: ab is B, dc is O, ...). With
    ordered pairs (16 names, A-P) ab and ba differ, so the letter at a position depends on
    two earlier letters, 8 and 7 back for the first pair, 7 and 6 for the next, and so on:
    each alone is worth ln 4 nats, both ln 16 = 2.77. With unordered pairs (10 names, A-J:
    a control) ab and ba are one name, and an average of the two letters is enough."""
    names = {}
    for a in 'abcd':
        for b in 'abcd':
            key = a + b if ordered else ''.join(sorted(a + b))
            names.setdefault(key, 'ABCDEFGHIJKLMNOP'[len(names)])
    rng = random.Random('pairs' if ordered else 'unordered pairs')
    docs = []
    for _ in range(n):
        s = ''.join(rng.choice('abcd') for _ in range(8))
        pairs = [s[i:i + 2] if ordered else ''.join(sorted(s[i:i + 2])) for i in range(0, 8, 2)]
        docs.append(s + '=' + ''.join(names[p] for p in pairs))
    return docs


def data(s, seed):
    """(train, val, lookups): lookups, the positions (of <BOS> + doc) whose next token needs
    the task's lookups (their loss is reported apart), or None."""
    if s['data'] in ('names', 'shuffled'):
        train, val = names(seed, shuffled=s['data'] == 'shuffled')
        return train[:s.get('train_docs', len(train))], val, None
    docs = copy_docs() if s['data'] == 'copy' else pair_docs(ordered=s['data'] == 'pairs')
    train, val = microgpt.split_docs(docs, 0.1, random.Random(seed))
    lookups = set(range(6, 11)) if s['data'] == 'copy' else set(range(9, 13))
    return train, val, lookups


# --- The model, with an idea taken away --------------------------------------------------

def variant_gpt(token_id, pos_id, cache, sd, config, attention='full', residual=True,
                norm=True, weights_seen=None):
    """gpt() of Part I, from its own functions, with a switch per idea: attention 'self'
    (each position reads only its own value: sees only itself), no residual adds
    (x = f(x) instead of x = x + f(x)), no rmsnorm (the identity instead)."""
    rms = microgpt.rmsnorm if norm else (lambda x: x)
    x = [t + p for t, p in zip(sd['wte'][token_id], sd['wpe'][pos_id])]
    for i, (keys, values) in enumerate(cache):
        if attention == 'full':
            a = microgpt.attention(rms(x), keys, values, sd, i, config, weights_seen)
        else:
            a = microgpt.linear(microgpt.linear(rms(x), sd[f'layer{i}.attn_wv']),
                                sd[f'layer{i}.attn_wo'])
        x = [xj + aj for xj, aj in zip(x, a)] if residual else a
        h = microgpt.linear(rms(x), sd[f'layer{i}.mlp_fc1'])
        h = microgpt.linear([microgpt.squared_relu(hj) for hj in h], sd[f'layer{i}.mlp_fc2'])
        x = [xj + hj for xj, hj in zip(x, h)] if residual else h
    return microgpt.linear(rms(x), sd['wte'])


def losses_of(tokens, sd, config, variant):
    """The loss at each position of a document (Values), as doc_loss() adds them up."""
    cache = [([], []) for _ in range(config.n_layer)]
    return [microgpt.cross_entropy(variant_gpt(tokens[pos], pos, cache, sd, config, **variant),
                                   tokens[pos + 1])
            for pos in range(min(len(tokens) - 1, config.block_size))]


def evaluate(docs, tokenizer, sd, config, variant, lookups):
    """The mean document loss on docs (as the command line's validation loss), and the
    mean loss at the lookup positions alone."""
    doc_means, looked = [], []
    for doc in docs:
        losses = [v.data for v in losses_of(tokenizer.encode_doc(doc), sd, config, variant)]
        doc_means.append(sum(losses) / len(losses))
        looked += [loss for pos, loss in enumerate(losses) if lookups and pos in lookups]
    return statistics.mean(doc_means), (statistics.mean(looked) if looked else None)


VARIANT_KEYS = ('attention', 'residual', 'norm')


def run(job):
    """Train one setting with one seed; return its history: the training loss of every
    step, (step, training-set loss, validation loss, lookup loss) every eval_every steps,
    the seconds of training, and, if asked, the attention maps of one validation document."""
    s, seed = job
    train, val, lookups = data(s, seed)
    tokenizer = microgpt.Tokenizer(''.join(train + val))
    config = microgpt.GPTConfig(tokenizer.vocab_size, s.get('n_embd', 16), s.get('n_head', 4),
                                s.get('n_layer', 1), 16)
    sd = microgpt.init_state_dict(config, seed)
    adam = microgpt.Adam(microgpt.parameters(sd), s.get('weight_decay', 0.0))
    variant = {k: s[k] for k in VARIANT_KEYS if k in s}
    history = {'train': [], 'evals': [], 'seconds': 0.0}
    B, num_steps = s.get('batch_size', 4), s['num_steps']
    for step in range(num_steps):                 # microgpt.train()'s loop, watched
        started = time.perf_counter()
        if sys.implementation.name == 'cpython':   # as the command line does (see
            gc.disable()                            # training_mode; PyPy's must run)
        batch = [tokenizer.encode_doc(train[(step * B + b) % len(train)]) for b in range(B)]
        loss = None
        try:
            loss = sum(sum(ls) / len(ls) for ls in (losses_of(t, sd, config, variant)
                                                    for t in batch)) / B
            loss.backward()
            adam.step(microgpt.lr_at(step, num_steps, s['learning_rate'], s.get('warmup_steps', 0)))
            value = loss.data
        except (OverflowError, ZeroDivisionError, ValueError):   # diverged past floats
            value = math.inf
        del loss
        gc.enable()
        history['seconds'] += time.perf_counter() - started
        history['train'].append(value if math.isfinite(value) else math.inf)
        if not math.isfinite(value):
            history['evals'].append((step + 1, math.inf, math.inf, math.inf))
            break
        if step + 1 == num_steps or s.get('eval_every') and (step + 1) % s['eval_every'] == 0:
            val_loss, look = evaluate(val[:300], tokenizer, sd, config, variant, lookups)
            train_loss, _ = evaluate(train[:300], tokenizer, sd, config, variant, None)
            history['evals'].append((step + 1, train_loss, val_loss, look))
    if s.get('show_attention') and seed == SEEDS[0] and not variant:
        model = microgpt.Model(config, tokenizer, sd, adam)
        history['attention'] = microgpt.attention_maps(model, val[0])
    return history


def unigram_loss(s, seed=SEEDS[0]):
    """The loss of predicting every token by its frequency in the training documents (add-
    one smoothed), with no context at all, on the validation documents: the first control."""
    train, val, _ = data(s, seed)
    tokenizer = microgpt.Tokenizer(''.join(train + val))
    counts = [1] * tokenizer.vocab_size
    for doc in train:
        for token in tokenizer.encode_doc(doc)[1:]:
            counts[token] += 1
    total = sum(counts)
    return statistics.mean(statistics.mean(-math.log(counts[t] / total)
                                           for t in tokenizer.encode_doc(doc)[1:])
                           for doc in val[:300])


# --- The experiments -----------------------------------------------------------------

NAMES_BASE = dict(data='names', batch_size=4, learning_rate=0.01, warmup_steps=50)
HEADS = [(f'n_head {h} (head_dim {16 // h})', dict(n_head=h)) for h in (1, 2, 4, 8, 16)]
IDEAS = [('the full model', {}), ('attention: each sees itself', dict(attention='self')),
         ('no residual adds', dict(residual=False)), ('no rmsnorm', dict(norm=False))]
SHUFFLED = ('control: letters shuffled', dict(data='shuffled'))

EXPERIMENTS = {
    # 1. Heads: n_embd 16 split into n_head heads of head_dim = 16 / n_head numbers.
    'heads': dict(
        question='Why does adding attention heads help, and then, past some point, hurt? '
                 '(names)',
        base=dict(NAMES_BASE, num_steps=600), settings=HEADS + [SHUFFLED],
        then='copy'),
    'copy': dict(
        question='The same heads on a task that needs one lookup a letter: copy 5 letters '
                 '(abhda.abhda)',
        base=dict(data='copy', num_steps=500, batch_size=4, learning_rate=0.01, warmup_steps=50),
        settings=HEADS, threshold=1.0, then='pairs'),
    'pairs': dict(
        question='The same heads on a task that needs two lookups a letter: name each ordered '
                 'pair (abdcaabd=BOAD)',
        base=dict(data='pairs', num_steps=500, batch_size=4, learning_rate=0.01, warmup_steps=50,
                  show_attention=True),
        settings=HEADS, then='unordered'),
    'unordered': dict(
        question='Control: the same with unordered pairs (ab and ba one name: an average is '
                 'enough)',
        base=dict(data='upairs', num_steps=500, batch_size=4, learning_rate=0.01,
                  warmup_steps=50),
        settings=HEADS),
    # 2. Warmup: the same learning rates with and without a warmup; then deeper.
    'warmup': dict(
        question='Why does training need a learning-rate warmup?',
        base=dict(data='names', num_steps=500, batch_size=4),
        settings=[(f'lr {lr:g}, warmup {w}', dict(learning_rate=lr, warmup_steps=w))
                  for lr in (0.01, 0.1, 0.3, 1.0) for w in (0, 100)] + [
                  (SHUFFLED[0], dict(data='shuffled', learning_rate=0.01, warmup_steps=100))],
        early=100, then='warmup_deep'),
    'warmup_deep': dict(
        question='Where warmup decides: 4 layers, at the edge of the learning rate (no norm: '
                 'without rmsnorm)',
        base=dict(data='names', n_layer=4, num_steps=500, batch_size=4),
        settings=[('lr 0.3, warmup 0', dict(learning_rate=0.3, warmup_steps=0)),
                  ('lr 0.3, warmup 100', dict(learning_rate=0.3, warmup_steps=100))] + [
                  (f'no norm, lr .03, warmup {w}', dict(learning_rate=0.03, warmup_steps=w,
                                                           norm=False)) for w in (0, 25, 100)],
        early=100, per_seed=True),
    # 3. Weight decay: a small training set, seen many times over.
    'weight_decay': dict(
        question='How does weight decay stop overfitting? (300 training names, 20 passes)',
        base=dict(NAMES_BASE, train_docs=300, num_steps=1500, eval_every=150),
        settings=[(f'weight_decay {wd:g}', dict(weight_decay=wd)) for wd in (0, 0.1, 1, 3)]
                 + [(SHUFFLED[0], dict(data='shuffled', weight_decay=1))],
        chart='evals'),
    # 4. The essay's ideas, taken away one at a time, at 4 layers; then scale.
    'ideas': dict(
        question="The transformer's ideas taken away one at a time: names, 4 layers",
        base=dict(NAMES_BASE, n_layer=4, num_steps=750),
        settings=IDEAS + [SHUFFLED], then='ideas_copy'),
    'ideas_copy': dict(
        question='The same on the copy task (abhda.abhda), which needs attention',
        base=dict(data='copy', n_layer=4, num_steps=500, batch_size=4, learning_rate=0.01,
                  warmup_steps=50),
        settings=IDEAS, early=100),
    'scaling': dict(
        question='Scale: bigger models, the same 1500 steps of 4 names',
        base=dict(NAMES_BASE, num_steps=1500),
        settings=[(f'n_embd {e}, n_layer {n}: {microgpt.parameter_count(microgpt.GPTConfig(28, e, 4, n, 16)):,}',
                   dict(n_embd=e, n_layer=n, n_head=4))
                  for e, n in ((8, 1), (16, 1), (16, 2), (32, 1), (32, 2))],
        seeds=[1]),
}


def chart(curves, width=60, height=12, title='', top=20.0):
    """Loss curves on one chart of characters: curves is [(mark, [(step, loss), ...])];
    a loss above top (a run blowing up) is drawn on the top line."""
    points = [(step, min(loss, top)) for _, curve in curves for step, loss in curve
              if math.isfinite(loss)]
    last = max(step for step, _ in points)
    lo, hi = min(loss for _, loss in points), max(loss for _, loss in points)
    if hi == top:
        title += f'\n(a loss above {top:g} is drawn on the top line)'
    grid = [[' '] * width for _ in range(height)]
    for mark, curve in curves:
        for step, loss in curve:
            if math.isfinite(loss):
                row = round((hi - min(loss, top)) / (hi - lo or 1.0) * (height - 1))
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


def number(x, width, digits):
    """x in width characters: a loss that blew up (1000 or more) in powers of ten."""
    return f'{x:{width}.{digits}f}' if abs(x) < 1000 else f'{x:{width}.1e}'


def mean_spread(xs, width=5, digits=3):
    if not all(map(math.isfinite, xs)):
        return f'{"diverged " + str(sum(not math.isfinite(x) for x in xs)) + "/" + str(len(xs)):>{2 * width + 6}}'
    return f'{number(statistics.mean(xs), width + 2, digits)} ± {number(spread(xs), width, digits)}'


def report(name, results, seeds, seconds):
    e = EXPERIMENTS[name]
    marks = 'abcdefghij'
    threshold, early = e.get('threshold'), e.get('early')
    looks = any(r['evals'][-1][3] is not None for runs in results.values() for r in runs)
    extra = (f'  steps to < {threshold:g}' if threshold else '') + (
        f'  highest, steps 1-{early}' if early else '')
    print(f'\n{e["question"]}\n')
    print(f'{"setting":30} {"val loss":>16} {"train-set loss":>16} {"gap":>7}'
          + (f' {"lookups loss":>16}' if looks else '') + f'{extra} {"s/run":>6}')
    curves = []
    for (label, s), mark in zip(e['settings'], marks):
        runs = results[label]
        val = [r['evals'][-1][2] for r in runs]
        train = [r['evals'][-1][1] for r in runs]
        gap = statistics.mean(val) - statistics.mean(train) if all(map(math.isfinite, val + train)) else math.inf
        line = f'{mark}) {label:27} {mean_spread(val)}  {mean_spread(train)} {number(gap, 7, 3)}'
        if looks:
            line += ' ' + mean_spread([r['evals'][-1][3] for r in runs])
        if threshold:
            reached = [first_below(r['train'], threshold) for r in runs]
            line += (f'{statistics.mean(reached):8.0f} ± {spread(reached):3.0f}' if None not in reached
                     else f'{"not all":>14}')
        if early:
            peaks = [max(loss for _, loss in smoothed(r['train'][:early], early // 5)) for r in runs]
            line += f'{number(statistics.mean(peaks), 11, 2)} ± {number(spread(peaks), 5, 2)}' if all(
                map(math.isfinite, peaks)) else f'{"inf":>19}'
        print(line + f' {statistics.mean(r["seconds"] for r in runs):6.1f}')
        if e.get('chart') == 'evals':
            curves.append((mark, average_curve([[(st, v) for st, _, v, _ in r['evals']] for r in runs])))
            curves.append((mark.upper(), average_curve([[(st, t) for st, t, _, _ in r['evals']]
                                                         for r in runs])))
        elif all(len(r['train']) == dict(e['base'], **s)['num_steps'] for r in runs):
            curves.append((mark, average_curve([smoothed(r['train']) for r in runs])))
    if e.get('per_seed'):
        print('validation loss of each seed (' + ', '.join(map(str, seeds)) + '): ' + '; '.join(
            f'{mark}) ' + ' '.join(number(r['evals'][-1][2], 1, 2).strip() for r in results[label])
            for (label, _), mark in zip(e['settings'], marks)))
    base = dict(e['base'])
    print(f'(mean ± half the range over seeds {", ".join(map(str, seeds))}; losses on 300 '
          f'validation documents' + ('; lookups: the positions that need the lookups'
                                     if looks else '')
          + ('; steps: the first at which the mean training loss of 20 steps is below that'
             if threshold else '')
          + (f'; highest: the running mean of the training loss over its first {early} steps'
             if early else '') + f'; {sys.implementation.name})')
    print(f'control: by its frequency alone, with no context, each token costs '
          f'{unigram_loss(base):.3f} (the unigram loss)')
    title = ('\nvalidation loss (lower case) and training-set loss (upper case), mean of the seeds'
             if e.get('chart') == 'evals' else
             '\ntraining loss (running mean), one letter per setting, mean of the seeds')
    if curves:
        print(chart(curves, title=title + ' (a later letter hides an earlier one)'))
    maps = {label: runs[0]['attention'] for label, runs in results.items() if 'attention' in runs[0]}
    if maps:
        by_look = sorted((results[label][0]['evals'][-1][3], label) for label in maps)
        best_multi = next(label for _, label in by_look if not label.startswith('n_head 1 '))
        for label in ('n_head 1 (head_dim 16)', best_multi):
            print(f'\nattention of the {label} model (seed {seeds[0]}), on a validation document:')
            print(maps[label])
    print(f'\n{name}: {len(seeds) * len(e["settings"])} runs in {seconds:.0f} s')


def average_curve(curves):
    return [(points[0][0], statistics.mean(loss for _, loss in points)) for points in zip(*curves)]


def check():
    """variant_gpt with every idea kept computes what Part I's gpt() does, exactly."""
    config = microgpt.GPTConfig(10, 16, 4, 2, 16)
    sd = microgpt.init_state_dict(config, 3)
    ours, theirs = [([], []), ([], [])], [([], []), ([], [])]
    for pos, token in enumerate([0, 3, 4, 5, 9, 2]):
        a = [z.data for z in microgpt.gpt(token, pos, ours, sd, config)]
        b = [z.data for z in variant_gpt(token, pos, theirs, sd, config)]
        if a != b:
            return f'differ at position {pos}'
    return 'variant_gpt with every idea kept is gpt(), exactly'


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('experiment', choices=list(EXPERIMENTS) + ['all', 'check'],
                   help='one of the five, or a part of one (copy, warmup_deep, ...), with what follows it')
    p.add_argument('--processes', type=int, default=os.cpu_count())
    p.add_argument('--seeds', type=int, nargs='+', help='(default 1 2 3; scaling: 1)')
    args = p.parse_args()
    if args.experiment == 'check':
        print(check())
        return
    names = []                                    # each experiment, then what it leads to
    for name in (['heads', 'warmup', 'weight_decay', 'ideas', 'scaling']
                 if args.experiment == 'all' else [args.experiment]):
        while name:
            names.append(name)
            name = EXPERIMENTS[name].get('then')
    total = time.perf_counter()
    for name in names:
        e = EXPERIMENTS[name]
        seeds = args.seeds or e.get('seeds', [1, 2, 3])
        SEEDS[:] = seeds
        jobs = [(dict(e['base'], **s), seed) for _, s in e['settings'] for seed in seeds]
        started = time.perf_counter()
        with multiprocessing.Pool(args.processes, maxtasksperchild=1) as pool:
            histories = pool.map(run, jobs, chunksize=1)
        results = {label: histories[i * len(seeds):(i + 1) * len(seeds)]
                   for i, (label, _) in enumerate(e['settings'])}
        report(name, results, seeds, time.perf_counter() - started)
    print(f'\n{" ".join(names)}: {time.perf_counter() - total:.0f} s in all, '
          f'{args.processes} processes, {sys.implementation.name}')


if __name__ == '__main__':
    main()
