"""microgpt: a complete GPT in one dependency-free Python file.

Part I is the algorithm, to read in order: 1. dataset, 2. tokenizer, 3. autograd,
4. parameters, 5. model, 6. training, 7. sampling, 8. the whole story, told once in
train_and_sample(). Part II is the workbench around it (command line, progress,
checkpoints, plots, benchmark): you can skip it.   python microgpt.py [--help]
"""
import math
import random
from collections import namedtuple
from operator import mul

# Part I: the algorithm =======================================================

# -----------------------------------------------------------------------------
# 1. Dataset
# A text file with one document per line; here a document is a baby name. The
# model learns what the documents look like, and then writes new ones.

def load_docs(path):
    """The non-blank lines of a UTF-8 text file, without surrounding spaces."""
    with open(path, encoding='utf-8-sig') as f:   # (-sig: skip a byte-order mark, if any)
        return [line.strip() for line in f if line.strip()]


def split_docs(docs, val_fraction, rng):
    """Shuffle docs (in place), then hold out the first val_fraction of them. The model
    never trains on those, so its loss there says how well it does on names it never saw."""
    rng.shuffle(docs)
    n_val = int(len(docs) * val_fraction)
    return docs[n_val:], docs[:n_val]                # (train, val)


# -----------------------------------------------------------------------------
# 2. Tokenizer
# The model reads and writes integers (token ids), one per character. Two special
# tokens mark where a document starts (<BOS>) and ends (<EOS>): the model learns
# to begin a name after <BOS>, and to say <EOS> when the name is complete.

class Tokenizer:
    BOS, EOS = 0, 1                                   # the special tokens take ids 0 and 1,

    def __init__(self, chars):
        self.chars = sorted(set(chars))               # so self.chars[i] gets the id 2 + i
        self.ids = {ch: 2 + i for i, ch in enumerate(self.chars)}
        self.vocab_size = 2 + len(self.chars)

    # (encode: a KeyError names a character that is not in the vocabulary)
    def encode(self, text): return [self.ids[ch] for ch in text]
    def encode_doc(self, doc): return [self.BOS] + self.encode(doc) + [self.EOS]
    def decode(self, ids): return ''.join(self.chars[i - 2] for i in ids if i >= 2)   # (no BOS/EOS)


# -----------------------------------------------------------------------------
# 3. Autograd
# Training needs the derivative of one number, the loss (how wrong the predictions
# are, section 5), with respect to every parameter. So every number is a Value: a
# scalar that remembers its inputs (its children, the Values it was computed from)
# and the local derivative d(self)/d(child) of each, known in the forward pass.
# backward() applies the chain rule from the loss down: each node adds
# local_grad * node.grad into each child's grad.

class Value:
    __slots__ = ('data', 'grad', '_children', '_local_grads')   # no per-object dict: lighter

    def __init__(self, data, children=(), local_grads=()):
        self.data = data                  # the number
        self.grad = 0.0                   # d(loss)/d(self), filled in by backward()
        self._children = children         # the Values this one was computed from
        self._local_grads = local_grads   # d(self)/d(child), one per child

    def __add__(self, other):
        if isinstance(other, Value):      # d(a+b)/da = 1, d(a+b)/db = 1
            return Value(self.data + other.data, (self, other), (1.0, 1.0))
        return Value(self.data + other, (self,), (1.0,))   # other: a plain number, a constant

    def __mul__(self, other):
        if isinstance(other, Value):      # d(a*b)/da = b, d(a*b)/db = a
            return Value(self.data * other.data, (self, other), (other.data, self.data))
        return Value(self.data * other, (self,), (other,))

    def __pow__(self, k):                 # k is a plain number: d(a^k)/da = k * a^(k-1)
        # (math.pow, not **: (-8) ** (1/3) quietly gives a complex number, math.pow an error)
        return Value(math.pow(self.data, k), (self,), (k * math.pow(self.data, k - 1),))

    # d(e^a)/da = e^a;  d(ln a)/da = 1/a;  d(max(0,a))/da = 1 if a > 0 else 0 (0 at a = 0)
    def exp(self): return Value(math.exp(self.data), (self,), (math.exp(self.data),))
    def log(self): return Value(math.log(self.data), (self,), (1.0 / self.data,))
    def relu(self): return Value(max(0.0, self.data), (self,), (float(self.data > 0),))

    # The rest are built from the ops above, so their derivatives come for free.
    def __neg__(self): return self * -1.0
    def __sub__(self, other): return self + (-other)
    def __truediv__(self, other): return self * other ** -1
    __radd__, __rmul__ = __add__, __mul__   # 2 + a is a + 2 (and sum() starts at 0 + a)
    def __rsub__(self, other): return (-self) + other
    def __rtruediv__(self, other): return self ** -1 * other
    def __repr__(self): return f'Value(data={self.data}, grad={self.grad})'

    def backward(self):
        """Fill in d(self)/d(v) for every Value v that self was computed from. A node
        may pass its grad on only once every node that uses it has added to it: so
        the nodes go in reverse topological order, each one before its children."""
        self.grad = 1.0
        for node in reversed(topological_order(self)):
            grad = node.grad
            if grad:                                      # (a zero gradient passes on nothing)
                for child, local_grad in zip(node._children, node._local_grads):
                    child.grad += local_grad * grad       # the chain rule; += adds up all paths


def topological_order(root):
    """The nodes of root's graph that have children (leaves, such as the parameters, pass
    nothing on), each after all its children: a depth-first search, with a stack instead
    of recursion so that a graph of any depth works."""
    order, visited, stack = [], {root}, [(root, iter(root._children))]
    while stack:                          # stack: (node, ITS OWN iterator over its children)
        for child in stack[-1][1]:        # goes on from the top node's last child looked at
            if child._children and child not in visited:
                visited.add(child)
                stack.append((child, iter(child._children)))
                break                     # finish that child first, then come back
        else:                             # every child is done, so the node is too
            order.append(stack.pop()[0])
    return order


def linear(x, w):
    """The matrix w times the vector x: output i, sum_j w_ij * x_j, is ONE node with 2n
    children, not 2n - 1 nodes of * and +. Its local derivatives, d/dw_ij = x_j and d/dx_j
    = w_ij: children (w_i1..w_in, x_1..x_n) get local grads (x_1..x_n, w_i1..w_in). Dot
    products are ~91% of the graph's edges: fused, a step is ~10x faster (measured)."""
    xd = [xj.data for xj in x]                    # x's numbers, read once for all rows
    out = []
    for row in w:
        wd = [wij.data for wij in row]
        out.append(Value(sum(map(mul, wd, xd)), row + x, xd + wd))   # map(mul): w_ij * x_j
    return out


# -----------------------------------------------------------------------------
# 4. Parameters
# All the model's knowledge lives in matrices of Values, its parameters: a list of rows,
# row i a layer's weights for output i, or a token's (a position's) learned vector.

# The model's shape, which travels with its weights (as nanoGPT's GPTConfig does):
# vocab_size tokens; n_embd numbers per token inside the model; n_layer layers,
# each with n_head attention heads; block_size positions, the longest context.
GPTConfig = namedtuple('GPTConfig', 'vocab_size n_embd n_head n_layer block_size')


def matrix_shapes(config):
    """{name: (rows, columns)}: token embeddings (wte), position embeddings (wpe), and
    per layer attention's query, key, value, output matrices and the MLP's two."""
    n = config.n_embd
    shapes = {'wte': (config.vocab_size, n), 'wpe': (config.block_size, n)}
    for i in range(config.n_layer):
        shapes.update({f'layer{i}.attn_{w}': (n, n) for w in ('wq', 'wk', 'wv', 'wo')})
        shapes.update({f'layer{i}.mlp_fc1': (4 * n, n), f'layer{i}.mlp_fc2': (n, 4 * n)})
    return shapes


