"""Questions every learner asks, answered by experiments on microgpt.

    python tests/experiments.py heads          # 1. more heads: better, then worse
    python tests/experiments.py warmup         # 2. why warmup; where it would decide
    python tests/experiments.py weight_decay   # 3. how weight decay stops overfitting
    python tests/experiments.py ideas          # 4. attention, residuals, rmsnorm, taken away
    python tests/experiments.py scaling        #    and scale: bigger models, loss and minutes
    python tests/experiments.py all            # all five (hours on PyPy, 2 cores)
    python tests/experiments.py pairs --seeds 4 5   # one part, with the seeds you choose
    python tests/experiments.py check          # the variant model, all ideas kept, is gpt()

Each trains microgpt's model with Part I's own train() (an idea is taken away by
variant_gpt() below, built from Part I's functions, which this script's worker process
puts in gpt()'s place, as a learner would edit their copy), for a few settings over 10
seeds (1 to 10), in separate processes on every core. It prints a table (the median and
the range over the seeds, and, where a task can be solved, in how many seeds it was),
each seed's loss, the loss curves on one chart of plain characters, and the controls to
read the table against: the loss of predicting each token by its frequency alone (the
"unigram" loss); on names, a table of counts of (token, position) -> next token, and a
model trained on names whose letters are shuffled within each name (the same letters,
no order). --results FILE keeps every run's numbers, so that a report can be printed
again (or extended with more seeds) without training again. Not a unit test (its name
does not start with test_): it measures, it does not assert.
"""
import argparse
import functools
import gc
import json
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
SEEDS = list(range(1, 11))


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

PART_ONE_GPT = microgpt.gpt


def variant_gpt(token_id, pos_id, cache, sd, config, attention='full', residual=True,
                norm=True, relu=False):
    """gpt() of Part I, from its own functions, with a switch per idea: attention 'self'
    (each position reads only its own value: sees only itself), no residual adds
    (x = f(x) instead of x = x + f(x)), no rmsnorm (the identity instead), relu in the
    MLP instead of squared_relu (as the 200-line original has it)."""
    rms = microgpt.rmsnorm if norm else (lambda x: x)
    x = [t + p for t, p in zip(sd['wte'][token_id], sd['wpe'][pos_id])]
    for i in range(config.n_layer):
        keys, values = cache[i]
        if attention == 'full':
            a = microgpt.attention(rms(x), keys, values, sd, i, config)
        else:
            a = microgpt.linear(microgpt.linear(rms(x), sd[f'layer{i}.attn_wv']),
                                sd[f'layer{i}.attn_wo'])
        x = [xj + aj for xj, aj in zip(x, a)] if residual else a
        h = microgpt.linear(rms(x), sd[f'layer{i}.mlp_fc1'])
        h = microgpt.linear([hj.relu() if relu else microgpt.squared_relu(hj) for hj in h],
                            sd[f'layer{i}.mlp_fc2'])
        x = [xj + hj for xj, hj in zip(x, h)] if residual else h
    return microgpt.linear(rms(x), sd['wte'])


def losses_of(tokens, sd, config):
    """The loss at each position of a document (Values), as doc_loss() adds them up,
    from whatever gpt() is (Part I's, or a variant)."""
    cache = [([], []) for _ in range(config.n_layer)]
    return [microgpt.cross_entropy(microgpt.gpt(tokens[pos], pos, cache, sd, config),
                                   tokens[pos + 1])
            for pos in range(min(len(tokens) - 1, config.block_size))]


def evaluate(docs, tokenizer, sd, config, lookups):
    """The mean document loss on docs (as the command line's validation loss), and the
    mean loss at the lookup positions alone."""
    doc_means, looked = [], []
    for doc in docs:
        losses = [v.data for v in losses_of(tokenizer.encode_doc(doc), sd, config)]
        doc_means.append(sum(losses) / len(losses))
        looked += [loss for pos, loss in enumerate(losses) if lookups and pos in lookups]
    return statistics.mean(doc_means), (statistics.mean(looked) if looked else None)


VARIANT_KEYS = ('attention', 'residual', 'norm', 'relu')


