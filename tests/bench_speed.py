"""Speed ratio: microgpt's engine against the straightforward one, in one process.

    python tests/bench_speed.py [--rounds 3] [--n_layer 1] [--n_embd 16]

Times the same training steps (same documents, same starting weights, same Adam
update) built three ways, back to back, in alternating rounds so that a noisy
machine slows all alike:
  microgpt       microgpt.doc_loss + backward + microgpt.Adam, as `python microgpt.py` trains
  straightforward  tests/reference.py's RefValue: one node per binary op, a closure
                 per node for its backward step, no __slots__, a recursive
                 topological sort, the garbage collector left on: the engine
                 as tutorials (micrograd) write it
  tuned binary   tests/reference.py's SlotValue: the same, with __slots__ and local
                 derivatives stored instead of closures: still one node per op
It prints the median ms per step of each and microgpt's speed-up over each. Not
a unit test (its name does not start with test_): timings belong in a
benchmark, not in asserts.
"""
import argparse
import gc
import math
import os
import random
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)

import microgpt                                   # noqa: E402
from reference import RefValue, SlotValue, ref_doc_loss, to_ref        # noqa: E402


def microgpt_steps(state_dict, adam, docs, config):
    """ms per step of microgpt's own training step (the collector paused, as the
    command line does)."""
    times = []
    gc.disable()
    try:
        for tokens in docs:
            t0 = time.perf_counter()
            loss = microgpt.doc_loss(tokens, state_dict, config)
            loss.backward()
            adam.step(0.01)
            del loss
            times.append((time.perf_counter() - t0) * 1000)
    finally:
        gc.enable()
    return times


def reference_steps(ref_sd, docs, n_head, no_gc, lr=0.01, beta1=0.85, beta2=0.99, eps=1e-8):
    """ms per step of a reference engine, with a plain Adam update."""
    if no_gc:
        gc.disable()
    try:
        return timed_reference_steps(ref_sd, docs, n_head, lr, beta1, beta2, eps)
    finally:
        gc.enable()


def timed_reference_steps(ref_sd, docs, n_head, lr, beta1, beta2, eps):
    params = [p for matrix in ref_sd.values() for row in matrix for p in row]
    m, v = [0.0] * len(params), [0.0] * len(params)
    times = []
    for t, tokens in enumerate(docs, start=1):
        t0 = time.perf_counter()
        loss = ref_doc_loss(tokens, ref_sd, n_head)
        loss.backward()
        for i, p in enumerate(params):
            m[i] = beta1 * m[i] + (1 - beta1) * p.grad
            v[i] = beta2 * v[i] + (1 - beta2) * p.grad ** 2
            p.data -= lr * (m[i] / (1 - beta1 ** t)) / (math.sqrt(v[i] / (1 - beta2 ** t)) + eps)
            p.grad = 0.0
        del loss
        times.append((time.perf_counter() - t0) * 1000)
    return times


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--rounds', type=int, default=3)
    p.add_argument('--ref_steps', type=int, default=8, help='reference steps per round')
    p.add_argument('--steps', type=int, default=60, help='microgpt steps per round')
    p.add_argument('--no_gc', action='store_true',
                   help='pause the garbage collector for the reference engines too (their cycles then stay in memory)')
    p.add_argument('--n_embd', type=int, default=16)
    p.add_argument('--n_head', type=int, default=4)
    p.add_argument('--n_layer', type=int, default=1)
    p.add_argument('--block_size', type=int, default=16)
    args = p.parse_args()

    with open(os.path.join(os.path.dirname(HERE), 'names.txt'), encoding='utf-8') as f:
        docs = microgpt.load_docs(f.read())
    random.Random(42).shuffle(docs)
    tokenizer = microgpt.Tokenizer(''.join(docs))
    data = [[0] + tokenizer.encode(doc) + [1] for doc in docs]
    config = microgpt.GPTConfig(tokenizer.vocab_size, args.n_embd, args.n_head, args.n_layer, args.block_size)
    state_dict = microgpt.init_state_dict(config)
    weights = {name: [[p.data for p in row] for row in matrix] for name, matrix in state_dict.items()}
    references = {'straightforward': to_ref(weights, RefValue), 'tuned binary': to_ref(weights, SlotValue)}
    adam = microgpt.Adam(microgpt.parameters(state_dict))

    times = {'microgpt': [], 'straightforward': [], 'tuned binary': []}
    for r in range(args.rounds):
        start = r * args.steps
        for name, ref_sd in references.items():
            times[name] += reference_steps(ref_sd, data[start:start + args.ref_steps], args.n_head, args.no_gc)
        times['microgpt'] += microgpt_steps(state_dict, adam, data[start:start + args.steps], config)
    impl = f'{sys.implementation.name} {".".join(map(str, sys.version_info[:3]))}'
    print(f'{impl}, n_embd {args.n_embd}, n_head {args.n_head}, n_layer {args.n_layer}, '
          f'block_size {args.block_size}, {args.rounds} alternating rounds'
          + (', no garbage collector' if args.no_gc else ''))
    ours = statistics.median(times['microgpt'])
    for name, ts in times.items():
        median = statistics.median(ts)
        speedup = '' if name == 'microgpt' else f'  microgpt is {median / ours:.1f}x faster'
        print(f'{name + ":":17} median {median:8.2f} ms per step ({len(ts)} steps){speedup}')


if __name__ == '__main__':
    main()