def init_state_dict(config, seed=42, std=0.15):
    """Every matrix, random numbers of mean 0: all different, so no two units learn the same
    thing; small, so the first guesses are not confidently wrong (0.15: the best measured)."""
    rng = random.Random(seed)
    return {name: [[Value(rng.gauss(0.0, std)) for _ in range(n_in)] for _ in range(n_out)]
            for name, (n_out, n_in) in matrix_shapes(config).items()}


def parameters(state_dict):
    """Every Value of every matrix, always in this order: Adam's m[i], v[i] go by it."""
    return [p for matrix in state_dict.values() for row in matrix for p in row]


# -----------------------------------------------------------------------------
# 5. Model
# A GPT reads tokens and predicts the next one, here one token at a time. A token's
# vector x (the residual stream) starts as its embedding (wte row) plus its position's
# (wpe row; attention sums over tokens, and a sum ignores order). Each layer ADDS to x
# what attention (reading the earlier tokens, see attention()) and an MLP (working on
# this one) make of it: the add passes gradients straight down (local grad 1), where
# through the layers alone they would be multiplied layer after layer and could fade.
# Last, x is scored against every token's embedding: the logits, raw scores that
# softmax makes probabilities of. The loss is -log of the probability given to the
# true next token: 0 when sure and right, ln(vocab_size) for a uniform guess. Unlike
# GPT-2: RMSNorm (no gain), no biases, squared ReLU, no dropout, characters as tokens.

def softmax(logits):
    """p_i = exp(z_i) / sum_j exp(z_j): scores to probabilities (positive, sum 1).
    Its derivative, dp_i/dz_j = p_i * ([i == j] - p_j), is the quotient rule: from
    exp, +, ** and *, backward() finds it by itself. Subtracting the largest z keeps
    every exp() <= 1 (no overflow) and changes no p_i: z_max can be a plain number."""
    z_max = max(z.data for z in logits)        # a plain number: a constant
    exps = [(z - z_max).exp() for z in logits]
    total_inv = sum(exps) ** -1                # 1 / sum, once for all i
    return [e * total_inv for e in exps]


def rmsnorm(x):
    """x / sqrt(mean(x^2) + 1e-5): rescale x to a root-mean-square of 1, so each layer
    gets inputs of the same size however x grew. Each x_i reaches the output directly
    and through the shared scale s, and backward() adds both paths: dy_i/dx_j =
    s * [i == j] - x_i * x_j * s^3 / n. (The 1e-5 keeps s finite when x is all 0.)"""
    # sum_j x_j^2 = x . x: one node (a one-row linear layer), x_j its child twice: d/dx_j = 2 x_j
    scale = (linear(x, [x])[0] / len(x) + 1e-5) ** -0.5
    return [xi * scale for xi in x]


def attention(h, keys, values, sd, i, config):
    """Layer i's attention at the newest position, from its normalized vector h. It
    makes a query q (what this token looks for), a key k (what it offers) and a
    value v (what it passes on), and adds k, v to the cache. Each head, on its own
    slice of the vectors, computes out = sum_s softmax_s(q . k_s / sqrt(head_dim)) v_s
    over the positions s so far, this one included. Several heads can each look for
    something else (a vowel, the letter before...); wo mixes their outputs."""
    head_dim = config.n_embd // config.n_head
    q = linear(h, sd[f'layer{i}.attn_wq'])
    keys.append(linear(h, sd[f'layer{i}.attn_wk']))
    values.append(linear(h, sd[f'layer{i}.attn_wv']))
    out = []
    for hs in range(0, config.n_embd, head_dim):         # a head: the slice hs:hs+head_dim
        # q . k_s for each position s: a linear layer with a row per position. A sum of
        # head_dim random products has a std growing like sqrt(head_dim): scaled, softmax
        # starts out smooth, not locked on one position, whatever head_dim is.
        scores = linear(q[hs:hs + head_dim], [k[hs:hs + head_dim] for k in keys])
        weights = softmax([s / math.sqrt(head_dim) for s in scores])
        # out_j = sum_s weights_s * v_s[j]: a linear layer whose row j holds every v_s[j]
        out += linear(weights, [[v[j] for v in values] for j in range(hs, hs + head_dim)])
    return linear(out, sd[f'layer{i}.attn_wo'])


def squared_relu(x):
    """relu(x)^2 (So et al. 2021, "Primer": trains a little better than relu). It is
    x.relu() ** 2 as ONE node (as two, it costs a step ~9% more, measured), with the
    chain rule by hand: d/dx relu(x)^2 = 2 relu(x) relu'(x) = 2 relu(x) (relu' = 0: relu 0 too)."""
    r = max(0.0, x.data)
    return Value(r * r, (x,), (2.0 * r,))


def gpt(token_id, pos_id, keys, values, sd, config):
    """The logits for the token after token_id, at position pos_id, from the weights sd.
    keys[i], values[i]: layer i's cache of the earlier positions (live Values; this call
    adds to it). Only the past: no causal mask needed (GPT-2 reads all, masks the future)."""
    x = [t + p for t, p in zip(sd['wte'][token_id], sd['wpe'][pos_id])]   # (n_embd,)
    for i in range(config.n_layer):
        a = attention(rmsnorm(x), keys[i], values[i], sd, i, config)
        x = [xj + aj for xj, aj in zip(x, a)]
        # The MLP: 4 times wider (as GPT-2), squared ReLU, and back. Without a nonlinearity
        # between them, the two linear layers would be just one linear layer.
        h = linear(rmsnorm(x), sd[f'layer{i}.mlp_fc1'])
        h = linear([squared_relu(hj) for hj in h], sd[f'layer{i}.mlp_fc2'])
        x = [xj + hj for xj, hj in zip(x, h)]
    # Weight tying (as GPT-2): a token's one wte vector is its input AND scores it as output.
    return linear(rmsnorm(x), sd['wte'])


def cross_entropy(logits, target):
    """The loss -log softmax(z)[target] = log(sum_j exp(z_j)) - z_target, as ONE node
    (from Value ops, a step costs ~10% more, measured). Its gradient: d/dz_j of log(sum_k
    exp(z_k)) is exp(z_j) / sum_k exp(z_k) = softmax(z)_j, and d/dz_j of z_target is
    [j == target]; so d/dz_j = softmax(z)_j - [j == target]."""
    z_max = max(z.data for z in logits)      # as in softmax: no overflow
    exps = [math.exp(z.data - z_max) for z in logits]
    total = sum(exps)
    grads = [e / total for e in exps]        # softmax(z)
    grads[target] -= 1.0
    return Value(z_max + math.log(total) - logits[target].data, logits, grads)


def doc_loss(tokens, state_dict, config):
    """The mean loss of predicting each token of a document from the ones before it.
    tokens starts with <BOS>; only block_size + 1 of them are used (block_size positions,
    each predicting the next): a name of block_size or more characters never sees <EOS>."""
    tokens = tokens[:config.block_size + 1]
    if len(tokens) < 2 or not all(0 <= t < config.vocab_size for t in tokens):
        raise ValueError(f'doc_loss needs 2 or more token ids, 0 to {config.vocab_size - 1}')
    keys, values = [[] for _ in range(config.n_layer)], [[] for _ in range(config.n_layer)]
    losses = [cross_entropy(gpt(tokens[pos], pos, keys, values, state_dict, config),
                            tokens[pos + 1]) for pos in range(len(tokens) - 1)]
    return sum(losses) / len(losses)


# -----------------------------------------------------------------------------
# 6. Training
# Each step: the mean loss of the next batch of documents, ONE backward(), then Adam
# moves every parameter a little downhill and sets its grad back to 0 (backward() adds).