def run(job):
    """Train one setting with one seed, with Part I's train() (in this process, an
    idea taken away by putting variant_gpt() in gpt()'s place); return its history: the
    training loss of every step, (step, training-set loss, validation loss, lookup loss)
    every eval_every steps and at the end, the seconds of training, and, if asked, the
    attention maps of one validation document."""
    s, seed = job
    train, val, lookups = data(s, seed)
    tokenizer = microgpt.Tokenizer(''.join(train + val))
    config = microgpt.GPTConfig(tokenizer.vocab_size, s.get('n_embd', 16), s.get('n_head', 4),
                                s.get('n_layer', 1), 16)
    sd = microgpt.init_state_dict(config, seed)
    model = microgpt.Model(config, tokenizer, sd)
    adam = microgpt.Adam(microgpt.parameters(sd), s.get('weight_decay', 0.0))
    variant = {k: s[k] for k in VARIANT_KEYS if k in s}
    microgpt.gpt = functools.partial(variant_gpt, **variant) if variant else PART_ONE_GPT
    history = {'train': [], 'evals': [], 'seconds': 0.0}
    num_steps = s['num_steps']
    steps = microgpt.train(model, adam, train, num_steps, s['learning_rate'],
                           s.get('warmup_steps', 0), s.get('batch_size', 4))
    if sys.implementation.name == 'cpython':   # as the command line does (PyPy's must run)
        gc.disable()
    try:
        started = time.perf_counter()
        for step, loss in enumerate(steps, start=1):
            history['seconds'] += time.perf_counter() - started
            history['train'].append(loss if math.isfinite(loss) else math.inf)
            if not math.isfinite(loss):
                break
            if step == num_steps or s.get('eval_every') and step % s['eval_every'] == 0:
                val_loss, look = evaluate(val[:300], tokenizer, sd, config, lookups)
                train_loss, _ = evaluate(train[:300], tokenizer, sd, config, None)
                history['evals'].append((step, train_loss, val_loss, look))
            started = time.perf_counter()
    except (OverflowError, ZeroDivisionError, ValueError):   # diverged past floats
        history['train'].append(math.inf)
    finally:
        gc.enable()
    if not math.isfinite(history['train'][-1]):
        history['evals'].append((len(history['train']), math.inf, math.inf, math.inf))
    if s.get('show_attention') and seed == SEEDS[0] and not variant:
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


def count_table_loss(s, seed=SEEDS[0]):
    """The loss of a table of counts of (token, position) -> next token, from the
    training documents (add-one smoothed), on the validation documents: what the
    current letter and its place alone tell, with no training and no other context."""
    train, val, _ = data(s, seed)
    tokenizer = microgpt.Tokenizer(''.join(train + val))
    counts, new_row = {}, lambda: [1] * tokenizer.vocab_size
    for doc in train:
        tokens = tokenizer.encode_doc(doc)
        for pos in range(min(len(tokens) - 1, 16)):
            counts.setdefault((tokens[pos], pos), new_row())[tokens[pos + 1]] += 1
    losses = []
    for doc in val[:300]:
        tokens = tokenizer.encode_doc(doc)
        rows = [counts.get((tokens[pos], pos), new_row()) for pos in range(min(len(tokens) - 1, 16))]
        losses.append(statistics.mean(-math.log(row[tokens[pos + 1]] / sum(row))
                                      for pos, row in enumerate(rows)))
    return statistics.mean(losses)


def parameter_count(n_embd, n_layer):
    shapes = microgpt.matrix_shapes(microgpt.GPTConfig(28, n_embd, 4, n_layer, 16))
    return sum(rows * cols for rows, cols in shapes.values())


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
        settings=HEADS, then='pairs_long'),
    'pairs_long': dict(
        question='The ordered pairs again, three times as long (1500 steps): does the '
                 'budget or the number of heads decide?',
        base=dict(data='pairs', num_steps=1500, batch_size=4, learning_rate=0.01,
                  warmup_steps=50),
        settings=HEADS[:4]),
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
        settings=IDEAS, early=100, then='activation'),
    'activation': dict(
        question="The MLP's nonlinearity: squared relu (Part I) or relu (the original), "
                 'the default run',
        base=dict(NAMES_BASE, num_steps=750),
        settings=[('squared relu', {}), ('relu', dict(relu=True))]),
    'scaling': dict(
        question='Scale: bigger models, the same 1500 steps of 4 names',
        base=dict(NAMES_BASE, num_steps=1500),
        settings=[(f'n_embd {e}, n_layer {n}: {parameter_count(e, n):,}',
                   dict(n_embd=e, n_layer=n, n_head=4))
                  for e, n in ((8, 1), (16, 1), (16, 2), (32, 1), (32, 2))],
    ),
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