class Adam:
    """Adam (Kingma & Ba, 2015). Plain gradient descent, p -= lr * grad, steps as far as
    the gradient is large, and gradients differ by orders of magnitude. Adam divides a
    running mean of each gradient (m) by the root of a running mean of its square (v),
    about +-1 for a steady gradient: each weight moves about lr a step, less if noisy.
    (b1, b2 = 0.85, 0.99 forget faster than the paper's 0.9, 0.999: short runs.) AdamW:
    weight_decay also shrinks each weight by lr * weight_decay of itself, not via m, v."""

    def __init__(self, params, weight_decay=0.0, b1=0.85, b2=0.99, eps=1e-8):
        self.params, self.weight_decay, self.betas, self.eps = params, weight_decay, (b1, b2), eps
        self.m, self.v, self.t = [0.0] * len(params), [0.0] * len(params), 0   # t: steps so far

    def step(self, lr):
        self.t += 1
        (b1, b2), eps, wd = self.betas, self.eps, self.weight_decay
        # m and v start at 0, so after t steps of a steady gradient g, m = (1 - b1^t) g:
        # dividing by 1 - b1^t (and v by 1 - b2^t) undoes that pull towards 0.
        bias1, bias2 = 1.0 - b1 ** self.t, 1.0 - b2 ** self.t
        self.m = [b1 * m + (1.0 - b1) * p.grad for m, p in zip(self.m, self.params)]
        self.v = [b2 * v + (1.0 - b2) * p.grad ** 2 for v, p in zip(self.v, self.params)]
        for p, m, v in zip(self.params, self.m, self.v):
            p.data -= lr * (wd * p.data + (m / bias1) / (math.sqrt(v / bias2) + eps))
            p.grad = 0.0


def lr_at(step, num_steps, learning_rate, warmup_steps):
    """The learning rate of step (from 0): a linear warmup, as Adam's first steps rest on a
    gradient or two; then a linear decay to near 0, so the last steps settle down."""
    if step < warmup_steps:
        return learning_rate * ((step + 1) / warmup_steps)
    return learning_rate * ((num_steps - step) / (num_steps - warmup_steps))


# A model: all that training changes, and all that a checkpoint keeps.
Model = namedtuple('Model', 'config tokenizer state_dict adam')


def train(model, docs, num_steps, learning_rate, warmup_steps=0, batch_size=1, on_step=None):
    """Train model for num_steps steps on docs. on_step(step, loss, lr), if given, is called
    after each step (counted from 1), and stops training by returning True (Part II's hook)."""
    config, tokenizer, state_dict, adam = model
    for step in range(num_steps):
        seen = adam.t * batch_size   # adam.t counts all runs' steps: a resumed run reads on
        batch = [tokenizer.encode_doc(docs[(seen + b) % len(docs)]) for b in range(batch_size)]
        loss = sum(doc_loss(tokens, state_dict, config) for tokens in batch) / batch_size
        loss.backward()
        lr = lr_at(step, num_steps, learning_rate, warmup_steps)   # this run's own schedule
        adam.step(lr)
        if on_step is not None and on_step(step + 1, loss, lr):
            break
        del loss                     # the next graph is built before loss is rebound: free it


# -----------------------------------------------------------------------------
# 7. Sampling
# To write a new document: feed <BOS>, draw the next token from the model's
# probabilities, feed it back in, and so on until <EOS>. The temperature T divides
# the logits first: below 1 the model keeps to its favourite tokens, above 1 it dares.

def sample(state_dict, tokenizer, config, rng, temperature=1.0, prompt=''):
    """One new document that starts with prompt: it ends at <EOS> or at block_size."""
    if not temperature > 0:
        raise ValueError(f'temperature must be above 0, not {temperature}')
    tokens = [Tokenizer.BOS] + tokenizer.encode(prompt)
    keys, values = [[] for _ in range(config.n_layer)], [[] for _ in range(config.n_layer)]
    for pos in range(config.block_size):
        logits = [z.data for z in gpt(tokens[pos], pos, keys, values, state_dict, config)]
        if pos + 1 < len(tokens):
            continue                        # the next token is the prompt's: nothing to draw
        logits[Tokenizer.BOS] = -math.inf   # <BOS> only ever starts a document
        z_max = max(logits)
        # softmax(z / T) without the division by the sum (choices() needs none). With
        # z - z_max <= 0 first, a tiny T gives weight 1 to the likeliest token, 0 to others.
        weights = [math.exp((z - z_max) / temperature) for z in logits]
        token_id = rng.choices(range(len(weights)), weights)[0]
        if token_id == Tokenizer.EOS:
            break
        tokens.append(token_id)
    return tokenizer.decode(tokens)


# -----------------------------------------------------------------------------
# 8. The whole story
# Everything above, in the order it happens. `python microgpt.py` runs this; so
# does train_and_sample(num_steps=300, n_layer=2) in a notebook.

def train_and_sample(input='names.txt', val_fraction=0.1, seed=42, n_embd=16, n_head=4, n_layer=1,
                     block_size=16, num_steps=750, batch_size=4, learning_rate=0.01,
                     warmup_steps=50, weight_decay=0.0, num_samples=20, temperature=0.5, prompt='',
                     model=None, observe=None):
    """Read the documents, build a new GPT (or go on training model, say a checkpoint's),
    train it, print new documents, and return the model. val_docs are held out: Part II
    measures the loss on them, through observe(model, val_docs), which returns on_step."""
    docs = load_docs(input)
    train_docs, val_docs = split_docs(docs, val_fraction, random.Random(seed))
    if model is None:
        tokenizer = Tokenizer(''.join(docs))   # every character (val_docs' too: all must encode)
        config = GPTConfig(tokenizer.vocab_size, n_embd, n_head, n_layer, block_size)
        state_dict = init_state_dict(config, seed)
        model = Model(config, tokenizer, state_dict, Adam(parameters(state_dict), weight_decay))
    print(f'{len(train_docs)} training and {len(val_docs)} validation documents from {input}\n'
          f'{len(model.adam.params)} parameters: {model.config}')
    on_step = observe(model, val_docs) if observe else None
    train(model, train_docs, num_steps, learning_rate, warmup_steps, batch_size, on_step)
    if num_samples:
        print(f'--- {num_samples} samples (temperature {temperature:g}) ---')
    rng = random.Random(seed)       # the same model and seed write the same names
    for _ in range(num_samples):
        print(sample(model.state_dict, model.tokenizer, model.config, rng, temperature, prompt))
    return model


# Part II: the workbench =======================================================
# What `python microgpt.py` adds around Part I, and a learner may skip: the
# command line; checks that turn bad input into one line (before a long run,
# not after it); progress, validation, checkpoints and a clean stop on Ctrl-C,
# through train()'s on_step; the loss curve, attention maps and a benchmark.
# It calls Part I and never repeats it.
# =============================================================================
import argparse
import gc
import inspect
import json
import os
import shutil
import signal
import stat
import statistics
import sys
import tempfile
import time


class InputError(ValueError):
    """Bad input (a file, a flag, a checkpoint): printed as one line, exit status 2."""


class OutputError(Exception):
    """The output cannot be written (a full disk, a closed pipe): one line, exit status 1."""


# The story's settings and their defaults, read from train_and_sample() itself:
# each flag sets the variable of its name, and the defaults live in one place.
DEFAULTS = {name: p.default for name, p in inspect.signature(train_and_sample).parameters.items()
            if name not in ('model', 'observe')}
SHAPE_FLAGS = ('n_embd', 'n_head', 'n_layer', 'block_size')   # a checkpoint fixes these
MAX_STEPS = 10 ** 9                # about 80 days of steps: any more is a typo
MAX_TOTAL_STEPS = 10 ** 15         # a checkpoint's step, after many continued runs
MAX_INPUT_BYTES = 16 * 2 ** 20     # 16 MB of text, about 1.5 million names
MAX_CHECKPOINT_BYTES = 64 * 2 ** 20
JSON_BYTES_PER_BYTE = 25           # memory per byte of JSON, at most: 3 bytes [], a 64-byte list


# --- Command line -------------------------------------------------------------

class ArgumentParser(argparse.ArgumentParser):
    def error(self, message):               # one line and status 2, no usage block
        raise InputError(message)


def parse_args(argv):
    p = ArgumentParser(description='Train a tiny GPT on a list of documents, then sample new ones.')
    group = p

    def flag(name, help, shown=None, **kwargs):
        shown = shown or DEFAULTS.get(name[2:], kwargs.get('default'))
        if shown not in (None, ''):
            help += f' (default {shown})'
        group.add_argument(name, help=help, **kwargs)
    group = p.add_argument_group('the data')
    flag('--input', 'text file, one document per line', 'names.txt beside this file',
         metavar='FILE')
    flag('--val_fraction', 'share of documents held out for validation', type=float)
    flag('--seed', 'random seed: the same seed, the same split, weights, losses, samples', type=int)
    group = p.add_argument_group("the model's shape (with --load: the checkpoint's)")
    flag('--n_embd', 'width of the residual stream', type=int)
    flag('--n_head', 'attention heads per layer', type=int)
    flag('--n_layer', 'transformer layers', type=int)
    flag('--block_size', 'longest context in tokens', type=int)
    group = p.add_argument_group('training')
    flag('--num_steps', 'training steps', f'{DEFAULTS["num_steps"]}; 100 with --bench', type=int)
    flag('--batch_size', 'documents per training step', type=int)
    flag('--learning_rate', 'peak Adam learning rate', type=float)
    flag('--warmup_steps', 'steps of linear learning-rate warmup, then a linear decay to 0',
         type=int)
    flag('--weight_decay', 'decoupled weight decay, as AdamW', type=float)
    group = p.add_argument_group('sampling')
    flag('--num_samples', 'documents to sample after training', type=int)
    flag('--temperature', 'sampling temperature, above 0: lower is safer, higher wilder',
         type=float)
    flag('--prompt', 'every sample starts with this text', metavar='TEXT')
    group = p.add_argument_group('the workbench')
    flag('--eval_every', 'steps between validation losses', type=int, default=250)
    flag('--eval_docs', 'validation documents per evaluation (0: none)', type=int, default=300)
    flag('--save', 'write a checkpoint here (JSON) during and after training', metavar='PATH')
    flag('--save_every', 'steps between checkpoints (0: only at the end)', type=int, default=100)
    flag('--load', 'start from this checkpoint: weights, vocabulary, Adam state', metavar='PATH')
    flag('--show_attention', "draw each head's attention over this text", metavar='TEXT')
    flag('--bench', 'time the training steps; no sampling', action='store_true')
    args = p.parse_args(argv)
    for name, default in DEFAULTS.items():   # the story's defaults, but for the shape's
        if getattr(args, name) is None and name not in SHAPE_FLAGS + ('num_steps', 'input'):
            setattr(args, name, default)
    if args.num_steps is None:
        args.num_steps = 100 if args.bench else DEFAULTS['num_steps']
    check_args(args)
    return args


def check_args(args):
    def at_least(name, low, high=MAX_STEPS):
        value = getattr(args, name)
        if value is not None and not low <= value <= high:
            raise InputError(f'--{name} must be from {low} to {high}, not {value}')
    for name in SHAPE_FLAGS + ('batch_size', 'eval_every'):
        at_least(name, 1)
    for name in ('num_steps', 'warmup_steps', 'eval_docs', 'save_every', 'num_samples'):
        at_least(name, 0)
    for name in ('learning_rate', 'temperature'):
        if not (math.isfinite(getattr(args, name)) and getattr(args, name) > 0):
            raise InputError(f'--{name} must be a positive number, not {getattr(args, name)}')
    if not (math.isfinite(args.weight_decay) and args.weight_decay >= 0):
        raise InputError(f'--weight_decay must be 0 or a positive number, not {args.weight_decay}')
    if args.weight_decay * args.learning_rate >= 1:   # AdamW: w -= lr * weight_decay * w + ...
        raise InputError(f'--weight_decay {args.weight_decay:g} with --learning_rate '
                         f'{args.learning_rate:g} would take each weight past 0 at every step: '
                         f'use a --weight_decay below {1 / args.learning_rate:g}')
    if args.seed < 0:                        # (random.Random(-5) is Random(5): refuse the alias)
        raise InputError(f'--seed must be 0 or more, not {args.seed}')
    if not 0 <= args.val_fraction < 1:
        raise InputError(f'--val_fraction must be at least 0 and below 1, not {args.val_fraction}')
    for name in ('input', 'save', 'load'):
        if getattr(args, name) == '':
            raise InputError(f'--{name} needs a file name, not an empty one')
    if args.bench and (args.num_steps == 0 or args.save):
        raise InputError('--bench times 1 or more training steps, and saves nothing: '
                         'leave out --num_steps 0 and --save')


def main(argv=None):
    """Run microgpt with command-line flags: main() reads sys.argv, main([...]) a list."""
    notebook = 'ipykernel' in sys.modules
    if argv is None:
        argv = command_line()
    try:
        with readable_output():
            run(parse_args(argv))
    except InputError as e:
        if notebook:                         # a notebook shows the error, then goes on
            raise InputError(str(e)) from None
        complain(f'error: {e}')
        leave(2)
    except MemoryError:
        if notebook:
            raise
        complain('error: out of memory; try a smaller model, --batch_size or input file')
        leave(2)
    except OutputError as e:
        complain(f'error: {e}')
        leave(1, quiet=True)
    except BrokenPipeError:                  # `python microgpt.py | head`: end quietly
        leave(141, quiet=True)
    except KeyboardInterrupt:                # Ctrl-C outside training (or twice): stop at once
        if notebook:
            raise
        complain('\ninterrupted')
        leave(130)


def complain(text):
    """One line on stderr, whatever the text holds (a file name with a newline or an
    escape sequence is shown escaped), and even if stderr cannot be written."""
    lead = '\n' if text.startswith('\n') else ''
    try:
        print(lead + text.lstrip('\n').translate(ONE_LINE), file=sys.stderr, flush=True)
    except (OSError, ValueError, AttributeError):   # closed, full, or None
        pass


def command_line():
    # In a notebook, sys.argv is the kernel's own (its launcher, -f and a connection
    # file...): ignore it, unless this file was started by %run microgpt.py --flags.
    ours = '__file__' in globals() and os.path.abspath(sys.argv[0]) == os.path.abspath(__file__)
    return sys.argv[1:] if ours or 'ipykernel' not in sys.modules else []


def terminate(signum=None, frame=None):   # SIGTERM outside training: stop now, cleaning up
    raise SystemExit(128 + signal.SIGTERM)


def leave(status, quiet=False):
    if quiet and sys.stdout is not None:    # nothing more to stdout, not even at exit
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except (OSError, ValueError):
            pass
    sys.exit(status)