def number(x, width, digits):
    """x in width characters: a loss that blew up (1000 or more) in powers of ten."""
    return f'{x:{width}.{digits}f}' if abs(x) < 1000 else f'{x:{width}.1e}'


def median_range(xs, digits=3):
    """'median [lowest, highest]' of xs, as losses: a blown-up one in powers of ten."""
    xs = sorted(xs)
    return (f'{number(statistics.median(xs), 1, digits).strip()} '
            f'[{number(xs[0], 1, digits).strip()}, {number(xs[-1], 1, digits).strip()}]')


SOLVED = math.log(2)   # a lookups loss below ln 2: at most one bit of the letter left to guess


def report(name, results, seeds, seconds):
    e = EXPERIMENTS[name]
    marks = 'abcdefghij'
    threshold, early = e.get('threshold'), e.get('early')
    looks = any(r['evals'][-1][3] is not None for runs in results.values() for r in runs)
    unigram = unigram_loss(dict(e['base']), seeds[0])
    n = len(seeds)
    print(f'\n{e["question"]}\n')
    header = (f'{"setting":30} {"val loss: median [range]":>26} {"train-set":>9} {"gap":>6} '
              f'{"learned":>7}' + (f' {"lookups loss: median [range]":>29} {"solved":>6}'
                                   if looks else '')
              + (f' {"steps to < " + format(threshold, "g"):>13}' if threshold else '')
              + (f' {"highest, 1-" + str(early):>22}' if early else '') + f' {"s/run":>6}')
    print(header)
    curves = []
    for (label, s), mark in zip(e['settings'], marks):
        runs = results[label]
        val = [r['evals'][-1][2] for r in runs]
        train = [r['evals'][-1][1] for r in runs]
        gaps = [v - t if math.isfinite(v - t) else math.inf for v, t in zip(val, train)]
        line = (f'{mark}) {label:27} {median_range(val):>26} '
                f'{number(statistics.median(train), 9, 3)} {number(statistics.median(gaps), 6, 3)} '
                f'{sum(v < unigram for v in val):>4}/{n:<2}')
        if looks:
            lookups = [r['evals'][-1][3] for r in runs]
            line += f' {median_range(lookups):>29} {sum(x < SOLVED for x in lookups):>3}/{n:<2}'
        if threshold:
            reached = [first_below(r['train'], threshold) for r in runs]
            got = [x for x in reached if x is not None]
            line += (f'{statistics.median(got):9.0f}' if got else f'{"":9}') + (
                f' ({len(got)}/{n})' if len(got) < n else '     ')
        if early:
            peaks = [max(loss for _, loss in smoothed(r['train'][:early], early // 5)) for r in runs]
            line += f' {median_range(peaks, 2):>22}'
        print(line + f' {statistics.mean(r["seconds"] for r in runs):6.1f}')
        if e.get('chart') == 'evals':
            curves.append((mark, average_curve([[(st, v) for st, _, v, _ in r['evals']] for r in runs])))
            curves.append((mark.upper(), average_curve([[(st, t) for st, t, _, _ in r['evals']]
                                                         for r in runs])))
        elif all(len(r['train']) == dict(e['base'], **s)['num_steps'] for r in runs):
            curves.append((mark, average_curve([smoothed(r['train']) for r in runs])))
    print(f'(median and [lowest, highest] over seeds {", ".join(map(str, seeds))}; losses on 300 '
          f'validation documents; learned: the seeds whose validation loss ends below the '
          f'unigram loss' + ('; lookups: the positions that need the lookups; solved: the '
                             f'seeds whose lookups loss ends below ln 2 = {SOLVED:.2f}'
                             if looks else '')
          + ('; steps: the first at which the mean training loss of 20 steps is below that, '
             'median of the seeds that got there' if threshold else '')
          + (f'; highest: the running mean of the training loss over its first {early} steps'
             if early else '') + f'; {sys.implementation.name})')
    print('each seed, validation loss' + (' / lookups loss' if looks else '') + ':')
    for (label, _), mark in zip(e['settings'], marks):
        print(f'  {mark}) ' + '  '.join(
            number(r['evals'][-1][2], 1, 2).strip() + (
                '/' + number(r['evals'][-1][3], 1, 2).strip() if looks else '')
            for r in results[label]))
    print(f'control: by its frequency alone, with no context, each token costs '
          f'{unigram:.3f} (the unigram loss)')
    if e['base']['data'] == 'names':
        print(f'control: a table of counts of (token, position) -> next token, from the '
              f'training names, costs {count_table_loss(dict(e["base"]), seeds[0]):.3f}')
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
    print(f'\n{name}: {n * len(e["settings"])} runs in {seconds:.0f} s')


def average_curve(curves):
    return [(points[0][0], statistics.mean(loss for _, loss in points)) for points in zip(*curves)]


def check():
    """variant_gpt with every idea kept computes what Part I's gpt() does, exactly."""
    config = microgpt.GPTConfig(10, 16, 4, 2, 16)
    sd = microgpt.init_state_dict(config, 3)
    ours, theirs = [([], []), ([], [])], [([], []), ([], [])]
    for pos, token in enumerate([0, 3, 4, 5, 9, 2]):
        a = [z.data for z in PART_ONE_GPT(token, pos, ours, sd, config)]
        b = [z.data for z in variant_gpt(token, pos, theirs, sd, config)]
        if a != b:
            return f'differ at position {pos}'
    return 'variant_gpt with every idea kept is gpt(), exactly'


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('experiment', choices=list(EXPERIMENTS) + ['all', 'check'],
                   help='one of the five questions (and its parts), or one part alone '
                        '(copy, pairs, warmup_deep, ...)')
    p.add_argument('--processes', type=int, default=os.cpu_count())
    p.add_argument('--seeds', type=int, nargs='+', help='(default: 1 to 10)')
    p.add_argument('--results', metavar='FILE', help="keep every run's numbers in FILE (JSON), "
                                                      'and train only the runs not in it')
    args = p.parse_args()
    if args.experiment == 'check':
        print(check())
        return
    questions = ['heads', 'warmup', 'weight_decay', 'ideas', 'scaling']
    names = []                                    # a question, then its parts
    for name in questions if args.experiment == 'all' else [args.experiment]:
        while name:
            names.append(name)
            name = EXPERIMENTS[name].get('then') if args.experiment in questions + ['all'] else None
    kept = {}
    if args.results and os.path.exists(args.results):
        with open(args.results) as f:
            kept = json.load(f)
    total = time.perf_counter()
    for name in names:
        e = EXPERIMENTS[name]
        seeds = args.seeds or SEEDS
        SEEDS[:] = seeds
        keys = [json.dumps([name, label, seed]) for label, _ in e['settings'] for seed in seeds]
        jobs = [(dict(e['base'], **s), seed) for _, s in e['settings'] for seed in seeds]
        todo = [(key, job) for key, job in zip(keys, jobs) if key not in kept]
        started = time.perf_counter()
        with multiprocessing.Pool(args.processes, maxtasksperchild=1) as pool:
            for key, history in zip([k for k, _ in todo],
                                    pool.map(run, [job for _, job in todo], chunksize=1)):
                kept[key] = history
        if args.results:
            with open(args.results + '.tmp', 'w') as f:
                json.dump(kept, f)
            os.replace(args.results + '.tmp', args.results)
        histories = [kept[key] for key in keys]
        results = {label: histories[i * len(seeds):(i + 1) * len(seeds)]
                   for i, (label, _) in enumerate(e['settings'])}
        report(name, results, seeds, time.perf_counter() - started)
    print(f'\n{" ".join(names)}: {time.perf_counter() - total:.0f} s in all, '
          f'{args.processes} processes, {sys.implementation.name}')


if __name__ == '__main__':
    main()