def run(args):
    """Check everything that can be checked before training, then tell the story."""
    path = args.input or default_input_path()
    docs = read_docs(path)
    model = load_checkpoint(args.load, args.weight_decay) if args.load else None
    tokenizer = model.tokenizer if model else Tokenizer(''.join(docs))
    config = check_shape(args, model, tokenizer)
    check_texts(args, tokenizer, config, docs, path)
    check_memory(config, args.batch_size, docs)
    if args.save:
        check_save_path(args.save, path, config)
    if model and model.adam.t + args.num_steps > MAX_TOTAL_STEPS:
        raise InputError(f'the checkpoint has {model.adam.t} steps; more than {MAX_TOTAL_STEPS} '
                         f'could not be loaded back')
    if model:
        print(f'loaded {args.load}: trained for {model.adam.t} steps so far')
    settings = {name: getattr(args, name) for name in DEFAULTS}
    settings.update(input=path, num_samples=0 if args.bench else args.num_samples)
    watch = Workbench(args)
    with training_mode(watch):
        model = train_and_sample(**settings, model=model, observe=watch)
    if args.save and not args.num_steps:
        save_checkpoint(args.save, model)
        print(f'saved checkpoint {args.save} (step {model.adam.t})')
    if args.show_attention is not None:
        print(attention_maps(model, args.show_attention))
    if args.bench:
        print(bench_report(watch, model.config))


def default_input_path():
    # names.txt beside this file, wherever it is run from. Pasted into a notebook
    # cell there is no __file__, so look in the current folder instead.
    folder = os.path.dirname(os.path.abspath(__file__)) if '__file__' in globals() else os.getcwd()
    return os.path.join(folder, 'names.txt')


# --- Checks before training ------------------------------------------------------

def read_file(path, what, max_bytes):
    """The bytes of a regular file of at most max_bytes, or one line saying why not:
    a FIFO or a device would hang or never end; a file in /proc says it has 0 bytes
    and may have more, or block. Opened without blocking, then checked, then read."""
    too_big = (f'{what} {path!r} has more than {max_bytes // 2 ** 20} MB; '
               f'microgpt reads at most {max_bytes // 2 ** 20} MB')
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, 'O_NONBLOCK', 0))
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_size > max_bytes:
            os.close(fd)
            raise InputError(too_big if stat.S_ISREG(info.st_mode)
                             else f'{what} {path!r} is not a regular file')
        with os.fdopen(fd, 'rb') as f:
            data = f.read(max_bytes + 1)
    except InputError:
        raise
    except FileNotFoundError:
        raise InputError(f'{what} {path!r} not found')
    except (OSError, ValueError) as e:       # (ValueError: a NUL in the name)
        raise InputError(f'cannot read {what} {path!r}: {getattr(e, "strerror", None) or e}')
    if len(data) > max_bytes:
        raise InputError(too_big)
    return data


def read_docs(path):
    """Part I's load_docs(path), after the checks it leaves out, each with its own message."""
    data = read_file(path, 'input file', MAX_INPUT_BYTES)
    try:
        data.decode('utf-8')
    except UnicodeDecodeError as e:          # (e.start counts from the start of the file)
        line = data.count(b'\n', 0, e.start) + 1
        raise InputError(f'input file {path!r} is not UTF-8 text: byte 0x{data[e.start]:02x} '
                         f'at offset {e.start} (line {line})')
    try:
        docs = load_docs(path)
    except OSError as e:                     # (gone since, say)
        raise InputError(f'cannot read input file {path!r}: {e.strerror or e}')
    if not docs:
        raise InputError(f'input file {path!r} is empty: it needs one document per line')
    return docs


def check_shape(args, model, tokenizer):
    """The model's GPTConfig: the checkpoint's, or the flags' (or their defaults)."""
    if model:
        for name in SHAPE_FLAGS:
            given = getattr(args, name)
            if given is not None and given != getattr(model.config, name):
                raise InputError(f"--{name} {given} differs from the checkpoint's {name} "
                                 f'{getattr(model.config, name)}; leave it out when you --load')
        return model.config
    shape = {name: DEFAULTS[name] if getattr(args, name) is None else getattr(args, name)
             for name in SHAPE_FLAGS}
    for name, value in shape.items():
        setattr(args, name, value)
    n_embd, n_head = shape['n_embd'], shape['n_head']
    if n_embd % n_head:
        raise InputError(f'--n_embd {n_embd} is not divisible by --n_head {n_head}')
    return GPTConfig(tokenizer.vocab_size, *shape.values())


def check_texts(args, tokenizer, config, docs, path):
    """Every character the run will encode is in the vocabulary; the prompt and the
    attention text fit in block_size. Checked now, not after training."""
    if args.num_steps:
        unknown = set(''.join(docs)) - set(tokenizer.chars)
        if unknown:
            raise InputError(f'{path!r}: character {min(unknown)!r} is not in the checkpoint\'s '
                             f'vocabulary (it was trained on other characters)')
    block_size = config.block_size
    for flag, text, most in (('--prompt', args.prompt, block_size),
                             ('--show_attention', args.show_attention or '', block_size - 1)):
        unknown = [ch for ch in text if ch not in tokenizer.ids]
        if unknown:
            raise InputError(f'{flag} {text!r}: character {unknown[0]!r} is not in the vocabulary')
        if len(text) > most:
            raise InputError(f'{flag} has {len(text)} characters; at most {most} fit in '
                             f'--block_size {block_size}')


def graph_counts(config):
    """(nodes, edges) of the graph that doc_loss() builds for one document filling
    block_size, counted from the shape as in Part I's model (the parameters, its
    leaves, not counted). tests/test_cli.py checks them against real graphs."""
    V, n, H, L, T = config                   # vocab_size, n_embd, n_head, n_layer, block_size
    pairs = T * (T + 1) // 2                 # (position, earlier position): attention scores
    nodes = T * (2 * n + L * (18 * n + 8 + H) + V + 6) + 6 * L * H * pairs + 1
    edges = (T * L * (24 * n * n + 16 * n + 6) + L * (4 * n + 7 * H) * pairs
             + T * (6 * n + 2 * n * V + V + 5))
    return nodes, edges


# Bytes per graph node and edge, and per parameter (the Value, its place in a row,
# Adam's m and v): measured with tracemalloc on CPython 3.11 for 6 shapes, fitted
# within 3% by 9 per edge and 252 per node; 121-125 per parameter. With a margin:
BYTES_PER_EDGE, BYTES_PER_NODE, BYTES_PER_PARAM = 12, 300, 130


def estimate_memory(config, batch_size, docs):
    """Bytes that training needs at most: the parameters, one step's graph for
    batch_size documents of block_size tokens, and the documents."""
    nodes, edges = graph_counts(config)
    text = sum(100 + len(doc) for doc in docs)
    graph = BYTES_PER_NODE * nodes + BYTES_PER_EDGE * edges
    return BYTES_PER_PARAM * parameter_count(config) + batch_size * graph + 3 * text


def parameter_count(config):
    """As len(parameters(init_state_dict(config))), from matrix_shapes(), without building
    (or, for a huge n_layer, listing) anything."""
    V, n, H, L, T = config
    return V * n + T * n + L * 12 * n * n


def available_memory():
    """Bytes of memory this process could still use, or None where unknown: the
    least of the machine's available memory, its container's (cgroup) limit, and
    this process's address-space limit (ulimit -v), less what each has in use."""
    found = []
    try:
        with open('/proc/meminfo') as f:           # (Linux)
            line = next(line for line in f if line.startswith('MemAvailable:'))
        found.append(int(line.split()[1]) * 1024)
    except (OSError, StopIteration, ValueError, IndexError):
        try:
            found.append(os.sysconf('SC_PHYS_PAGES') * os.sysconf('SC_PAGE_SIZE'))
        except (ValueError, OSError, AttributeError):
            pass
    try:
        with open('/sys/fs/cgroup/memory.max') as f, open('/sys/fs/cgroup/memory.current') as g:
            found.append(int(f.read()) - int(g.read()))    # ('max': no limit, a ValueError)
    except (OSError, ValueError):
        pass
    try:
        import resource                                    # (Unix)
        limit = resource.getrlimit(resource.RLIMIT_AS)[0]
        if limit != resource.RLIM_INFINITY:
            with open('/proc/self/statm') as f:            # (Linux: pages of address space)
                used = int(f.read().split()[0]) * os.sysconf('SC_PAGE_SIZE')
            found.append(limit - used)
    except (ImportError, OSError, ValueError, IndexError, AttributeError):
        pass
    return max(0, min(found)) if found else None


def check_memory(config, batch_size, docs):
    need, have = estimate_memory(config, batch_size, docs), available_memory()
    if have is not None and need > have:
        raise InputError(f'training this model needs about {need / 2 ** 30:,.1f} GB of memory '
                         f'({config.vocab_size} tokens, n_embd {config.n_embd}, n_layer '
                         f'{config.n_layer}, block_size {config.block_size}, batch_size '
                         f'{batch_size}); this machine has {have / 2 ** 30:,.1f} GB available')


def check_save_path(path, input_path, config):
    """Refuse, before training, a checkpoint path that the save would fail on or that
    holds something else: a folder, a device, a read-only file, the training data, the
    file this run's output goes to; or a checkpoint too large to load back or to fit."""
    target = os.path.realpath(path)          # through a symlink, to the file it names
    if os.path.exists(target):
        info = os.stat(target)
        if not stat.S_ISREG(info.st_mode):
            raise InputError(f'--save {path!r} is not a regular file; refusing to replace it')
        if os.path.samefile(target, input_path):
            raise InputError(f'--save {path!r} is the training data; save elsewhere')
        if not info.st_mode & 0o222:         # (no write permission for anyone, even root)
            raise InputError(f'--save {path!r} is read-only; refusing to replace it')
        if os.path.ismount(target):          # (a file mounted there cannot be renamed over)
            raise InputError(f'--save {path!r} is a mount point; save elsewhere')
        for fd, name in ((1, 'output'), (2, 'error output')):
            try:
                same = os.path.samestat(info, os.fstat(fd))
            except OSError:
                same = False
            if same:
                raise InputError(f"--save {path!r} is where this run's {name} goes; save elsewhere")
    size = checkpoint_bytes(config)
    if size > MAX_CHECKPOINT_BYTES:
        raise InputError(f'a checkpoint of this model would have about {size / 2 ** 20:.0f} MB; '
                         f'microgpt loads at most {MAX_CHECKPOINT_BYTES // 2 ** 20} MB')
    folder = os.path.dirname(target)
    try:                                     # the one sure test: make a file there, named as
        with temporary_file_for(target) as f:   # the save will name it
            pass
        os.remove(f.name)
        free = shutil.disk_usage(folder).free
    except OSError as e:
        raise InputError(f'cannot write checkpoint {path!r}: {e.strerror or e}')
    if free < size:
        raise InputError(f'a checkpoint of this model needs about {size / 2 ** 20:.1f} MB; '
                         f'{folder!r} has {free / 2 ** 20:.1f} MB free')


def checkpoint_bytes(config):
    """About the size of save_checkpoint()'s file: 3 numbers a parameter (its weight,
    Adam's m and v), up to 25 characters each as JSON, like -0.012345678901234567, ."""
    return 3 * 25 * parameter_count(config) + 10 * config.vocab_size + 1000


# --- Training, watched -----------------------------------------------------------

class Workbench:
    """Watches Part I's training through train()'s on_step: prints progress, runs
    the validation schedule, saves checkpoints, stops cleanly on Ctrl-C or SIGTERM,
    and at the end draws the loss curve."""

    def __init__(self, args):
        self.args, self.stop_requested, self.over, self.graphs = args, False, False, []
        self.history = {'train': [], 'val': [], 'ms': []}  # loss per step; (step, val loss); ms
        self.progress = Progress(in_place=output_is_live())

    def __call__(self, model, val_docs):     # train_and_sample() hands over what it built
        self.model = model
        self.eval_docs = [] if self.args.bench else val_docs[:self.args.eval_docs]
        if self.args.num_steps:
            self.report_val(0)
        else:
            self.over = True                 # nothing to train: a signal stops at once
        self.started = time.perf_counter()
        return self.on_step

    def on_step(self, step, loss, lr):
        ms = (time.perf_counter() - self.started) * 1000
        self.history['train'].append(loss.data)
        self.history['ms'].append(ms)
        self.progress.step(f'step {step}/{self.args.num_steps} | loss {loss.data:.4f} | '
                           f'lr {lr:.1e} | {ms:.1f} ms')
        if not math.isfinite(loss.data):
            raise self.diverged(f'the loss became {loss.data} at step {step}')
        if self.args.bench and step % 10 == 1:   # (not every step: counting slows the next one)
            self.graphs.append(graph_size(loss))
        done = step == self.args.num_steps or self.stop_requested
        if done and self.stop_requested:
            self.progress.line(f'interrupted: stopped after step {step}')
        if self.args.save and (done or self.args.save_every and step % self.args.save_every == 0):
            self.save(step, done)
        if not self.stop_requested and (done or step % self.args.eval_every == 0):
            self.report_val(step)
        if done:
            problem = unusable(self.model)   # (the last step's update is in no loss yet)
            if problem:
                raise self.diverged(f'{problem} at step {step}')
            self.finish()
        self.started = time.perf_counter()
        return self.stop_requested

    def report_val(self, step):
        if not self.eval_docs:
            return
        total = 0.0
        for doc in self.eval_docs:
            if self.stop_requested:            # Ctrl-C: stop now, not after 3000 documents
                return
            tokens = self.model.tokenizer.encode_doc(doc)
            total += doc_loss(tokens, self.model.state_dict, self.model.config).data
        loss = total / len(self.eval_docs)
        if not math.isfinite(loss):
            raise self.diverged(f'the validation loss became {loss} at step {step}')
        self.history['val'].append((step, loss))
        self.progress.line(f'step {step}/{self.args.num_steps} | val loss {loss:.4f} '
                           f'({len(self.eval_docs)} docs)')

    def save(self, step, done):
        problem = unusable(self.model)       # never a checkpoint that cannot be loaded
        if problem:
            raise self.diverged(f'{problem} at step {step}')
        save_checkpoint(self.args.save, self.model)
        if done:
            self.progress.line(f'saved checkpoint {self.args.save} (step {self.model.adam.t})')

    def finish(self):
        self.over = True                     # from now on a signal stops at once
        self.progress.end()
        if self.args.bench:
            return
        print(loss_curve(self.history))
        print(summary(self.history))
        warning = divergence_warning(self.history, self.model.config.vocab_size)
        if warning:
            print(f'warning: {warning}; {self.hint()}', file=sys.stderr)

    def hint(self):                          # (a weight decay too large is refused before)
        return f'try a smaller --learning_rate than {self.args.learning_rate:g}'

    def diverged(self, what):
        self.progress.end()
        return InputError(f'{what}; {self.hint()}')


def divergence_warning(history, vocab_size):
    """A run whose loss ended above a uniform guess, ln(vocab_size), diverged even if
    every number stayed finite."""
    losses = history['train']
    recent = losses[-max(1, len(losses) // 10):]
    final, uniform = sum(recent) / len(recent), math.log(vocab_size)
    if losses and final > uniform + 0.5:
        return (f'training diverged: the loss ended at {final:.4g}, worse than a uniform guess '
                f'({uniform:.2f})')
    return None


class training_mode:
    """While the story runs: Ctrl-C (SIGINT) and SIGTERM ask the watcher to stop after
    the current step; a second one, or one after training (while sampling), stops at
    once (Ctrl-C as KeyboardInterrupt, SIGTERM as SystemExit(143)). And CPython's
    cyclic garbage collector is paused. A step's graph is tens of thousands of
    short-lived Values with no reference cycles: reference counting frees them all,
    and the collector would only scan them again and again, for nothing (about 15% of
    a step). PyPy has no reference counting: its collector must run."""

    def __init__(self, watch):
        self.watch, self.old = watch, {}

    def on_signal(self, signum, frame):
        if self.watch.stop_requested or self.watch.over:
            if signum == signal.SIGINT:
                raise KeyboardInterrupt
            terminate()
        self.watch.stop_requested = True

    def __enter__(self):
        for signum in (signal.SIGINT, signal.SIGTERM):
            try:
                self.old[signum] = signal.signal(signum, self.on_signal)
            except ValueError:               # only the main thread may catch signals
                pass
        self.gc_was_enabled = gc.isenabled()
        if sys.implementation.name == 'cpython':
            gc.disable()

    def __exit__(self, *exc):
        for signum, handler in self.old.items():
            signal.signal(signum, handler)
        if self.gc_was_enabled:
            gc.enable()
        if isinstance(exc[1], (OverflowError, ZeroDivisionError)):   # a ** or exp overflowed
            steps = len(self.watch.history['train'])
            raise self.watch.diverged(f'the numbers overflowed at step {steps + 1}') from None


class Progress:
    """One status line per step: rewritten in place on a terminal (or a notebook),
    printed as plain lines in a pipe or a log."""

    def __init__(self, in_place):
        self.in_place, self.open = in_place, False

    def step(self, text):
        if self.in_place:
            print('\r' + text.ljust(70), end='', flush=True)
            self.open = True
        else:
            print(text, flush=True)

    def line(self, text):                   # a line that stays
        self.end()
        print(text, flush=True)

    def end(self):
        if self.open:
            print(flush=True)
            self.open = False


def output_is_live():
    """True on a terminal or in a notebook, where a line can be rewritten."""
    stream = sys.__stdout__
    return 'ipykernel' in sys.modules or bool(stream and stream.isatty())


class readable_output:   # (a context manager, used as: with readable_output(): ...)
    """For the time of main(): stdout shows control characters (ESC, BEL, ... found in
    a training file) as \\x1b, \\x07, ... instead of sending them to the terminal, prints
    any character whatever the console's encoding, and turns a failed write (a full
    disk) into OutputError. A closed pipe stays a BrokenPipeError."""
    CONTROLS = {c: f'\\x{c:02x}' for c in [*range(32), *range(127, 160)] if chr(c) not in '\n\r\t'}

    def __enter__(self):
        self.stdout = sys.stdout
        if self.stdout is not None:          # (None: started with stdout closed)
            if hasattr(self.stdout, 'reconfigure'):
                self.stdout.reconfigure(errors='backslashreplace')
            sys.stdout = self

    def __exit__(self, *exc):
        sys.stdout = self.stdout

    def write(self, text):
        return self.guard(self.stdout.write, text.translate(self.CONTROLS))

    def flush(self):
        return self.guard(self.stdout.flush)

    def guard(self, f, *args):
        try:
            return f(*args)
        except BrokenPipeError:
            raise
        except OSError as e:
            raise OutputError(f'cannot write the output: {e.strerror or e}') from None

    def __getattr__(self, name):             # the rest (isatty, encoding, ...): stdout's
        return getattr(self.stdout, name)


ONE_LINE = {**readable_output.CONTROLS, ord('\n'): '\\n', ord('\r'): '\\r'}   # for messages


# --- Checkpoints: a JSON file (readable, and safe to load, unlike pickle) ---------

def unusable(model):
    """Why model cannot be saved or loaded, or None: an infinite or nan number, or
    weights beyond 1e6. (Adam moves a weight about learning_rate a step; with inputs
    rescaled by rmsnorm, a weight of 1e6 means training diverged long ago.)"""
    numbers = [p.data for p in model.adam.params] + model.adam.m + model.adam.v
    if not all(map(math.isfinite, numbers)):
        return 'the weights or Adam state became infinite or nan'
    if max(abs(p.data) for p in model.adam.params) > 1e6:
        return 'the weights grew beyond 1e6'
    return None


def save_checkpoint(path, model):
    """Write model to path, atomically: a temporary file beside the target, flushed
    to the disk, then renamed over it in one step. An interrupted or failed save
    leaves the old checkpoint as it was and no temporary file. A model with a
    model that could not be loaded back is never written."""
    problem = unusable(model)
    if problem:
        raise InputError(f'{problem}: checkpoint {path!r} not written')
    config = model.config._asdict()
    del config['vocab_size']                 # (the vocabulary is in 'chars')
    checkpoint = {'format': 'microgpt checkpoint 1', 'config': config,
                  'chars': model.tokenizer.chars, 'step': model.adam.t,
                  'adam_m': model.adam.m, 'adam_v': model.adam.v,
                  'state_dict': {name: [[p.data for p in row] for row in matrix]
                                 for name, matrix in model.state_dict.items()}}
    target = os.path.realpath(path)          # through a symlink: replace the file it names
    try:
        mode = stat.S_IMODE(os.stat(target).st_mode)     # keep the file's permissions,
    except OSError:
        mode = 0o666 & ~current_umask()                  # or give a new file the usual ones
    text = json.dumps(checkpoint)
    if len(text) > MAX_CHECKPOINT_BYTES:     # (a vocabulary of 1e6 characters, say)
        most = MAX_CHECKPOINT_BYTES // 2 ** 20
        raise InputError(f'checkpoint {path!r} would have {len(text) / 2 ** 20:.0f} MB, more '
                         f'than the {most} MB a load accepts: not written')
    tmp = None
    try:
        with temporary_file_for(target) as f:
            tmp = f.name
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, target)
        tmp = None
    except OSError as e:
        raise InputError(f'cannot write checkpoint {path!r}: {e.strerror or e} '
                         f'(the file there is unchanged)')
    finally:
        if tmp is not None:                   # any failure, Ctrl-C included: no litter
            try:
                os.remove(tmp)
            except OSError:
                pass


def temporary_file_for(target):
    return tempfile.NamedTemporaryFile('w', dir=os.path.dirname(target), delete=False,
                                       prefix=os.path.basename(target) + '.', suffix='.tmp')


def current_umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def load_checkpoint(path, weight_decay=0.0):
    """A Model from save_checkpoint's file, every part of it checked first: a damaged
    or hostile file gets one line, before anything large is built."""
    data = read_file(path, 'checkpoint', MAX_CHECKPOINT_BYTES)
    need, have = JSON_BYTES_PER_BYTE * len(data), available_memory()   # ([[],[],[],...]: a bomb)
    if have is not None and need > have:
        raise InputError(f'checkpoint {path!r} has {len(data) / 2 ** 20:.0f} MB; reading it could '
                         f'take {need / 2 ** 30:.1f} GB of memory, more than is available')
    try:
        ck = json.loads(data.decode('utf-8'))
    except (ValueError, RecursionError, MemoryError) as e:
        raise InputError(f'checkpoint {path!r} is damaged or not a checkpoint ({type(e).__name__})')
    try:
        return model_from_checkpoint(ck, weight_decay)
    except (KeyError, TypeError, ValueError, AttributeError, OverflowError) as e:
        raise InputError(f'checkpoint {path!r} is damaged or not a microgpt checkpoint ({e})')


def model_from_checkpoint(ck, weight_decay):
    if ck['format'] != 'microgpt checkpoint 1':
        raise ValueError('format')
    chars = ck['chars']
    if not (isinstance(chars, list) and all(isinstance(ch, str) and len(ch) == 1 for ch in chars)
            and chars == sorted(set(chars)) and '\n' not in chars and '\r' not in chars):
        raise ValueError('chars')
    shape = [ck['config'][name] for name in SHAPE_FLAGS]
    if not all(type(v) is int and 1 <= v <= MAX_STEPS for v in shape) or shape[0] % shape[1]:
        raise ValueError('config')
    config = GPTConfig(len(chars) + 2, *shape)
    have = available_memory()
    if have is not None and estimate_memory(config, 1, []) > have:
        raise ValueError(f'a model of this shape ({config}) would not fit in memory')
    if len(ck['state_dict']) != 2 + 6 * config.n_layer:
        raise ValueError('number of matrices')
    shapes = matrix_shapes(config)
    if list(ck['state_dict']) != list(shapes):
        raise ValueError('matrix names')
    state_dict = {}
    for name, (n_out, n_in) in shapes.items():
        matrix = ck['state_dict'][name]
        if len(matrix) != n_out or any(len(row) != n_in for row in matrix):
            raise ValueError(f'shape of {name}')
        state_dict[name] = [[Value(finite(x)) for x in row] for row in matrix]
    adam = Adam(parameters(state_dict), weight_decay)
    adam.m, adam.v = [finite(x) for x in ck['adam_m']], [finite(x) for x in ck['adam_v']]
    adam.t = ck['step']
    if not len(adam.m) == len(adam.v) == len(adam.params) or min(adam.v, default=0) < 0:
        raise ValueError('adam state')
    if type(adam.t) is not int or not 0 <= adam.t <= MAX_TOTAL_STEPS:
        raise ValueError('step')
    model = Model(config, Tokenizer(chars), state_dict, adam)
    problem = unusable(model)
    if problem:
        raise ValueError(problem)
    return model


def finite(x):
    if type(x) not in (int, float) or not math.isfinite(float(x)):
        raise ValueError(f'not a finite number: {repr(x)[:20]}')
    return float(x)


# --- Loss curve: drawn with plain characters ----------------------------------------

def loss_curve(history, width=60, height=10):
    """The losses against the step, drawn with characters: o is the validation
    loss; * the training loss, as a running mean over the last tenth of the steps
    (one document's loss alone jumps around too much to see a trend)."""
    train_losses, n = history['train'], len(history['train'])
    if not n:
        return ''
    width = min(width, n)
    window = max(1, n // 10)
    points = []                                          # (column, loss, mark)
    for column in range(width):
        end = (column + 1) * n // width                  # steps done at this column
        recent = train_losses[max(0, end - window):end]
        points.append((column, sum(recent) / len(recent), '*'))
    points += [(min(step * width // n, width - 1), loss, 'o') for step, loss in history['val']]
    lo, hi = min(p[1] for p in points), max(p[1] for p in points)
    grid = [[' '] * width for _ in range(height)]
    for column, loss, mark in points:
        grid[round((hi - loss) / (hi - lo or 1.0) * (height - 1))][column] = mark
    lines = ['loss curve (* train, o validation)']
    lines += [f'{hi - r * (hi - lo) / (height - 1):6.2f} |' + ''.join(row)
              for r, row in enumerate(grid)]
    lines.append('       +' + '-' * width)
    last = f'{n} steps'
    lines.append('        0' + last.rjust(max(width - 1, len(last) + 1)))
    return '\n'.join(lines)


def summary(history):
    """One line: the final training loss (a mean over the last tenth of the steps,
    as one step's loss is noisy), the final validation loss, the speed."""
    losses, ms = history['train'], history['ms']
    recent = losses[-max(1, len(losses) // 10):]
    line = (f'after {len(losses)} steps: train loss {sum(recent) / len(recent):.4f} '
            f'(mean of the last {len(recent)})')
    if history['val']:
        line += f', val loss {history["val"][-1][1]:.4f}'
    return line + f', {statistics.median(ms):.1f} ms per step (median)'


# --- Attention maps: what each head looks at ----------------------------------------

def attention_weights(model, text):
    """Every attention head's weights over <BOS> + text: a list per position, layer and
    head, in that order. gpt() calls softmax() only for attention: record what it returns."""
    config, tokens = model.config, [Tokenizer.BOS] + model.tokenizer.encode(text)
    weights, part_one_softmax = [], softmax

    def recording_softmax(scores):
        probs = part_one_softmax(scores)
        weights.append([p.data for p in probs])
        return probs
    namespace = globals()                   # where Part I's functions look softmax up
    namespace['softmax'] = recording_softmax
    try:
        keys, values = [[] for _ in range(config.n_layer)], [[] for _ in range(config.n_layer)]
        for pos, token_id in enumerate(tokens):
            gpt(token_id, pos, keys, values, model.state_dict, config)
    finally:
        namespace['softmax'] = part_one_softmax
    return weights


def attention_maps(model, text):
    """For each layer and head, a character heat map of the attention weights over text:
    row = the position reading, column = the position read (darker = more weight)."""
    config, weights = model.config, attention_weights(model, text)
    labels, shades = '^' + text, ' .:-=+*#%@'   # ^ is <BOS>; weight 0-0.1 is ' ', ..., 0.9-1 '@'
    out = [f'attention over {text!r} '
           f'(^ is <BOS>; rows read, columns are read; darker = more weight)']
    for layer in range(config.n_layer):
        for head in range(config.n_head):
            out += [f'layer {layer} head {head}', '   ' + labels]
            for pos in range(len(labels)):
                row = weights[(pos * config.n_layer + layer) * config.n_head + head]
                shaded = (shades[min(int(w * 10), 9)] if w == w else '?' for w in row)   # (nan: ?)
                out.append(f' {labels[pos]} ' + ''.join(shaded))
    return '\n'.join(out)


# --- Benchmark: the speed of a training step, for anyone to rerun --------------------

def graph_size(root):
    """(nodes, edges) of root's graph, counting the leaves (parameters) as nodes."""
    interior = topological_order(root)
    leaves = {child for node in interior for child in node._children if not child._children}
    return len(interior) + len(leaves), sum(len(node._children) for node in interior)


def bench_report(watch, config):
    try:
        import resource                     # (Unix only)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss   # KB (bytes on macOS)
        peak = f'{peak / (2 ** 20 if sys.platform == "darwin" else 2 ** 10):.1f} MB'
    except ImportError:
        peak = 'unknown on this platform'
    impl = f'{sys.implementation.name} {".".join(map(str, sys.version_info[:3]))}'
    ms, graphs = watch.history['ms'], watch.graphs
    shape = ', '.join(f'{k} {v}' for k, v in config._asdict().items() if k != 'vocab_size')
    return '\n'.join([
        f'bench: {len(ms)} steps, {shape}, batch_size {watch.args.batch_size}, {impl}',
        f'ms per step: median {statistics.median(ms):.2f} (min {min(ms):.2f}, max {max(ms):.2f})',
        f'graph per step: {sum(n for n, _ in graphs) // len(graphs)} nodes, '
        f'{sum(e for _, e in graphs) // len(graphs)} edges (mean of steps 1, 11, 21, ...)',
        f'peak memory: {peak}'])


def restart_with_a_small_pypy_nursery():
    # PyPy sizes its young generation (nursery) from the CPU cache the machine reports,
    # and reads PYPY_GC_NURSERY only at start. Where a virtual machine reported 480 MB,
    # PyPy took a 240 MB nursery: 4 MB ran 15-20% faster in a fifth of the memory. On a
    # machine reporting 32 MB, 4 MB still ran `--bench --num_steps 500` 6% faster.
    if sys.implementation.name == 'pypy' and 'PYPY_GC_NURSERY' not in os.environ:
        env = dict(os.environ, PYPY_GC_NURSERY='4MB')
        os.execve(sys.executable, [sys.executable] + sys.argv, env)


if __name__ == '__main__':
    restart_with_a_small_pypy_nursery()
    signal.signal(signal.SIGTERM, terminate)   # (as Ctrl-C: files closed, no temporary left)
    try:
        main()
    finally:                                 # done: a Ctrl-C now would only break Python's
        if 'ipykernel' not in sys.modules:   # shutdown with a traceback
            signal.signal(signal.SIGINT, signal.SIG_IGN)
